package integration

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/keys"
)

// scrapeMetrics GETs a Prometheus text exposition and returns series ->
// value, a series written as exposed: name{label="value",...}.
func scrapeMetrics(t *testing.T, url string) map[string]float64 {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("scrape %s: %s, %s", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: bad sample %q", url, line)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	return out
}

// getHealth GETs a health endpoint and returns its status and body.
func getHealth(t *testing.T, url string) (int, string) {
	t.Helper()
	client := http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// sumPrefix adds up every series whose text starts with prefix.
func sumPrefix(m map[string]float64, prefix string) float64 {
	var s float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			s += v
		}
	}
	return s
}

// twoPorts returns two different ports free on every ip.
func twoPorts(t *testing.T, ips ...string) (int, int) {
	t.Helper()
	a := freePort(t, ips...)
	for range 50 {
		if b := freePort(t, ips...); b != a {
			return a, b
		}
	}
	t.Fatal("no second free port")
	return 0, 0
}

// sendGarbage connects from local to target, writes bytes that are no
// momgate frame and reads until the peer closes.
func sendGarbage(t *testing.T, local, target string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\nnot a momgate frame at all")); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, c)
}

// TestMetricsMoveDuringClusterRun starts a server (configured from a file)
// and two MOMs, each with --metrics-listen on its own 127.0.0.N, and checks
// that the scraped counters follow what happens: enrollment, swaps, a bad
// connection to a MOM and to the server, open connections, shutdown.
func TestMetricsMoveDuringClusterRun(t *testing.T) {
	ips := []string{"127.0.0.21", "127.0.0.22"}
	all := append([]string{"127.0.0.1"}, ips...)
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, srvDir: filepath.Join(dir, "server"), moms: map[string]*momProc{}}
	if r := run(t, "", "momgate-server", "init", "--state-dir", c.srvDir); r.code != 0 {
		t.Fatalf("server init: %s", r.stderr)
	}
	srvPort, metricsPort := twoPorts(t, "127.0.0.1")
	c.srvAddr = fmt.Sprintf("127.0.0.1:%d", srvPort)
	// Ports are found free one at a time; draw again on a collision.
	for c.imPort = freePort(t, all...); c.imPort == metricsPort || c.imPort == srvPort; {
		c.imPort = freePort(t, all...)
	}
	momMetricsPort := freePort(t, ips...)
	for momMetricsPort == c.imPort {
		momMetricsPort = freePort(t, ips...)
	}

	// The server reads everything from its config file; JSON logs.
	cfg := filepath.Join(dir, "server.toml")
	body := fmt.Sprintf("state-dir = %q\nlisten = %q\nlog-format = \"json\"\nlog-level = \"debug\"\nmetrics-listen = \"127.0.0.1:%d\"\n",
		c.srvDir, c.srvAddr, metricsPort)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "momgate-server", "config", "check", cfg); r.code != 0 || r.stdout != "ok\n" {
		t.Fatalf("config check: %d %q %q", r.code, r.stdout, r.stderr)
	}
	c.server = start(t, "server", "momgate-server", "run", "--config", cfg)
	waitFor(t, "server admin socket", 20*time.Second, func() bool {
		return run(t, "", "momgate-qmgr", "--state-dir", c.srvDir, "-c", "list node").code == 0
	})
	if r := c.qmgr("set server heartbeat=200ms"); r.code != 0 {
		t.Fatalf("set heartbeat: %s", r.stderr)
	}
	srvURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	srvBase := strings.TrimSuffix(srvURL, "/metrics")
	// The admin socket answered, so the server is ready.
	for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
		if code, body := getHealth(t, srvBase+path); code != http.StatusOK || body != want {
			t.Errorf("server %s: %d %q, want 200 %q", path, code, body, want)
		}
	}

	m := scrapeMetrics(t, srvURL)
	for series, want := range map[string]float64{
		"momgate_admissions_total":                    0,
		"momgate_enrolled_nodes":                      0,
		`momgate_open_connections{channel="control"}`: 0,
		`momgate_rotation_phase{phase="idle"}`:        1,
		`momgate_mode{mode="ping"}`:                   1,
		"momgate_legacy_pushes_total":                 0,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("server before MOMs: %s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	activeKey := m["momgate_active_key_id"]
	if activeKey == 0 {
		t.Fatal("server exports no active key id")
	}

	// Two MOMs enroll, each with its metrics on its own address.
	momURL := map[string]string{}
	for i, ip := range ips {
		name := fmt.Sprintf("m%d", i+1)
		token := c.createNode(name, ip)
		mdir := filepath.Join(dir, name)
		p := start(t, name, "momgate-mom", "run", "--state-dir", mdir, "--server", c.srvAddr,
			"--listen", fmt.Sprintf("%s:%d", ip, c.imPort), "--heartbeat", "200ms", "--log-level", "debug",
			"--enroll", token, "--metrics-listen", fmt.Sprintf("%s:%d", ip, momMetricsPort))
		c.moms[name] = &momProc{name: name, ip: ip, dir: mdir, proc: p}
		momURL[name] = fmt.Sprintf("http://%s:%d/metrics", ip, momMetricsPort)
	}
	for name := range c.moms {
		c.waitUp(name)
	}
	waitFor(t, "server metrics to show two enrolled nodes up", 20*time.Second, func() bool {
		m = scrapeMetrics(t, srvURL)
		return m["momgate_enrolled_nodes"] == 2 && m[`momgate_nodes{state="up"}`] == 2 && m["momgate_sessions"] == 2
	})
	if m["momgate_admissions_total"] < 2 {
		t.Errorf("server admissions %v after two MOMs enrolled, want >= 2", m["momgate_admissions_total"])
	}
	if m[`momgate_nodes_by_protocol{protocol="v2"}`] != 2 {
		t.Errorf("nodes by protocol: v2 = %v, want 2", m[`momgate_nodes_by_protocol{protocol="v2"}`])
	}
	if m[`momgate_open_connections{channel="control"}`] < 2 {
		t.Errorf("server open control connections %v, want >= 2", m[`momgate_open_connections{channel="control"}`])
	}

	// Each MOM holds the server's active key and is connected.
	m1, m2 := c.moms["m1"], c.moms["m2"]
	for name, url := range momURL {
		waitFor(t, name+" metrics to show it connected", 20*time.Second, func() bool {
			mm := scrapeMetrics(t, url)
			return mm["momgate_server_connected"] == 1 && mm["momgate_enrolled"] == 1
		})
		mm := scrapeMetrics(t, url)
		if mm["momgate_active_key_id"] != activeKey {
			t.Errorf("%s active key %v, server's %v", name, mm["momgate_active_key_id"], activeKey)
		}
		base := strings.TrimSuffix(url, "/metrics")
		for path, want := range map[string]string{"/healthz": "ok\n", "/readyz": "ready\n"} {
			if code, body := getHealth(t, base+path); code != http.StatusOK || body != want {
				t.Errorf("%s %s: %d %q, want 200 %q", name, path, code, body, want)
			}
		}
	}

	// A swap m1 -> m2 moves m2's admissions and fills its peer table.
	before := scrapeMetrics(t, momURL["m2"])
	if pr, r := c.ping(m1, m2.imAddr(c.imPort)); r.code != 0 || !pr.Admitted {
		t.Fatalf("m1 -> m2 not admitted: %+v %s", pr, r.stderr)
	}
	// m2 sends its PingReply before it records the admission and the
	// peer, so m1's ping can return first: wait for m2 to have done both.
	var after map[string]float64
	waitFor(t, "m2 to count the admission and record m1 as a peer", 20*time.Second, func() bool {
		after = scrapeMetrics(t, momURL["m2"])
		return after["momgate_admissions_total"] > before["momgate_admissions_total"] && after["momgate_peers"] >= 1
	})
	if after[`momgate_peers_by_protocol{protocol="v2"}`] < 1 {
		t.Errorf("m2 peers %v, by protocol v2 %v; want >= 1", after["momgate_peers"], after[`momgate_peers_by_protocol{protocol="v2"}`])
	}

	// A connection that is no momgate frame is a counted rejection at the MOM.
	rejBefore := sumPrefix(after, "momgate_rejections_total{")
	sendGarbage(t, "127.0.0.1", m2.imAddr(c.imPort))
	waitFor(t, "m2 rejection counter to move", 20*time.Second, func() bool {
		after = scrapeMetrics(t, momURL["m2"])
		return sumPrefix(after, "momgate_rejections_total{") > rejBefore
	})
	if after[`momgate_rejections_total{reason="malformed"}`] < 1 {
		t.Errorf("garbage on the IM port not counted as malformed: %v", after)
	}

	// A well-formed PING sealed under another cluster's key: key_mismatch.
	k, err := keys.NewKey(rand.Reader, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	foreign, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	mismatch := after[`momgate_rejections_total{reason="key_mismatch"}`]
	if err := rawSwap(t, m1.ip, m2.imAddr(c.imPort), forger(t, m1, foreign), m1.ip); err == nil {
		t.Fatal("PING under a foreign key admitted")
	}
	waitFor(t, "m2 key_mismatch counter to move", 20*time.Second, func() bool {
		return scrapeMetrics(t, momURL["m2"])[`momgate_rejections_total{reason="key_mismatch"}`] == mismatch+1
	})

	// And at the server.
	srvRej := sumPrefix(scrapeMetrics(t, srvURL), "momgate_rejections_total{")
	sendGarbage(t, "127.0.0.1", c.srvAddr)
	waitFor(t, "server rejection counter to move", 20*time.Second, func() bool {
		return sumPrefix(scrapeMetrics(t, srvURL), "momgate_rejections_total{") > srvRej
	})

	// A connection held open shows in m1's IM gauge until it closes.
	held, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}).Dial("tcp", m1.imAddr(c.imPort))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "m1 to count the open IM connection", 20*time.Second, func() bool {
		return scrapeMetrics(t, momURL["m1"])[`momgate_open_connections{channel="im"}`] >= 1
	})
	held.Close()
	waitFor(t, "m1 to count the IM connection closed", 20*time.Second, func() bool {
		return scrapeMetrics(t, momURL["m1"])[`momgate_open_connections{channel="im"}`] == 0
	})

	// A stopped MOM: the server's gauges follow.
	m2.stop()
	waitFor(t, "server metrics to show m2 down", 30*time.Second, func() bool {
		m = scrapeMetrics(t, srvURL)
		return m[`momgate_nodes{state="up"}`] == 1 && m[`momgate_nodes{state="down"}`] == 1
	})

	// The server's log is JSON, every line, from its config file.
	c.server.stop()
	if code := c.server.waitExit(t, 10*time.Second); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	for _, line := range strings.Split(strings.TrimSpace(c.server.out.String()), "\n") {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("server log line is not JSON: %q", line)
		}
	}
	if !strings.Contains(c.server.out.String(), `"msg":"metrics listening"`) {
		t.Error("server did not log its metrics address")
	}
	if cn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", metricsPort), time.Second); err == nil {
		cn.Close()
		t.Error("server metrics port still open after the server stopped")
	}
}

// TestMetricsRemoteAddressRefused: both daemons refuse a metrics address
// that is not loopback, unless told to allow it, before doing anything.
func TestMetricsRemoteAddressRefused(t *testing.T) {
	dir := t.TempDir()
	srv := filepath.Join(dir, "server")
	if r := run(t, "", "momgate-server", "init", "--state-dir", srv); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	port := freePort(t, "127.0.0.1")
	for _, args := range [][]string{
		{"momgate-server", "run", "--state-dir", srv, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--metrics-listen", "0.0.0.0:9151"},
		{"momgate-mom", "run", "--state-dir", filepath.Join(dir, "mom"), "--listen", "127.0.0.23:15003", "--enroll", "x", "--metrics-listen", "0.0.0.0:9153"},
	} {
		r := run(t, "", args...)
		if r.code == 0 || !strings.Contains(r.stderr, "not a loopback address") || !strings.Contains(r.stderr, "--metrics-allow-remote") {
			t.Errorf("%s with a wildcard metrics address: exit %d, %q", args[0], r.code, r.stderr)
		}
	}
}

// TestHealthBeforeEnrollment: a MOM that cannot reach its server to enrol
// is alive (/healthz) but not ready (/readyz 503, saying why), and becomes
// ready once it enrols.
func TestHealthBeforeEnrollment(t *testing.T) {
	c := newCluster(t, "127.0.0.24")
	token := c.createNode("h1", "127.0.0.24")
	metricsPort := freePort(t, "127.0.0.24")
	for metricsPort == c.imPort {
		metricsPort = freePort(t, "127.0.0.24")
	}
	base := fmt.Sprintf("http://127.0.0.24:%d", metricsPort)
	dir := filepath.Join(c.dir, "h1")
	nowhere := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	args := func(server string) []string {
		return []string{"momgate-mom", "run", "--state-dir", dir, "--server", server,
			"--listen", fmt.Sprintf("127.0.0.24:%d", c.imPort), "--heartbeat", "200ms", "--enroll", token,
			"--metrics-listen", fmt.Sprintf("127.0.0.24:%d", metricsPort)}
	}
	p := start(t, "h1-unreachable", args(nowhere)...)
	waitFor(t, "h1 metrics endpoint", 20*time.Second, func() bool {
		cn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
		if err == nil {
			cn.Close()
		}
		return err == nil
	})
	waitFor(t, "h1 /readyz to say it is not enrolled", 20*time.Second, func() bool {
		code, body := getHealth(t, base+"/readyz")
		return code == http.StatusServiceUnavailable && body == "not ready: no cluster key yet: not enrolled\n"
	})
	if code, body := getHealth(t, base+"/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz of a MOM waiting to enrol: %d %q", code, body)
	}
	p.stop()
	c.moms["h1"] = &momProc{name: "h1", ip: "127.0.0.24", dir: dir, proc: start(t, "h1", args(c.srvAddr)...)}
	c.waitUp("h1")
	waitFor(t, "h1 /readyz to say ready", 20*time.Second, func() bool {
		code, body := getHealth(t, base+"/readyz")
		return code == http.StatusOK && body == "ready\n"
	})
}

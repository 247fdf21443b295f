package metrics

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/keys"
)

func TestCheckListen(t *testing.T) {
	tests := []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:9464", false, true},
		{"127.0.0.7:9464", false, true},
		{"[::1]:9464", false, true},
		{"[::ffff:127.0.0.1]:9464", false, true},
		{"localhost:9464", false, true},
		{"0.0.0.0:9464", false, false},
		{"[::]:9464", false, false},
		{":9464", false, false},
		{"192.0.2.10:9464", false, false},
		{"metrics.example:9464", false, false},
		{"0.0.0.0:9464", true, true},
		{":9464", true, true},
		{"192.0.2.10:9464", true, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1:0", false, true},
		{"127.0.0.1:x", false, false},
		{"127.0.0.1:99999", true, false},
	}
	for _, tt := range tests {
		err := CheckListen(tt.addr, tt.remote)
		if (err == nil) != tt.ok {
			t.Errorf("CheckListen(%q, %v) = %v, want ok=%v", tt.addr, tt.remote, err, tt.ok)
		}
	}
	err := CheckListen("0.0.0.0:9464", false)
	if !errors.Is(err, ErrNotLoopback) || !strings.Contains(err.Error(), "--metrics-allow-remote") {
		t.Errorf("refusal should wrap ErrNotLoopback and name the override flag: %v", err)
	}
}

// TestListenRefusesRemoteWithoutBinding: a refused address is never bound.
func TestListenRefusesRemoteWithoutBinding(t *testing.T) {
	ln, err := Listen("0.0.0.0:1", false)
	if !errors.Is(err, ErrNotLoopback) || ln != nil {
		t.Fatalf("want ErrNotLoopback and no listener, got %v, %v", ln, err)
	}
}

// scrape GETs url and parses the text exposition into series -> value,
// series written as they appear ("name{label=\"v\"}").
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("content type %q, want the text format", ct)
	}
	return parseText(t, resp.Body)
}

func parseText(t *testing.T, r io.Reader) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample line %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestServeExportsAndShutsDown(t *testing.T) {
	alog := audit.New(audit.Config{Out: io.Discard})
	k, err := keys.NewKey(rand.Reader, time.Now(), func(keys.KeyID) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	holder := keys.NewHolder(ring)
	var phase atomic.Value
	phase.Store("idle")
	reg, err := NewRegistry(append(KeyringCollectors(holder.Load),
		AuditCollector{Snapshot: alog.Counters},
		NewGaugeFunc("rotation_phase", "test", "phase", func() map[string]float64 { return Enum(phase.Load().(string), []string{"idle", "distribute"}) }),
	)...)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", false)
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String() + Path
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := logrus.New()
	log.SetOutput(io.Discard)
	go func() { done <- Serve(ctx, ln, reg, nil, log) }()

	m := scrape(t, url)
	if m["momgate_admissions_total"] != 0 {
		t.Errorf("admissions before any: %v", m["momgate_admissions_total"])
	}
	if m["momgate_active_key_id"] != float64(k.ID) {
		t.Errorf("active_key_id = %v, want %d", m["momgate_active_key_id"], k.ID)
	}
	if m[`momgate_active_key_info{key_id="`+k.ID.String()+`"}`] != 1 {
		t.Errorf("no active_key_info for %s in %v", k.ID, m)
	}
	if m[`momgate_keys{state="active"}`] != 1 || m[`momgate_keys{state="next"}`] != 0 {
		t.Errorf("keys by state wrong: %v", m)
	}
	if m[`momgate_rotation_phase{phase="idle"}`] != 1 || m[`momgate_rotation_phase{phase="distribute"}`] != 0 {
		t.Errorf("rotation phase wrong: %v", m)
	}
	if _, ok := m["go_goroutines"]; !ok {
		t.Error("Go runtime metrics missing")
	}

	alog.Record(audit.Entry{Channel: audit.ChannelIM, Outcome: audit.Accepted})
	alog.Record(audit.Entry{Channel: audit.ChannelIM, Outcome: audit.Accepted})
	alog.Record(audit.Entry{Channel: audit.ChannelIM, Outcome: audit.Rejected, Reason: "replay"})
	phase.Store("distribute")
	m = scrape(t, url)
	if m["momgate_admissions_total"] != 2 || m[`momgate_rejections_total{reason="replay"}`] != 1 {
		t.Errorf("counters did not move: admissions %v, replay %v", m["momgate_admissions_total"], m[`momgate_rejections_total{reason="replay"}`])
	}
	if m[`momgate_rotation_phase{phase="distribute"}`] != 1 || m[`momgate_rotation_phase{phase="idle"}`] != 0 {
		t.Errorf("rotation phase did not change: %v", m)
	}

	resp, err := http.Get("http://" + ln.Addr().String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /other: %s, want 404", resp.Status)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Fatal("metrics port still accepts after shutdown")
	}
}

func TestServeReportsListenerFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close() // Serve's Accept fails at once
	reg, _ := NewRegistry()
	log := logrus.New()
	log.SetOutput(io.Discard)
	if err := Serve(context.Background(), ln, reg, nil, log); err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
}

func TestEnum(t *testing.T) {
	m := Enum("grace", []string{"idle", "distribute"})
	if len(m) != 3 || m["grace"] != 1 || m["idle"] != 0 {
		t.Fatalf("Enum = %v", m)
	}
}

// TestHealthEndpoints: /healthz answers while the process serves;
// /readyz follows the daemon's readiness, saying why it is not ready; both
// answer GET and HEAD only, and are never cached.
func TestHealthEndpoints(t *testing.T) {
	reg, err := NewRegistry()
	if err != nil {
		t.Fatal(err)
	}
	var notReady atomic.Pointer[string]
	why := "no cluster key yet: not enrolled"
	notReady.Store(&why)
	ready := func() error {
		if w := notReady.Load(); w != nil {
			return errors.New(*w)
		}
		return nil
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := httptest.NewServer(Handler(reg, ready, log))
	defer srv.Close()
	get := func(method, path string) (int, string, http.Header) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, body, h := get("GET", HealthPath); code != 200 || body != "ok\n" || h.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET /healthz: %d %q %v", code, body, h)
	}
	if code, body, _ := get("GET", ReadyPath); code != 503 || body != "not ready: "+why+"\n" {
		t.Fatalf("GET /readyz while not ready: %d %q", code, body)
	}
	notReady.Store(nil)
	if code, body, _ := get("GET", ReadyPath); code != 200 || body != "ready\n" {
		t.Fatalf("GET /readyz when ready: %d %q", code, body)
	}
	if code, body, _ := get("HEAD", ReadyPath); code != 200 || body != "" {
		t.Fatalf("HEAD /readyz: %d %q", code, body)
	}
	if code, _, h := get("POST", HealthPath); code != 405 || h.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /healthz: %d, Allow %q", code, h.Get("Allow"))
	}
	// Without a readiness function the daemon is always ready.
	srv2 := httptest.NewServer(Handler(reg, nil, log))
	defer srv2.Close()
	resp, err := srv2.Client().Get(srv2.URL + ReadyPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /readyz without a readiness function: %s", resp.Status)
	}
}

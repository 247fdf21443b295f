// Package integration runs the real momgate binaries on distinct loopback
// addresses (127.0.0.x) and checks what an administrator would see.
package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "momgate-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	// Race-built binaries sleep a second at exit by default; every CLI call
	// of every test would pay it. Children inherit this.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	for _, b := range []string{"momgate-server", "momgate-mom", "momgate-qmgr", "momgate-migrate"} {
		cmd := exec.Command("go", "build", "-race", "-o", filepath.Join(dir, b), "../cmd/"+b)
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n", b, err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func bin(name string) string { return filepath.Join(binDir, name) }

// privateTempDir is an empty owner-only directory, as a state directory
// must be (t.TempDir's are made 0777 less the umask).
func privateTempDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation
	}
}

// proc is a daemon started by a test.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	return startEnv(t, name, nil, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin(args[0]), args[1:]...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		checkRace(t, name, p.out.String())
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, p.out.String())
		}
	})
	return p
}

// checkRace fails the test if a -race daemon reported a data race (it
// keeps running, so nothing else would notice).
func checkRace(t *testing.T, name, out string) {
	t.Helper()
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("%s reported a data race", name)
	}
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits; SIGKILL after 10 s.
func (p *proc) stop() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// kill sends SIGKILL and waits: a crash.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// waitExit waits for the process to exit on its own and returns its code.
func (p *proc) waitExit(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("%s did not exit within %s", p.name, timeout)
	}
	if p.err == nil {
		return 0
	}
	if ee, ok := p.err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}

// result of a one-shot command.
type result struct {
	stdout, stderr string
	code           int
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(args[0]), args[1:]...)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	err := cmd.Run()
	r := result{stdout: so.String(), stderr: se.String()}
	if ee, ok := err.(*exec.ExitError); ok {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	return r
}

// freePort finds a TCP port free on all the given loopback addresses.
func freePort(t *testing.T, ips ...string) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", ips[0]+":0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ok := true
		var others []net.Listener
		for _, ip := range ips[1:] {
			l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
			if err != nil {
				ok = false
				break
			}
			others = append(others, l)
		}
		ln.Close()
		for _, l := range others {
			l.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatalf("no common free port on %v", ips)
	return 0
}

// cluster is a server plus MOMs on 127.0.0.x.
type cluster struct {
	t       *testing.T
	dir     string
	srvDir  string
	srvAddr string
	server  *proc
	imPort  int
	moms    map[string]*momProc
}

type momProc struct {
	name, ip, dir string
	*proc
}

func (m *momProc) imAddr(port int) string { return fmt.Sprintf("%s:%d", m.ip, port) }

// newCluster initializes and starts a server on 127.0.0.1 (server IP may
// be overridden) with a short heartbeat.
func newCluster(t *testing.T, momIPs ...string) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, srvDir: filepath.Join(dir, "server"), moms: map[string]*momProc{}}
	if r := run(t, "", "momgate-server", "init", "--state-dir", c.srvDir); r.code != 0 {
		t.Fatalf("server init: %s", r.stderr)
	}
	c.srvAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	c.imPort = freePort(t, append([]string{"127.0.0.1"}, momIPs...)...)
	c.startServer()
	if r := c.qmgr("set server heartbeat=200ms"); r.code != 0 {
		t.Fatalf("set heartbeat: %s", r.stderr)
	}
	return c
}

func (c *cluster) startServer() {
	c.t.Helper()
	c.server = start(c.t, "server", "momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr, "--log-level", "debug")
	waitFor(c.t, "server admin socket", 20*time.Second, func() bool {
		return run(c.t, "", "momgate-qmgr", "--state-dir", c.srvDir, "-c", "list node").code == 0
	})
}

func (c *cluster) qmgr(args ...string) result {
	c.t.Helper()
	full := append([]string{"momgate-qmgr", "--state-dir", c.srvDir}, args...)
	if len(args) == 1 && !strings.HasPrefix(args[0], "-") {
		full = []string{"momgate-qmgr", "--state-dir", c.srvDir, "-c", args[0]}
	}
	return run(c.t, "", full...)
}

// createNode creates a node and returns its enrollment token.
func (c *cluster) createNode(name, ip string) string {
	c.t.Helper()
	r := c.qmgr("--json", "-c", fmt.Sprintf("create node %s Mom=%s,Port=%d", name, ip, c.imPort))
	if r.code != 0 {
		c.t.Fatalf("create node %s: %s", name, r.stderr)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Token == "" {
		c.t.Fatalf("create node %s: no token in %q (%v)", name, r.stdout, err)
	}
	return out.Token
}

// startMom starts (or restarts) the MOM of node name at ip; token may be "".
func (c *cluster) startMom(name, ip, token string) *momProc {
	c.t.Helper()
	dir := filepath.Join(c.dir, name)
	args := []string{"momgate-mom", "run", "--state-dir", dir, "--server", c.srvAddr,
		"--listen", fmt.Sprintf("%s:%d", ip, c.imPort), "--heartbeat", "200ms", "--log-level", "debug"}
	if token != "" {
		args = append(args, "--enroll", token)
	}
	m := &momProc{name: name, ip: ip, dir: dir, proc: start(c.t, name, args...)}
	c.moms[name] = m
	return m
}

// startMomCutOff restarts the enrolled MOM of node name at ip with a
// server address nobody listens on: a deleted MOM, which its server would
// stop (exit 4), kept running to try its sisters.
func (c *cluster) startMomCutOff(name, ip string) *momProc {
	c.t.Helper()
	dir := filepath.Join(c.dir, name)
	nowhere := fmt.Sprintf("127.0.0.1:%d", freePort(c.t, "127.0.0.1"))
	m := &momProc{name: name, ip: ip, dir: dir, proc: start(c.t, name+"-cut-off", "momgate-mom", "run", "--state-dir", dir,
		"--server", nowhere, "--listen", fmt.Sprintf("%s:%d", ip, c.imPort), "--heartbeat", "200ms", "--log-level", "debug")}
	c.moms[name] = m
	return m
}

// addMom creates, enrolls and starts a MOM and waits until it is up.
func (c *cluster) addMom(name, ip string) *momProc {
	c.t.Helper()
	m := c.startMom(name, ip, c.createNode(name, ip))
	c.waitUp(name)
	return m
}

type nodeInfo struct {
	Name     string `json:"name"`
	ID       string `json:"id"`
	Mom      string `json:"mom"`
	State    string `json:"state"`
	KeyID    string `json:"key_id"`
	KeyState string `json:"key_state"`
	Sealed   bool   `json:"sealed"`
	Session  string `json:"session"`
}

func (c *cluster) nodes() []nodeInfo {
	c.t.Helper()
	r := c.qmgr("--json", "-c", "list node")
	if r.code != 0 {
		return nil
	}
	var ns []nodeInfo
	if err := json.Unmarshal([]byte(r.stdout), &ns); err != nil {
		c.t.Fatalf("list node --json: %v in %q", err, r.stdout)
	}
	return ns
}

func (c *cluster) node(name string) (nodeInfo, bool) {
	for _, n := range c.nodes() {
		if n.Name == name {
			return n, true
		}
	}
	return nodeInfo{}, false
}

func (c *cluster) waitUp(name string) {
	c.t.Helper()
	waitFor(c.t, name+" up at the server", 30*time.Second, func() bool {
		n, ok := c.node(name)
		return ok && n.State == "up"
	})
}

type pingResult struct {
	Addr     string `json:"addr"`
	Admitted bool   `json:"admitted"`
	Reason   string `json:"reason"`
	Error    string `json:"error"`
	NodeID   string `json:"node_id"`
	Name     string `json:"name"`
	KeyID    string `json:"key_id"`
}

// ping asks MOM from to swap PINGs with MOM to.
func (c *cluster) ping(from *momProc, toAddr string) (pingResult, result) {
	c.t.Helper()
	c.waitAdmin(from)
	r := run(c.t, "", "momgate-mom", "ping", "--json", "--state-dir", from.dir, toAddr)
	var pr pingResult
	if err := json.Unmarshal([]byte(r.stdout), &pr); err != nil {
		c.t.Fatalf("ping --json: %v in %q (stderr %q)", err, r.stdout, r.stderr)
	}
	return pr, r
}

// waitAdmin waits until m's admin socket answers, so that a command run
// right after a (re)start reaches the new process.
func (c *cluster) waitAdmin(m *momProc) {
	c.t.Helper()
	waitFor(c.t, m.name+" admin socket", 20*time.Second, func() bool {
		_, ok := c.momStatus(m)
		return ok
	})
}

// peer is a row of `momgate-mom peers --json`.
type peer struct {
	Addr      string    `json:"addr"`
	Name      string    `json:"name"`
	NodeID    string    `json:"node_id"`
	KeyID     string    `json:"key_id"`
	Direction string    `json:"direction"`
	First     time.Time `json:"first"`
	Last      time.Time `json:"last"`
	Count     uint64    `json:"admissions"`
	Stamp     uint64    `json:"stamp"`
}

func (c *cluster) peers(m *momProc) []peer {
	c.t.Helper()
	r := run(c.t, "", "momgate-mom", "peers", "--json", "--state-dir", m.dir)
	if r.code != 0 {
		c.t.Fatalf("peers: %s", r.stderr)
	}
	var ps []peer
	if err := json.Unmarshal([]byte(r.stdout), &ps); err != nil {
		c.t.Fatalf("peers --json: %v in %q", err, r.stdout)
	}
	return ps
}

type momStatus struct {
	Connected bool `json:"connected"`
	Audit     struct {
		Accepted uint64            `json:"accepted"`
		Rejected map[string]uint64 `json:"rejected"`
	} `json:"audit"`
}

func (c *cluster) status(m *momProc) momStatus {
	c.t.Helper()
	r := run(c.t, "", "momgate-mom", "status", "--json", "--state-dir", m.dir)
	if r.code != 0 {
		c.t.Fatalf("status: %s", r.stderr)
	}
	var st momStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		c.t.Fatalf("status --json: %v in %q", err, r.stdout)
	}
	return st
}

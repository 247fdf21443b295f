// Package plugintest tests libauth_momgate.so, the OpenPBS authentication
// plugin, against real momgate daemons: a server and a MOM in this process
// on loopback addresses, the plugin loaded by a small C driver as OpenPBS
// loads it (../plugin/test/drive.c). Skipped without a C compiler.
package plugintest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/pbsgate"
	"github.com/momgate/momgate/mom"
	"github.com/momgate/momgate/pbsauth"
	"github.com/momgate/momgate/server"
)

// Loopback addresses of this test's daemons.
const (
	serverIP = "127.0.0.211"
	momIP    = "127.0.0.212"
)

// cluster is a momgate server and one enrolled MOM (node n1), each
// answering the plugin on its socket, and the built plugin and driver.
type cluster struct {
	dir, lib, drive       string
	serverSock, momSock   string
	serverState           string
	serverAudit, momAudit *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
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

func quiet() logrus.FieldLogger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

// needCompiler skips the test without a C compiler, make or OpenSSL's
// headers (Debian: gcc, make, libssl-dev; .ci/run installs libssl-dev).
func needCompiler(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler (cc): the plugin cannot be built")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	cmd := exec.Command("cc", "-E", "-")
	cmd.Stdin = strings.NewReader("#include <openssl/evp.h>\n")
	if err := cmd.Run(); err != nil {
		t.Skip("OpenSSL headers not found (apt-get install libssl-dev): the plugin cannot be built")
	}
}

// build compiles the plugin with the project's Makefile and the driver.
func build(t *testing.T, dir string) (lib, drive string) {
	t.Helper()
	needCompiler(t)
	out, err := exec.Command("make", "-s", "-C", "../../..", "plugin", "BIN="+dir).CombinedOutput()
	if err != nil {
		t.Fatalf("make plugin: %v\n%s", err, out)
	}
	drive = filepath.Join(dir, "drive")
	out, err = exec.Command("cc", "-O1", "-g", "-Wall", "-Werror", "-o", drive, "../plugin/test/drive.c", "-ldl", "-lpthread").CombinedOutput()
	if err != nil {
		t.Fatalf("build driver: %v\n%s", err, out)
	}
	return filepath.Join(dir, "libauth_momgate.so"), drive
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval, not synchronisation
	}
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	// Socket paths must stay short (108 bytes): not t.TempDir().
	dir, err := os.MkdirTemp("", "mgplugin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := &cluster{dir: dir, serverSock: filepath.Join(dir, "run-s", "pbs.sock"), momSock: filepath.Join(dir, "run-m", "pbs.sock"),
		serverState: filepath.Join(dir, "server"), serverAudit: &syncBuffer{}, momAudit: &syncBuffer{}}
	c.lib, c.drive = build(t, dir)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	if _, err := server.Init(c.serverState, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Config{StateDir: c.serverState, Listen: serverIP + ":0", Log: quiet(),
		Audit: audit.New(audit.Config{Out: c.serverAudit}), PBSSocket: c.serverSock, PBSHostName: "pbssrv",
		PBSServiceUsers: []string{me(t)}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := srv.Run(ctx); err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	srvAddr := srv.Addr().String()

	var res admin.CreateNodeResult
	c.admin(t, admin.OpCreateNode, admin.CreateNodeArgs{Name: "n1", Mom: momIP}, &res)
	m, err := mom.New(mom.Config{StateDir: filepath.Join(dir, "mom"), Server: srvAddr, Listen: momIP + ":0", Enroll: res.Token,
		Log: quiet(), Audit: audit.New(audit.Config{Out: c.momAudit}), PBSSocket: c.momSock})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		// A MOM told its node was deleted stops: the tests that delete n1.
		if err := m.Run(ctx); err != nil && !errors.Is(err, mom.ErrDeleted) {
			t.Errorf("mom: %v", err)
		}
	}()
	// Enrolled once its socket makes a step 1.
	waitFor(t, "the MOM to enroll", func() bool {
		r, err := pbsgate.Ask(ctx, c.momSock, &pbsauth.Request{Op: pbsauth.OpInitiate, Kind: pbsauth.KindService, Host: serverIP})
		return err == nil && r.Status == pbsauth.StatusOK
	})
	return c
}

func (c *cluster) admin(t *testing.T, op string, args, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cl *admin.Client
	waitFor(t, "the admin socket", func() bool {
		var err error
		cl, err = admin.Dial(ctx, filepath.Join(c.serverState, "admin.sock"))
		return err == nil
	})
	defer cl.Close()
	if err := cl.Call(ctx, op, args, out); err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

// run runs the driver with args and extra environment.
func (c *cluster) run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(c.drive, append([]string{c.lib}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func me(t *testing.T) string {
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	return u.Username
}

func TestPluginServiceHandshake(t *testing.T) {
	c := startCluster(t)
	// pbs_mom on n1 joins pbs_comm on the server host.
	out, err := c.run(t, nil, "once", c.momSock, serverIP, c.serverSock, momIP, "service")
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if want := "user=" + me(t) + " host=n1"; out != want {
		t.Fatalf("got %q, want %q", out, want)
	}
	// A user command on n1, to pbs_server: the host name PBS resolved.
	out, err = c.run(t, nil, "once", c.momSock, serverIP, c.serverSock, momIP, "user")
	if err != nil || !strings.HasSuffix(out, "host=n1") {
		t.Fatalf("%v: %s", err, out)
	}
	if !strings.Contains(c.serverAudit.String(), "pbs") {
		t.Fatalf("server audit log has no pbs line:\n%s", c.serverAudit.String())
	}
}

// PBS_ENCRYPT_METHOD=momgate: the handshake hands both plugins the
// connection's keys, buffers go both ways as records that do not hold
// them in the clear, and damaged, replayed or reordered records do not
// open (the driver checks each).
func TestPluginEncryptedConnection(t *testing.T) {
	c := startCluster(t)
	for _, kind := range []string{"service", "user"} {
		out, err := c.run(t, nil, "encrypt", c.momSock, serverIP, c.serverSock, momIP, kind)
		if err != nil || !strings.Contains(out, "host=n1") || !strings.HasSuffix(out, "records ok") {
			t.Fatalf("%s: %v: %s", kind, err, out)
		}
	}
	if a := c.serverAudit.String(); !strings.Contains(a, "encrypted") {
		t.Fatalf("server audit log does not say the connection is encrypted:\n%s", a)
	}
}

// The plugin's records are momgate's session records byte for byte: the
// vectors of docs/PROTOCOL.md 6.9, sealed and opened by mg_record.c.
func TestRecordVectors(t *testing.T) {
	needCompiler(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "record_vector")
	out, err := exec.Command("cc", "-O1", "-g", "-Wall", "-Werror", "-o", bin, "../plugin/test/record_vector.c",
		"../plugin/mg_record.c", "-lcrypto", "-pthread").CombinedOutput()
	if err != nil {
		t.Fatalf("build record_vector: %v\n%s", err, out)
	}
	out, err = exec.Command(bin).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "vectors ok" {
		t.Fatalf("%v: %s", err, out)
	}
}

// pbs_comm runs threads and pbs_mom forks for every job: the plugin keeps
// no state that either could break, and each thread's connection gets the
// encryption its own configuration asked for.
func TestPluginThreadsAndFork(t *testing.T) {
	c := startCluster(t)
	out, err := c.run(t, nil, "threads", "8", "25", c.serverSock, serverIP, serverIP, "service")
	if err != nil || out != "ok 200" {
		t.Fatalf("%v: %s", err, out)
	}
	out, err = c.run(t, nil, "threads-encrypt", "8", "25", c.serverSock, serverIP, serverIP, "service")
	if err != nil || out != "ok 200" {
		t.Fatalf("encrypted: %v: %s", err, out)
	}
	out, err = c.run(t, nil, "fork", c.momSock, serverIP, c.serverSock, momIP, "service")
	if err != nil || !strings.Contains(out, "child user=") || !strings.HasSuffix(out, "records ok") {
		t.Fatalf("%v: %s", err, out)
	}
	// The parent kept its connection to the daemon; the child of fork
	// starts without it (the plugin closes every inherited one).
	if !strings.Contains(out, "sockets: parent 1, child 0\n") {
		t.Fatalf("the child inherited the parent's connection to the daemon: %s", out)
	}
}

func TestPluginRefusals(t *testing.T) {
	c := startCluster(t)
	// The connection seems to come from elsewhere: a spoofed address.
	out, err := c.run(t, nil, "once", c.momSock, serverIP, c.serverSock, "127.0.0.213", "service")
	if err == nil || !strings.Contains(out, "momgate: refused") || !strings.Contains(out, "addr_mismatch") {
		t.Fatalf("spoofed address: %v: %s", err, out)
	}
	// The responder's daemon is down.
	out, err = c.run(t, nil, "once", c.momSock, serverIP, filepath.Join(c.dir, "nowhere.sock"), momIP, "service")
	if err == nil || !strings.Contains(out, "cannot reach the momgate daemon") {
		t.Fatalf("daemon down: %v: %s", err, out)
	}
	// A daemon that accepts and never answers: the plugin gives up in time.
	hung := filepath.Join(c.dir, "hung.sock")
	ln, err := net.Listen("unix", hung)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	out, err = c.run(t, []string{"MOMGATE_PBS_TIMEOUT_MS=200"}, "once", hung, serverIP, c.serverSock, momIP, "service")
	if err == nil || !strings.Contains(out, "no answer in time") {
		t.Fatalf("hung daemon: %v: %s", err, out)
	}
	// delete node: refused at once, with the reason. Step 1 is made
	// before the delete: the node's MOM stops when it is told, and may be
	// gone before a handshake could start after it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r1, err := pbsgate.Ask(ctx, c.momSock, &pbsauth.Request{Op: pbsauth.OpInitiate, Kind: pbsauth.KindService, Host: serverIP})
	if err != nil || r1.Status != pbsauth.StatusOK {
		t.Fatalf("step 1: %+v %v", r1, err)
	}
	var info admin.NodeInfo
	c.admin(t, admin.OpDeleteNode, admin.NodeArgs{Name: "n1"}, &info)
	r2, err := pbsgate.Ask(ctx, c.serverSock, &pbsauth.Request{Op: pbsauth.OpAccept, Kind: pbsauth.KindService, Host: momIP, Token: r1.Token})
	if err != nil || r2.Status != pbsauth.StatusRefused || r2.Reason != "revoked" {
		t.Fatalf("deleted node: %+v %v", r2, err)
	}
	if a := c.serverAudit.String(); !strings.Contains(a, "revoked") {
		t.Fatalf("server audit log has no revoked line:\n%s", a)
	}
}

// pbs_comm's periodic check (pbs_auth_check_ctx) of an open connection:
// admitted while the node is, then, after delete node, revoked with
// momgate's reason, which pbs_comm logs as it closes the connection.
func TestPluginCheckRevokesDeletedNode(t *testing.T) {
	checkRevokes(t, func(c *cluster) {
		var info admin.NodeInfo
		c.admin(t, admin.OpDeleteNode, admin.NodeArgs{Name: "n1"}, &info)
	}, "revoked: ")
}

// The same for a node given another address (set node Mom=): its open
// connection, from the old address, is no longer admitted.
func TestPluginCheckRevokesReaddressedNode(t *testing.T) {
	checkRevokes(t, func(c *cluster) {
		var info admin.NodeInfo
		c.admin(t, admin.OpSetNode, admin.SetArgs{Name: "n1", Attrs: []admin.Attr{{Name: "Mom", Value: "127.0.0.214"}}}, &info)
	}, "addr_mismatch: ")
}

// checkRevokes runs a handshake of n1, checks its connection three times
// (admitted), runs change, and waits for a check to revoke it with reason.
func checkRevokes(t *testing.T, change func(*cluster), reason string) {
	c := startCluster(t)
	cmd := exec.Command(c.drive, c.lib, "check", c.momSock, serverIP, c.serverSock, momIP, "service")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	next := func(what string) string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("%s: the driver stopped: %v", what, lines.Err())
		}
		return lines.Text()
	}
	check := func() string {
		t.Helper()
		if _, err := io.WriteString(stdin, "check\n"); err != nil {
			t.Fatal(err)
		}
		return next("check")
	}
	if out := next("handshake"); out != "user="+me(t)+" host=n1" {
		t.Fatalf("handshake: %s", out)
	}
	for i := 0; i < 3; i++ {
		if out := check(); out != "check=0 " {
			t.Fatalf("check %d of a live node: %q", i, out)
		}
	}
	change(c)
	// The plugin may answer from the generation it saw for up to a
	// second; a check after that asks.
	var out string
	waitFor(t, "the check to revoke the connection", func() bool {
		out = check()
		return out != "check=0 "
	})
	if !strings.HasPrefix(out, "check=1 momgate: revoked the open connection of "+momIP+" (node n1): "+reason) {
		t.Fatalf("after the change: %q", out)
	}
	if a := c.serverAudit.String(); !strings.Contains(a, "open connection, check") {
		t.Fatalf("server audit log has no line for the revoked connection:\n%s", a)
	}
}

// A daemon that cannot be asked, down or hung: the plugin says so (-1),
// PBS keeps the connection, and the next checks do not wait for it again
// for a while (pbs_comm checks in its IO threads).
func TestPluginCheckDaemonDown(t *testing.T) {
	c := startCluster(t)
	hung := filepath.Join(c.dir, "hung", "pbs.sock")
	ln, err := pbsgate.Listen(hung) // accepts, never answers
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for sock, why := range map[string]string{filepath.Join(c.dir, "nowhere.sock"): "cannot reach the momgate daemon", hung: "no answer in time"} {
		cmd := exec.Command(c.drive, c.lib, "check", c.momSock, serverIP, c.serverSock, momIP, "service")
		cmd.Env = append(os.Environ(), "DRIVE_CHECK_SOCK="+sock)
		cmd.Stdin = strings.NewReader("check\ncheck\n")
		out, err := cmd.CombinedOutput()
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err != nil || len(lines) != 3 || !strings.HasPrefix(lines[1], "check=-1 momgate: cannot check the connection: ") ||
			!strings.Contains(lines[1], why) || !strings.Contains(lines[2], why) || !strings.HasSuffix(lines[2], " (not asked again for 10 s)") {
			t.Fatalf("%s: %v: %q", why, err, out)
		}
	}
}

// The plugin keeps its connection to the daemon between requests, but a
// request made under another effective user goes on a new one: the daemon
// vouches for the user of the moment, never for the one that connected.
func TestPluginConnectionFollowsEffectiveUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to change the effective user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	c := startCluster(t)
	// nobody must reach the sockets below the test's directory.
	if err := os.Chmod(c.dir, 0o711); err != nil {
		t.Fatal(err)
	}
	out, err := c.run(t, nil, "euid", c.momSock, momIP, momIP, nobody.Uid, nobody.Gid)
	want := "user=root host=n1\nuser=nobody host=n1\nuser=root host=n1"
	if err != nil || out != want {
		t.Fatalf("%v: got\n%s\nwant\n%s", err, out, want)
	}
}

// fakeCheckDaemon answers every Check on path as valid at generation gen
// (0: the plugin asks every time), closing each connection after one
// answer if once; it counts the connections it accepted and the requests.
func fakeCheckDaemon(t *testing.T, path string, once bool, gen uint64) (conns, requests *atomicCount) {
	t.Helper()
	ln, err := pbsgate.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	n, reqs := &atomicCount{}, &atomicCount{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.add()
			go func() {
				defer c.Close()
				for {
					q, err := pbsauth.ReadRequest(c)
					if err != nil || q.Op != pbsauth.OpCheck {
						return
					}
					reqs.add()
					if _, err := c.Write(pbsauth.AppendResponse(nil, q.Op, &pbsauth.Response{Gen: gen, Verdict: pbsauth.VerdictValid})); err != nil || once {
						return
					}
				}
			}()
		}
	}()
	return n, reqs
}

type atomicCount struct {
	mu sync.Mutex
	n  int
}

func (a *atomicCount) add() { a.mu.Lock(); a.n++; a.mu.Unlock() }

func (a *atomicCount) get() int { a.mu.Lock(); defer a.mu.Unlock(); return a.n }

// The plugin keeps one connection to its daemon for a thread's requests;
// when the daemon has closed it (idle, or at its limit of requests) the
// next request goes on a new one, and succeeds.
func TestPluginKeepsAndReopensItsConnection(t *testing.T) {
	c := startCluster(t)
	for _, once := range []bool{false, true} {
		sock := filepath.Join(c.dir, fmt.Sprintf("fake%v", once), "pbs.sock")
		conns, _ := fakeCheckDaemon(t, sock, once, 0)
		cmd := exec.Command(c.drive, c.lib, "check", c.momSock, serverIP, c.serverSock, momIP, "service")
		cmd.Env = append(os.Environ(), "DRIVE_CHECK_SOCK="+sock)
		cmd.Stdin = strings.NewReader("check\ncheck\ncheck\n")
		out, err := cmd.CombinedOutput()
		if err != nil || strings.Count(string(out), "check=0 \n") != 3 {
			t.Fatalf("daemon closing after each answer %v: %v: %q", once, err, out)
		}
		want := 1
		if once {
			want = 3
		}
		if got := conns.get(); got != want {
			t.Fatalf("daemon closing after each answer %v: %d connections for 3 checks, want %d", once, got, want)
		}
	}
}

// pbs_server's own connection to pbs_comm, on the server host: admitted
// by name and address as the server host, check after check.
func TestPluginCheckServerHostItself(t *testing.T) {
	c := startCluster(t)
	cmd := exec.Command(c.drive, c.lib, "check", c.serverSock, serverIP, c.serverSock, serverIP, "service")
	cmd.Stdin = strings.NewReader("check\ncheck\n")
	out, err := cmd.CombinedOutput()
	if err != nil || string(out) != "user="+me(t)+" host=pbssrv\ncheck=0 \ncheck=0 \n" {
		t.Fatalf("%v: %q", err, out)
	}
}

// A quiet cluster: checks of a connection found valid at the daemon's
// generation ask nothing while that answer is fresh (1 s): pbs_comm's
// checks of all its connections cost about one request per second.
func TestPluginCheckQuietCostsOneRequest(t *testing.T) {
	c := startCluster(t)
	sock := filepath.Join(c.dir, "quiet", "pbs.sock")
	_, requests := fakeCheckDaemon(t, sock, false, 42)
	cmd := exec.Command(c.drive, c.lib, "check", c.momSock, serverIP, c.serverSock, momIP, "service")
	cmd.Env = append(os.Environ(), "DRIVE_CHECK_SOCK="+sock)
	cmd.Stdin = strings.NewReader(strings.Repeat("check\n", 20))
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil || strings.Count(string(out), "check=0 \n") != 20 {
		t.Fatalf("%v: %q", err, out)
	}
	// The 20 checks may straddle the end of a fresh answer: then two.
	if got := requests.get(); got < 1 || got > 1+int(time.Since(start)/time.Second) {
		t.Fatalf("%d requests for 20 checks in %s", got, time.Since(start))
	}
}

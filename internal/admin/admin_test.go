package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitTimeout bounds every wait on a condition in these tests.
const waitTimeout = 10 * time.Second

type echoArgs struct {
	Msg string `json:"msg"`
}

// testHandler implements a few ops for the tests.
func testHandler(ctx context.Context, op string, args json.RawMessage) (any, error) {
	switch op {
	case "echo":
		var a echoArgs
		if err := json.Unmarshal(args, &a); err != nil {
			return nil, Errorf(CodeBadRequest, "bad arguments: %v", err)
		}
		return a, nil
	case "none":
		return nil, nil
	case "unknown":
		return nil, Errorf(CodeUnknownNode, "unknown node %s", "n9")
	case "wrapped":
		return nil, fmt.Errorf("create: %w", Errorf(CodeDuplicateNode, "node n1 already exists"))
	case "plain":
		return nil, errors.New("disk on fire")
	case "panic":
		panic("handler bug")
	case "whoami":
		p, ok := PeerFromContext(ctx)
		if !ok {
			return nil, errors.New("no peer in context")
		}
		return p, nil
	case "block":
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return nil, Errorf(CodeUnknownOp, "unknown operation %q", op)
}

type testServer struct {
	path string
	done chan error
	stop context.CancelFunc
}

// startServer listens in a fresh temp dir and serves h with s's settings.
func startServer(t *testing.T, s *server) *testServer {
	t.Helper()
	path := filepath.Join(t.TempDir(), SocketName)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if s.h == nil {
		s.h = testHandler
	}
	if s.peerCred == nil {
		s.peerCred = peerCred
	}
	if s.idle == 0 {
		s.idle = IdleTimeout
	}
	s.euid = os.Geteuid()
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{path: path, done: make(chan error, 1), stop: cancel}
	go func() { ts.done <- s.serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		ts.wait(t)
	})
	return ts
}

// wait waits for serve to return, at most waitTimeout.
func (ts *testServer) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-ts.done:
		ts.done <- err // keep it for a second wait
		return err
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after cancel")
		return nil
	}
}

func dial(t *testing.T, path string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRoundTrip(t *testing.T) {
	ts := startServer(t, &server{})
	c := dial(t, ts.path)
	if c.Path() != ts.path {
		t.Fatalf("Path() = %s", c.Path())
	}
	ctx := context.Background()
	for i := range 3 { // several requests on one connection
		var out echoArgs
		msg := fmt.Sprintf("hello %d \"quoted\" \n", i)
		if err := c.Call(ctx, "echo", echoArgs{Msg: msg}, &out); err != nil {
			t.Fatal(err)
		}
		if out.Msg != msg {
			t.Fatalf("echo = %q, want %q", out.Msg, msg)
		}
	}
	var raw json.RawMessage
	if err := c.Call(ctx, "echo", echoArgs{Msg: "x"}, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw) != `{"msg":"x"}` {
		t.Fatalf("raw result = %s", raw)
	}
	if err := c.Call(ctx, "none", nil, &raw); err != nil {
		t.Fatal(err)
	}
	var p Peer
	if err := c.Call(ctx, "whoami", nil, &p); err != nil {
		t.Fatal(err)
	}
	if int(p.UID) != os.Geteuid() || int(p.PID) != os.Getpid() {
		t.Fatalf("peer = %+v, want uid %d pid %d", p, os.Geteuid(), os.Getpid())
	}
}

func TestSocketMode(t *testing.T) {
	ts := startServer(t, &server{})
	fi, err := os.Lstat(ts.path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode = %v, want socket 0600", fi.Mode())
	}
}

func TestServeRemovesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	// While it is live, it is not stale.
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Listen on a live socket: err = %v, want in use", err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	ln, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket left after close: %v", err)
	}
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	if err := os.WriteFile(path, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Listen(path)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("err = %v, want not a socket", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "precious" {
		t.Fatal("regular file was touched")
	}
	long := "/" + strings.Repeat("d", maxSocketPath)
	if _, err := Listen(long); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("long path: err = %v", err)
	}
}

// rawConn is a bare connection for malformed traffic.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func rawDial(t *testing.T, path string) *rawConn {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(waitTimeout))
	return &rawConn{c, bufio.NewReader(c)}
}

func (rc *rawConn) response(t *testing.T) Response {
	t.Helper()
	line, err := rc.br.ReadBytes('\n')
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	var r Response
	if err := json.Unmarshal(line, &r); err != nil {
		t.Fatalf("response %q: %v", line, err)
	}
	return r
}

func TestRequestLineLimit(t *testing.T) {
	ts := startServer(t, &server{})
	rc := rawDial(t, ts.path)

	// Exactly MaxRequest bytes is accepted.
	head := `{"op":"echo","args":{"msg":"`
	tail := `"}}`
	exact := head + strings.Repeat("a", MaxRequest-len(head)-len(tail)) + tail
	if _, err := io.WriteString(rc, exact+"\n"); err != nil {
		t.Fatal(err)
	}
	if r := rc.response(t); !r.OK {
		t.Fatalf("request of exactly %d bytes refused: %+v", MaxRequest, r.Error)
	}

	// One byte more is refused and the connection closed.
	over := head + strings.Repeat("a", MaxRequest+1-len(head)-len(tail)) + tail
	if _, err := io.WriteString(rc, over+"\n"); err != nil {
		t.Fatal(err)
	}
	r := rc.response(t)
	if r.OK || r.Code != CodeBadRequest || !strings.Contains(r.Error, "longer than 65536") {
		t.Fatalf("oversize response = %+v", r)
	}
	if _, err := rc.br.ReadByte(); err == nil {
		t.Fatal("connection still open after an oversize line")
	}

	// The server still serves others.
	if err := dial(t, ts.path).Call(context.Background(), "none", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMalformedRequestKeepsConnection(t *testing.T) {
	ts := startServer(t, &server{})
	rc := rawDial(t, ts.path)
	for _, line := range []string{`not json`, `{"op":"echo","extra":1}`, `{"op":""}`, `{"op":"Echo!"}`, `{"op":"echo"} {}`, `[]`} {
		if _, err := io.WriteString(rc, line+"\n"); err != nil {
			t.Fatal(err)
		}
		if r := rc.response(t); r.OK || r.Code != CodeBadRequest {
			t.Fatalf("%s: response = %+v, want bad_request", line, r)
		}
	}
	if _, err := io.WriteString(rc, `{"op":"echo","args":{"msg":"ok"}}`+"\r\n"); err != nil {
		t.Fatal(err)
	}
	if r := rc.response(t); !r.OK || string(r.Data) != `{"msg":"ok"}` {
		t.Fatalf("after errors: %+v", r)
	}
}

func TestHandlerErrorCodes(t *testing.T) {
	ts := startServer(t, &server{})
	c := dial(t, ts.path)
	for _, tc := range []struct {
		op, code, msg string
	}{
		{"unknown", CodeUnknownNode, "unknown node n9"},
		{"wrapped", CodeDuplicateNode, "create: node n1 already exists"},
		{"plain", CodeInternal, "disk on fire"},
		{"nosuchop", CodeUnknownOp, `unknown operation "nosuchop"`},
	} {
		err := c.Call(context.Background(), tc.op, nil, nil)
		var ae *Error
		if !errors.As(err, &ae) || ae.Code != tc.code || ae.Msg != tc.msg {
			t.Errorf("%s: err = %#v, want code %s msg %q", tc.op, err, tc.code, tc.msg)
		}
		if CodeOf(err) != tc.code {
			t.Errorf("%s: CodeOf = %s", tc.op, CodeOf(err))
		}
	}
}

func TestHandlerPanic(t *testing.T) {
	ts := startServer(t, &server{})
	c := dial(t, ts.path)
	err := c.Call(context.Background(), "panic", nil, nil)
	if CodeOf(err) != CodeInternal || !strings.Contains(err.Error(), "internal error in panic") {
		t.Fatalf("err = %v, want internal", err)
	}
	// Same connection and a new one both still work.
	if err := c.Call(context.Background(), "none", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := dial(t, ts.path).Call(context.Background(), "none", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestForbiddenPeer(t *testing.T) {
	stranger := func(*net.UnixConn) (Peer, error) { return Peer{UID: 4242, PID: 7}, nil }
	ts := startServer(t, &server{peerCred: stranger})
	c := dial(t, ts.path)
	err := c.Call(context.Background(), "none", nil, nil)
	if CodeOf(err) != CodeForbidden || !strings.Contains(err.Error(), "uid 4242") {
		t.Fatalf("err = %v, want forbidden", err)
	}

	broken := func(*net.UnixConn) (Peer, error) { return Peer{}, errors.New("no creds") }
	ts2 := startServer(t, &server{peerCred: broken})
	if err := dial(t, ts2.path).Call(context.Background(), "none", nil, nil); CodeOf(err) != CodeForbidden {
		t.Fatalf("err = %v, want forbidden", err)
	}
}

func TestAllowed(t *testing.T) {
	for _, tc := range []struct {
		uid  uint32
		euid int
		ok   bool
	}{{1000, 1000, true}, {0, 1000, true}, {1001, 1000, false}, {0, 0, true}, {1000, 0, false}} {
		if got := allowed(tc.uid, tc.euid); got != tc.ok {
			t.Errorf("allowed(%d, %d) = %v", tc.uid, tc.euid, got)
		}
	}
}

func TestCancelStopsServe(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, testHandler, nil) }()

	idle := dial(t, path)
	if err := idle.Call(context.Background(), "none", nil, nil); err != nil {
		t.Fatal(err)
	}
	// A connection inside a handler that waits for ctx.
	busy := dial(t, path)
	busyErr := make(chan error, 1)
	go func() { busyErr <- busy.Call(context.Background(), "block", nil, nil) }()

	// A raw connection blocked on its next read proves the idle one is
	// closed by the server, not by the idle timeout.
	rc := rawDial(t, path)
	if _, err := io.WriteString(rc, `{"op":"none"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	rc.response(t)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve returned %v after cancel", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := rc.br.ReadByte(); err == nil {
		t.Fatal("connection not closed by shutdown")
	}
	select {
	case err := <-busyErr:
		if err == nil {
			t.Fatal("blocked call succeeded after shutdown")
		}
	case <-time.After(waitTimeout):
		t.Fatal("blocked call did not return after shutdown")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("socket file left after shutdown: %v", err)
	}
	if err := idle.Call(context.Background(), "none", nil, nil); err == nil {
		t.Fatal("call succeeded after shutdown")
	}
}

func TestServeListenError(t *testing.T) {
	err := Serve(context.Background(), filepath.Join(t.TempDir(), "missing", SocketName), testHandler, nil)
	if err == nil {
		t.Fatal("Serve in a missing directory succeeded")
	}
}

func TestIdleReconnect(t *testing.T) {
	closed := make(chan struct{}, 4)
	ts := startServer(t, &server{idle: 100 * time.Millisecond, connDone: func() { closed <- struct{}{} }})
	c := dial(t, ts.path)
	if err := c.Call(context.Background(), "none", nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-closed: // the server closed the idle connection
	case <-time.After(waitTimeout):
		t.Fatal("idle connection not closed")
	}
	var out echoArgs
	if err := c.Call(context.Background(), "echo", echoArgs{Msg: "again"}, &out); err != nil || out.Msg != "again" {
		t.Fatalf("call after idle close: %v %+v", err, out)
	}
}

func TestClientContext(t *testing.T) {
	entered := make(chan struct{}, 1)
	h := func(ctx context.Context, op string, args json.RawMessage) (any, error) {
		if op == "block" {
			entered <- struct{}{}
		}
		return testHandler(ctx, op, args)
	}
	ts := startServer(t, &server{h: h})
	c := dial(t, ts.path)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- c.Call(ctx, "block", nil, nil) }()
	select {
	case <-entered: // the call is in flight
	case <-time.After(waitTimeout):
		t.Fatal("handler not reached")
	}
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Call ignored its context")
	}
	// The client recovers with a new connection.
	if err := c.Call(context.Background(), "none", nil, nil); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Call(context.Background(), "none", nil, nil); !errors.Is(err, ErrClientClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestClientRequestTooLarge(t *testing.T) {
	ts := startServer(t, &server{})
	c := dial(t, ts.path)
	err := c.Call(context.Background(), "echo", echoArgs{Msg: strings.Repeat("x", MaxRequest)}, nil)
	if err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("err = %v", err)
	}
	if err := c.Call(context.Background(), "none", nil, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDialMissingSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, SocketName)
	_, err := Dial(context.Background(), path)
	want := fmt.Sprintf("no server admin socket at %s: is momgate-server running with --state-dir %s?", path, dir)
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("error does not wrap ErrNotExist")
	}
	_, err = Dial(context.Background(), path, WithDaemon("momgate-mom"))
	if err == nil || !strings.Contains(err.Error(), "is momgate-mom running") {
		t.Fatalf("err = %v", err)
	}
}

func TestDialStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	_, err = Dial(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "stale socket") {
		t.Fatalf("err = %v", err)
	}
}

func TestDialPermissionMessage(t *testing.T) {
	path := filepath.Join(t.TempDir(), SocketName)
	c := &Client{path: path, daemon: "momgate-server"}
	err := c.dialError(&net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)})
	if !strings.HasPrefix(err.Error(), "permission denied on server admin socket "+path) || !errors.Is(err, syscall.EACCES) {
		t.Fatalf("err = %v", err)
	}
}

func TestErrorf(t *testing.T) {
	inner := errors.New("inner")
	err := Errorf(CodeBadValue, "port %d: %w", 0, inner)
	if err.Error() != "port 0: inner" || CodeOf(err) != CodeBadValue {
		t.Fatalf("err = %v", err)
	}
	if CodeOf(nil) != "" || CodeOf(errors.New("x")) != CodeInternal {
		t.Fatal("CodeOf")
	}
	if (&Error{Code: CodeConflict}).Error() != CodeConflict {
		t.Fatal("Error without message")
	}
	if SocketPath("/var/lib/momgate") != "/var/lib/momgate/admin.sock" {
		t.Fatal("SocketPath")
	}
}

func TestReadLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
		err  error
	}{
		{"abc\n", 3, "abc", nil},
		{"abc\r\n", 4, "abc", nil},
		{"abcd\n", 3, "", errLineTooLong},
		{"abc", 3, "", io.ErrUnexpectedEOF},
		{"", 3, "", io.EOF},
		{strings.Repeat("z", 10000) + "\n", 10000, strings.Repeat("z", 10000), nil},
		{strings.Repeat("z", 10001) + "\n", 10000, "", errLineTooLong},
	} {
		got, err := readLine(bufio.NewReaderSize(strings.NewReader(tc.in), 16), tc.max)
		if !errors.Is(err, tc.err) || string(got) != tc.want {
			t.Errorf("readLine(%.10q, %d) = %.10q, %v; want %.10q, %v", tc.in, tc.max, got, err, tc.want, tc.err)
		}
	}
}

func TestParseMom(t *testing.T) {
	for _, tc := range []struct {
		in, addr, host, err string
	}{
		{in: "10.0.0.1", addr: "10.0.0.1"},
		{in: "::ffff:10.0.0.1", addr: "10.0.0.1"},
		{in: "fd00::5", addr: "fd00::5"},
		{in: "cn01", host: "cn01"},
		{in: "CN01.Cluster.Example.", host: "cn01.cluster.example"},
		{in: "node-7.rack2", host: "node-7.rack2"},
		{in: "1.2.3", err: "last label \"3\" is all digits"},
		{in: "300.1.1.1", err: "last label \"1\" is all digits"},
		{in: "-cn01", err: "nor a host name"},
		{in: "cn01-", err: "nor a host name"},
		{in: "cn..01", err: "nor a host name"},
		{in: "cn_01", err: "nor a host name"},
		{in: "cn01:15003", err: "nor a host name"},
		{in: "", err: "nor a host name"},
		{in: strings.Repeat("a", 64), err: "nor a host name"},
		{in: strings.Repeat("a.", 127) + "ab", err: "nor a host name"},
		{in: "0.0.0.0", err: "unspecified"},
		{in: "224.0.0.1", err: "multicast"},
		{in: "fe80::1%eth0", err: "zone"},
	} {
		addr, host, err := ParseMom(tc.in)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseMom(%q) = %v, %q, %v; want an error saying %q", tc.in, addr, host, err, tc.err)
			}
		case err != nil:
			t.Errorf("ParseMom(%q): %v", tc.in, err)
		case tc.addr != "" && (addr.String() != tc.addr || host != ""):
			t.Errorf("ParseMom(%q) = %v, %q; want address %s", tc.in, addr, host, tc.addr)
		case tc.host != "" && (addr.IsValid() || host != tc.host):
			t.Errorf("ParseMom(%q) = %v, %q; want host %s", tc.in, addr, host, tc.host)
		}
	}
	if _, _, err := ParseMom("cn_01"); !errors.Is(err, ErrNotMom) {
		t.Errorf("ParseMom(cn_01): %v, want ErrNotMom", err)
	}
}

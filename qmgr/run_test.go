package qmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

func TestRunScript(t *testing.T) {
	s, fx, out := newSession(false)
	script := `# set up two nodes
create node n3 Mom=127.0.0.4

set server mode = compat
list node n3
`
	if err := RunScript(context.Background(), strings.NewReader(script), s); err != nil {
		t.Fatal(err)
	}
	if len(fx.calls) != 3 || fx.calls[2].op != admin.OpListNode {
		t.Fatalf("calls = %v", fx.calls)
	}
	if !strings.Contains(out.String(), "token: tok-n3") || !strings.HasSuffix(out.String(), "Node n3\n    Mom = 127.0.0.4\n    Port = 15003\n    state = enrolling\n    upgraded = False\n    id = node-n3\n    created = 2026-01-02T03:04:05Z\n\n") {
		t.Fatalf("output:\n%s", out)
	}
}

func TestRunScriptStopsAtFirstFailure(t *testing.T) {
	s, fx, _ := newSession(false)
	script := "create node n3 Mom=127.0.0.4\ndelete node n9\ncreate node n4 Mom=127.0.0.5\n"
	err := RunScript(context.Background(), strings.NewReader(script), s)
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || err.Error() != "qmgr: line 2: delete node n9: unknown node n9" {
		t.Fatalf("err = %v", err)
	}
	if admin.CodeOf(err) != admin.CodeUnknownNode {
		t.Fatalf("code = %s", admin.CodeOf(err))
	}
	if len(fx.calls) != 2 {
		t.Fatalf("ran past the failure: %v", fx.calls)
	}
	if _, ok := fx.srv.nodes["n4"]; ok {
		t.Fatal("line 3 ran")
	}
}

func TestRunScriptSyntaxErrorRunsNothing(t *testing.T) {
	s, fx, _ := newSession(false)
	script := "create node n3 Mom=127.0.0.4\nlist node\ncreate node n4 Mom=no_where\n"
	err := RunScript(context.Background(), strings.NewReader(script), s)
	want := `qmgr: line 3: bad value at column 20: Mom "no_where": not an IPv4 or IPv6 address, nor a host name`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Col != 20 {
		t.Fatalf("not a ParseError: %#v", err)
	}
	if len(fx.calls) != 0 {
		t.Fatalf("calls before the syntax error ran: %v", fx.calls)
	}
}

func TestRunScriptQuit(t *testing.T) {
	s, fx, _ := newSession(false)
	script := "list key\nquit\nthis is not a directive\n"
	if err := RunScript(context.Background(), strings.NewReader(script), s); err != nil {
		t.Fatal(err)
	}
	if len(fx.calls) != 1 {
		t.Fatalf("calls = %v", fx.calls)
	}
}

func TestRunScriptLimits(t *testing.T) {
	s, _, _ := newSession(false)
	long := "list node " + strings.Repeat("x", maxLine) + "\n"
	err := RunScript(context.Background(), strings.NewReader("list key\n"+long), s)
	if err == nil || !strings.Contains(err.Error(), "line 2: longer than") {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := RunScript(ctx, strings.NewReader("list key\n"), s); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
}

func TestRunInteractive(t *testing.T) {
	fx := &fakeExec{srv: newFakeServer()}
	var out, errs bytes.Buffer
	s := &Session{Exec: fx, Out: &out, Err: &errs}
	in := "list node n2\nfrob\n\ndelete node n9\nhelp\nQUIT\nlist key\n"
	if err := RunInteractive(context.Background(), strings.NewReader(in), &out, s); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), Prompt); got != 6 {
		t.Errorf("%d prompts, want 6:\n%s", got, out.String())
	}
	if !strings.HasPrefix(out.String(), Prompt+n2Block+"\n"+Prompt) || !strings.Contains(out.String(), "Directives (") {
		t.Errorf("output:\n%s", out.String())
	}
	wantErrs := "qmgr: syntax error at column 1: unknown command \"frob\" (commands: activate, create, delete, exit, export, help, history, list, print, quit, rotate, set, unset)\n" +
		"qmgr: delete node n9: unknown node n9\n"
	if errs.String() != wantErrs {
		t.Errorf("errors:\n%s\nwant\n%s", errs.String(), wantErrs)
	}
	if len(fx.calls) != 2 {
		t.Errorf("calls after quit: %v", fx.calls)
	}

	// End of input ends the session too, after a newline.
	out.Reset()
	if err := RunInteractive(context.Background(), strings.NewReader("list key"), &out, s); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out.String(), Prompt+"\n") {
		t.Errorf("output at EOF: %q", out.String())
	}
}

// startAdmin serves a fakeServer on a real admin socket.
func startAdmin(t *testing.T) (dir string, srv *fakeServer) {
	t.Helper()
	dir = t.TempDir()
	ln, err := admin.Listen(admin.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	srv = newFakeServer()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- admin.ServeListener(ctx, ln, srv.handle, nil) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("admin server did not stop")
		}
	})
	return dir, srv
}

func TestRunOverSocket(t *testing.T) {
	dir, srv := startAdmin(t)
	var out bytes.Buffer
	cfg := Config{StateDir: dir, JSON: true, Out: &out, Err: &out,
		Commands: []string{"create node n3 Mom=127.0.0.4,Port=15003"}}
	if err := Run(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	var res admin.CreateNodeResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || res.Token != "tok-n3" || res.Node.Mom != "127.0.0.4" {
		t.Fatalf("create node --json: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), `"token": "tok-n3"`) {
		t.Fatalf("no token field:\n%s", out.String())
	}

	// A duplicate is refused with the server's message; nothing changes.
	out.Reset()
	err := Run(context.Background(), Config{Socket: admin.SocketPath(dir), Out: &out, Commands: []string{"create node n3 Mom=127.0.0.9"}})
	if err == nil || err.Error() != "qmgr: create node n3: node n3 already exists" || admin.CodeOf(err) != admin.CodeDuplicateNode {
		t.Fatalf("duplicate: %v", err)
	}
	srv.mu.Lock()
	mom := srv.nodes["n3"].Mom
	srv.mu.Unlock()
	if mom != "127.0.0.4" {
		t.Fatal("duplicate create changed the node")
	}

	// A script on stdin (not a terminal).
	out.Reset()
	script := strings.NewReader("delete node n3\nlist node\n")
	if err := Run(context.Background(), Config{StateDir: dir, In: script, Out: &out}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "n3") || !strings.Contains(out.String(), "Node n1") {
		t.Fatalf("script output:\n%s", out.String())
	}
}

func TestRunNoServer(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := Run(context.Background(), Config{StateDir: dir, Out: &out, Commands: []string{"list node"}})
	want := fmt.Sprintf("qmgr: list node: no server admin socket at %s: is momgate-server running with --state-dir %s?", admin.SocketPath(dir), dir)
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("error does not wrap ErrNotExist")
	}

	// Syntax errors and help need no server.
	err = Run(context.Background(), Config{StateDir: dir, Out: &out, Commands: []string{"create node n1"}})
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("syntax error: %v", err)
	}
	out.Reset()
	if err := Run(context.Background(), Config{StateDir: dir, Out: &out, Commands: []string{"help", "quit", "list node"}}); err != nil || !strings.Contains(out.String(), "Directives") {
		t.Fatalf("help: %v\n%s", err, out.String())
	}

	if err := Run(context.Background(), Config{Out: &out}); err == nil || !strings.Contains(err.Error(), "--state-dir DIR") {
		t.Fatalf("no server given: %v", err)
	}
	if p, _ := (Config{StateDir: "/a", Socket: "/b/s"}).SocketPath(); p != "/b/s" {
		t.Fatalf("socket does not win: %s", p)
	}
	if p, _ := (Config{StateDir: "/a"}).SocketPath(); p != filepath.Join("/a", admin.SocketName) {
		t.Fatalf("state dir socket: %s", p)
	}
}

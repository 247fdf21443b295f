//go:build linux

package qmgr

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/ptytest"
)

// TestMain doubles as momgate-qmgr's interactive session when the
// terminal test runs this binary on a pseudo-terminal.
func TestMain(m *testing.M) {
	if sock := os.Getenv("QMGR_TEST_SOCKET"); sock != "" {
		err := Run(context.Background(), Config{Socket: sock, In: os.Stdin, Out: os.Stdout, Err: os.Stderr,
			Options: Options{Abort: os.Getenv("QMGR_TEST_ABORT") != ""}})
		if err != nil && !Printed(err) {
			os.Stderr.WriteString(err.Error() + "\n")
		}
		os.Exit(ExitStatus(err))
	}
	os.Exit(m.Run())
}

const (
	keyUp    = "\x1b[A"
	keyLeft  = "\x1b[D"
	keyRight = "\x1b[C"
	ctrlA    = "\x01"
	ctrlE    = "\x05"
	ctrlD    = "\x04"
)

// prompt is one interactive momgate-qmgr on a pseudo-terminal.
type promptTerm struct {
	t *testing.T
	*ptytest.Term
}

func startPrompt(t *testing.T, sock, home string, env ...string) *promptTerm {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "QMGR_TEST_SOCKET="+sock, "HOME="+home, "TERM=xterm")
	cmd.Env = append(cmd.Env, env...)
	term, err := ptytest.Start(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(term.Close)
	p := &promptTerm{t, term}
	p.expect(Prompt)
	return p
}

func (p *promptTerm) expect(want string) string {
	p.t.Helper()
	got, err := p.Expect(want, 20*time.Second)
	if err != nil {
		p.t.Fatal(err)
	}
	return got
}

func (p *promptTerm) send(keys string) {
	p.t.Helper()
	if err := p.Send(keys); err != nil {
		p.t.Fatal(err)
	}
}

func (p *promptTerm) exit(wantErr bool) {
	p.t.Helper()
	err := p.Wait(20 * time.Second)
	if (err != nil) != wantErr {
		p.t.Fatalf("exit: %v\n%s", err, p.Output())
	}
}

func TestPromptOnTerminal(t *testing.T) {
	dir, srv := startAdmin(t)
	sock := admin.SocketPath(dir)
	home := t.TempDir()
	srv.mu.Lock()
	srv.nodes["zeta"] = admin.NodeInfo{Name: "zeta", ID: "node-zeta", Mom: "127.0.0.9", Port: 15003, State: "down", Created: t0}
	srv.mu.Unlock()

	p := startPrompt(t, sock, home)
	// Editing: a missing letter put in with Left, a word fixed after Ctrl-A.
	p.send("lst nod n2" + ctrlA + keyRight + "i" + ctrlE + keyLeft + keyLeft + keyLeft + "e" + "\r")
	p.expect("Node n2\n")
	p.expect(Prompt)
	// Tab completes commands, objects and node names fetched from the server.
	p.send("pri\tno\tze\t\r")
	p.expect("create node zeta Mom=127.0.0.9,Port=15003\n")
	p.expect(Prompt)
	// Two candidates: a second Tab lists both.
	p.send("list node n\t\t")
	p.expect("n1")
	p.expect("n2")
	p.send("1 Mom\r")
	p.expect("Node n1\n    Mom = 127.0.0.2\n")
	p.expect(Prompt)
	// Up recalls the previous directive.
	p.send(keyUp + "\r")
	p.expect("Node n1\n    Mom = 127.0.0.2\n")
	p.expect(Prompt)
	// An error is printed and the session goes on.
	p.send("delete node nope\r")
	p.expect("qmgr: delete node nope: unknown node nope")
	p.expect(Prompt)
	p.send("history\r")
	got := p.expect("5  history\n")
	for _, want := range []string{"1  list node n2\n", "2  print node zeta\n", "3  list node n1 Mom\n", "4  delete node nope\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("history lacks %q:\n%s", want, got)
		}
	}
	p.send(ctrlD)
	p.exit(false)

	// The history file is owner-only and outlives the session.
	hist := filepath.Join(home, HistoryFileName)
	st, err := os.Stat(hist)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("history file: %v %v", st, err)
	}

	// A new session recalls the last one's directives.
	p = startPrompt(t, sock, home)
	p.send(keyUp + keyUp + keyUp + "\r")
	p.expect("Node n1\n    Mom = 127.0.0.2\n")
	p.expect(Prompt)
	p.send("quit\r")
	p.exit(false)
}

func TestPromptAbort(t *testing.T) {
	dir, _ := startAdmin(t)
	p := startPrompt(t, admin.SocketPath(dir), t.TempDir(), "QMGR_TEST_ABORT=1")
	p.send("list node n1 Mom\r")
	p.expect("Mom = 127.0.0.2")
	p.send("delete node nope\r")
	p.expect("unknown node nope")
	err := p.Wait(20 * time.Second)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != ExitFailed {
		t.Fatalf("-a: exit %v, want status %d", err, ExitFailed)
	}
}

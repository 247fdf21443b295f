//go:build linux

package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/ptytest"
)

// TestMain doubles as momgate-qmgr when the shell completion tests run
// this binary through a wrapper on PATH.
func TestMain(m *testing.M) {
	if os.Getenv("QMGR_AS_BINARY") == "1" {
		os.Exit(run(os.Args, os.Stderr))
	}
	os.Exit(m.Run())
}

// fakeAdmin serves list_node and list_key on an admin socket in a new
// state directory.
func fakeAdmin(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ln, err := admin.Listen(admin.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	handle := func(_ context.Context, op string, _ json.RawMessage) (any, error) {
		switch op {
		case admin.OpListNode:
			return []admin.NodeInfo{{Name: "n1", Mom: "127.0.0.2"}, {Name: "zeta", Mom: "127.0.0.3"}}, nil
		case admin.OpListKey:
			return admin.KeyList{Keys: []admin.KeyInfo{{ID: "0a1b2c3d", State: "active"}}}, nil
		}
		return nil, admin.Errorf(admin.CodeUnknownOp, "unknown operation %q", op)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- admin.ServeListener(ctx, ln, handle, nil) }()
	t.Cleanup(func() { cancel(); <-done })
	return dir
}

// wrapperPath makes a directory with a momgate-qmgr that runs this test
// binary as the real one.
func wrapperPath(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	script := "#!/bin/sh\nQMGR_AS_BINARY=1 exec '" + os.Args[0] + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, binary), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestShellCompletesDirectives types `momgate-qmgr -c "li<Tab>no<Tab>ze<Tab>`
// into each shell with momgate-qmgr's completion loaded, and waits for
// the directive completed word by word, node name from the server too.
func TestShellCompletesDirectives(t *testing.T) {
	state := fakeAdmin(t)
	bin := wrapperPath(t)
	for _, sh := range []struct {
		shell string
		args  []string
		load  string
	}{
		{"bash", []string{"--norc", "--noprofile", "-i"}, "source <(momgate-qmgr completion bash)"},
		{"zsh", []string{"-f", "-i"}, "autoload -U compinit; compinit -u; source <(momgate-qmgr completion zsh)"},
		{"fish", []string{"--no-config", "-i"}, "momgate-qmgr completion fish | source"},
	} {
		t.Run(sh.shell, func(t *testing.T) {
			path, err := exec.LookPath(sh.shell)
			if err != nil {
				if os.Getenv("CI") == "true" {
					t.Fatalf("%s not installed: .ci/run installs it", sh.shell)
				}
				t.Skipf("%s not installed", sh.shell)
			}
			cmd := exec.Command(path, sh.args...)
			cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "MOMGATE_STATE_DIR="+state,
				"HOME="+t.TempDir(), "TERM=dumb", "PS1=READY> ", "PROMPT=READY> ")
			term, err := ptytest.Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			defer term.Close()
			expect := func(want string) {
				t.Helper()
				if _, err := term.Expect(want, 20*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			if sh.shell == "fish" {
				term.Send("function fish_prompt; echo -n 'READY> '; end\r")
			}
			expect("READY> ")
			term.Send(sh.load + "; echo LOADED\r")
			expect("LOADED")
			expect("READY> ")
			term.Send(`momgate-qmgr -c "li` + "\t")
			expect(`-c "list `)
			// The shell prints what it inserts: the rest of each word.
			term.Send("no\t")
			expect("node ")
			term.Send("ze\t")
			expect("zeta ")
			// The line is the directive, quote still open: run it.
			term.Send("Mom\"\r")
			expect("Node zeta\n    Mom = 127.0.0.3\n")
		})
	}
}

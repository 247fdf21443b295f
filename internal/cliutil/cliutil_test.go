package cliutil

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestEnvVar(t *testing.T) {
	for in, want := range map[string]string{
		"log-level":            "MOMGATE_SERVER_LOG_LEVEL",
		"metrics-allow-remote": "MOMGATE_SERVER_METRICS_ALLOW_REMOTE",
		"listen":               "MOMGATE_SERVER_LISTEN",
	} {
		if got := EnvVar("MOMGATE_SERVER_", in); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestExit(t *testing.T) {
	var printed []string
	p := func(s string) { printed = append(printed, s) }
	if code := Exit("b", nil, p); code != 0 || len(printed) != 0 {
		t.Fatalf("nil: %d %q", code, printed)
	}
	if code := Exit("b", errors.New("bad flag"), p); code != 1 || len(printed) != 1 || printed[0] != "b: bad flag" {
		t.Fatalf("plain error: %d %q", code, printed)
	}
	printed = nil
	logged := fmt.Errorf("wrapped: %w", Logged(errors.New("listen: in use")))
	if code := Exit("b", logged, p); code != 1 || len(printed) != 0 {
		t.Fatalf("logged error printed again: %d %q", code, printed)
	}
	if code := Exit("b", WithStatus(4, Logged(errors.New("node deleted"))), p); code != 4 || len(printed) != 0 {
		t.Fatalf("logged error with status 4: %d %q", code, printed)
	}
	if code := Exit("b", fmt.Errorf("x: %w", WithStatus(3, errors.New("gone"))), p); code != 3 || len(printed) != 1 || printed[0] != "b: x: gone" {
		t.Fatalf("error with status 3: %d %q", code, printed)
	}
}

func TestCompletionScript(t *testing.T) {
	for _, sh := range Shells {
		for _, directives := range []bool{false, true} {
			s, err := CompletionScript("momgate-qmgr", sh, directives)
			if err != nil || !strings.Contains(s, "_momgate_qmgr") || !strings.Contains(s, "--generate-bash-completion") ||
				strings.Contains(s, "BINARY") || strings.Contains(s, "DIRECTIVE_PART") {
				t.Errorf("%s: %v\n%s", sh, err, s)
			}
			if got := strings.Contains(s, CompleteDirectiveCommand); got != directives {
				t.Errorf("%s, directives %v: script calls %s: %v", sh, directives, CompleteDirectiveCommand, got)
			}
		}
	}
	if _, err := CompletionScript("x", "tcsh", false); err == nil {
		t.Error("tcsh: want an error")
	}
}

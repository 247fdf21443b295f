package daemon

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestCrashHook: unarmed there is no hook; armed, other steps pass, and
// the step it names kills the process with SIGKILL after saying so.
func TestCrashHook(t *testing.T) {
	if step := os.Getenv("MOMGATE_TEST_CRASH_CHILD"); step != "" {
		hook := CrashHook(step)
		hook("another-step")
		os.Stderr.WriteString("passed another-step\n")
		hook(step)
		os.Stderr.WriteString("survived the crash point\n")
		os.Exit(0)
	}
	if CrashHook("") != nil {
		t.Fatal("unarmed hook is not nil")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHook$")
	cmd.Env = append(os.Environ(), "MOMGATE_TEST_CRASH_CHILD=activating")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("child: %v, want it killed (stderr %q)", err, stderr.String())
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child ended %v, want SIGKILL", ee)
	}
	out := stderr.String()
	if !strings.Contains(out, "passed another-step") || strings.Contains(out, "survived") ||
		!strings.Contains(out, CrashEnv+"=activating: killing myself") {
		t.Fatalf("child stderr %q", out)
	}
}

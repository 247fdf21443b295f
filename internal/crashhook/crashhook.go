// Package crashhook is a test-only fault injector: when the environment
// variable MOMGATE_TEST_CRASH_AT names a step (for example "activating" or
// "mom-update-saved"), the daemon kills itself with SIGKILL right after
// that step, as kill -9 would. The integration tests use it to crash the
// server and MOMs at exact rotation and enrollment steps; the step names
// are listed in docs/KEYS.md. Unset (always, in production) it does nothing.
package crashhook

import (
	"fmt"
	"os"
	"sync"
	"syscall"
)

// EnvVar is the environment variable that arms the hook.
const EnvVar = "MOMGATE_TEST_CRASH_AT"

var (
	once sync.Once
	step string
)

// At kills the process with SIGKILL if the hook is armed for step.
func At(name string) {
	once.Do(func() { step = os.Getenv(EnvVar) })
	if step == "" || step != name {
		return
	}
	fmt.Fprintf(os.Stderr, "%s=%s: killing myself with SIGKILL (test hook)\n", EnvVar, name)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
}

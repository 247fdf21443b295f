package daemon

import (
	"fmt"
	"os"
	"syscall"
)

// CrashEnv is the environment variable that arms the test-only crash hook
// of the daemons' commands (docs/KEYS.md, "Test-only crash hook").
const CrashEnv = "MOMGATE_TEST_CRASH_AT"

// CrashHookFromEnv is the crash hook CrashEnv arms, for a daemon's
// Config.CrashAt; nil when CrashEnv is unset, as it always is in
// production.
func CrashHookFromEnv() func(step string) { return CrashHook(os.Getenv(CrashEnv)) }

// CrashHook returns a hook that, called with step, kills the process with
// SIGKILL, as kill -9 would; other steps pass. The integration tests crash
// the daemons at exact rotation and enrollment steps with it. It is nil
// for the empty step.
func CrashHook(step string) func(string) {
	if step == "" {
		return nil
	}
	return func(name string) {
		if name != step {
			return
		}
		fmt.Fprintf(os.Stderr, "%s=%s: killing myself with SIGKILL (test hook)\n", CrashEnv, name)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

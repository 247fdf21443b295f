//go:build linux

package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/ptytest"
)

// TestMakeRunCtrlC runs `make run` on a terminal, as an administrator
// would, alone and with its output piped, and presses Ctrl-C once it is
// up: make exits 0, the demo has shown what it refuses, and nothing is
// left behind, no process and no directory.
func TestMakeRunCtrlC(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, shell string }{
		{"terminal", `exec make --no-print-directory run`},
		{"piped", `make --no-print-directory run 2>&1 | cat; exit "${PIPESTATUS[0]}"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Ports of its own, so that nothing else on this host is in its way.
			imPort := freePort(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
			cmd := exec.Command("bash", "-c", tc.shell)
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir(),
				fmt.Sprintf("DEMO_SERVER_PORT=%d", freePort(t, "127.0.0.1")),
				fmt.Sprintf("DEMO_IM_PORT=%d", imPort),
				fmt.Sprintf("DEMO_RELAY_PORT=%d", freePortExcept(t, imPort, "127.0.0.3")),
				fmt.Sprintf("DEMO_DEAD_PORT=%d", freePort(t, "127.0.0.1")))
			term, err := ptytest.Start(cmd)
			if err != nil {
				t.Fatal(err)
			}
			defer term.Close()
			if _, err := term.Expect("press Ctrl-C to stop the cluster", 5*time.Minute); err != nil {
				t.Fatal(err)
			}
			out := term.Output()
			m := regexp.MustCompile(`== state in (\S+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no state directory in:\n%s", out)
			}
			work := m[1]
			for _, want := range []string{
				"refused, replay (Reject code 7", "reason=replay", // the replayed PING, and n3's audit line
				"stops, exit status 4", "reason=revoked", // the deleted n4, at the server
				"NOT admitted: refused_by_peer", // and at its sister
				"admitted in = ", "admitted out = ", "audit accepted = ",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("the demo does not show %q:\n%s", want, out)
				}
			}
			if err := term.Send("\x03"); err != nil {
				t.Fatal(err)
			}
			if err := term.Wait(time.Minute); err != nil {
				t.Fatalf("make run after Ctrl-C: %v\n%s", err, term.Output())
			}
			if !strings.Contains(term.Output(), "stopped; removed "+work) {
				t.Errorf("no clean stop:\n%s", term.Output())
			}
			if _, err := os.Stat(work); !os.IsNotExist(err) {
				t.Errorf("%s left behind (%v)", work, err)
			}
			if left := processesMentioning(t, work); len(left) > 0 {
				t.Errorf("processes left behind: %q", left)
			}
		})
	}
}

// freePortExcept is freePort, never port.
func freePortExcept(t *testing.T, port int, ips ...string) int {
	t.Helper()
	for range 50 {
		if p := freePort(t, ips...); p != port {
			return p
		}
	}
	t.Fatal("no other free port")
	return 0
}

// processesMentioning lists the command lines of running processes that
// name s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	dirs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue // gone meanwhile
		}
		if bytes.Contains(b, []byte(s)) {
			out = append(out, string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
		}
	}
	return out
}

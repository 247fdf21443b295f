package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool returns the path of tool; CI (CI=true), whose .ci/run
// installs it, fails without it, a developer's machine skips.
func needTool(t *testing.T, tool string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed: .ci/run installs it", tool)
	}
	t.Skipf("%s not installed (apt-get install %s)", tool, tool)
	return ""
}

// checkManPages lints every installed page with mandoc (no warning
// allowed) and reads it as man would, checking the sections a
// hand-written page has and that environment variables print whole.
func checkManPages(t *testing.T, dir string) {
	mandoc := needTool(t, "mandoc")
	for _, b := range []string{"momgate-server", "momgate-mom", "momgate-qmgr", "momgate-migrate"} {
		page := filepath.Join(dir, b+".8")
		out, err := exec.Command(mandoc, "-T", "lint", "-W", "warning", page).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("mandoc -T lint %s: %v\n%s", page, err, out)
		}
		text, err := exec.Command(mandoc, "-T", "utf8", "-O", "width=200", page).Output()
		if err != nil {
			t.Fatalf("mandoc %s: %v", page, err)
		}
		plain := stripOverstrike(string(text))
		for _, sec := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "FILES", "EXIT STATUS", "SEE ALSO"} {
			if sec == "OPTIONS" && b != "momgate-qmgr" {
				sec = "COMMANDS" // the daemons' options belong to their commands
			}
			if !strings.Contains(plain, "\n"+sec+"\n") {
				t.Errorf("%s: no %s section", b, sec)
			}
		}
		if !strings.Contains(plain, b+" \u2010 ") && !strings.Contains(plain, b+" - ") {
			t.Errorf("%s: NAME line is not \"%s - ...\":\n%.300s", b, b, plain)
		}
	}
	server, _ := exec.Command(mandoc, "-T", "utf8", "-O", "width=200", filepath.Join(dir, "momgate-server.8")).Output()
	plain := stripOverstrike(string(server))
	for _, want := range []string{"MOMGATE_SERVER_<FLAG>", "Environment: MOMGATE_SERVER_LISTEN, MOMGATE_LISTEN.", "momgate-server init --state-dir DIR"} {
		if !strings.Contains(plain, want) {
			t.Errorf("momgate-server(8) lacks %q", want)
		}
	}
}

// stripOverstrike removes the backspace overstrike mandoc uses for bold
// and underline.
func stripOverstrike(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		if i+1 < len(rs) && rs[i+1] == '\b' {
			i++ // skip the char and the backspace; the next one is kept
			continue
		}
		b.WriteRune(rs[i])
	}
	return b.String()
}

// checkCompletionSyntax parses the installed completion scripts with
// their shells.
func checkCompletionSyntax(t *testing.T, usr string) {
	for _, sh := range []struct{ shell, path string }{
		{"bash", "share/bash-completion/completions/momgate-qmgr"},
		{"zsh", "share/zsh/site-functions/_momgate-qmgr"},
		{"fish", "share/fish/vendor_completions.d/momgate-qmgr.fish"},
	} {
		t.Run(sh.shell, func(t *testing.T) {
			bin := needTool(t, sh.shell)
			flag := "-n"
			if sh.shell == "fish" {
				flag = "--no-execute"
			}
			out, err := exec.Command(bin, flag, filepath.Join(usr, sh.path)).CombinedOutput()
			if err != nil || len(out) > 0 {
				t.Errorf("%s %s: %v\n%s", sh.shell, sh.path, err, out)
			}
		})
	}
}

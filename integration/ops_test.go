package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// complete runs a binary's bash completion script in a real bash for the
// command line words (the last one is being typed) and returns COMPREPLY.
func complete(t *testing.T, bash string, words ...string) []string {
	t.Helper()
	r := run(t, "", words[0], "completion", "bash")
	if r.code != 0 {
		t.Fatalf("%s completion bash: %s", words[0], r.stderr)
	}
	fn := "_" + strings.ReplaceAll(words[0], "-", "_")
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = "'" + w + "'"
	}
	script := r.stdout + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
		strconv.Itoa(len(words)-1) + "\n" + fn + "\nprintf '%s\\n' \"${COMPREPLY[@]}\"\n"
	cmd := exec.Command(bash, "--norc", "--noprofile", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("bash completion of %q: %v\n%s", words, err, out)
	}
	got := strings.Fields(string(out))
	sort.Strings(got)
	return got
}

// TestBashCompletion drives the generated scripts the way bash does.
func TestBashCompletion(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not installed")
	}
	cases := []struct {
		words []string
		want  []string
	}{
		{[]string{"momgate-server", "r"}, []string{"restore", "run"}},
		{[]string{"momgate-server", "ru"}, []string{"run"}},
		{[]string{"momgate-server", "b"}, []string{"backup"}},
		{[]string{"momgate-server", "c"}, []string{"completion", "config"}},
		{[]string{"momgate-server", "config", ""}, []string{"check"}},
		{[]string{"momgate-server", "run", "--metrics-"}, []string{"--metrics-allow-remote", "--metrics-listen"}},
		{[]string{"momgate-mom", "st"}, []string{"state", "status"}},
		{[]string{"momgate-mom", "state", ""}, []string{"check", "restored"}},
		{[]string{"momgate-mom", "run", "--hea"}, []string{"--heartbeat"}},
		{[]string{"momgate-mom", "completion", ""}, []string{"bash", "fish", "zsh"}},
		{[]string{"momgate-qmgr", "n"}, []string{"nodes"}},
		{[]string{"momgate-qmgr", "--st"}, []string{"--state-dir"}},
	}
	for _, tc := range cases {
		got := complete(t, bash, tc.words...)
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("complete %q: got %q, want %q", tc.words, got, tc.want)
		}
	}
}

// TestZshCompletionParses: the zsh script is valid zsh, where zsh exists.
func TestZshCompletionParses(t *testing.T) {
	zsh, err := exec.LookPath("zsh")
	if err != nil {
		t.Skip("zsh not installed")
	}
	for _, b := range []string{"momgate-server", "momgate-mom", "momgate-qmgr"} {
		r := run(t, "", b, "completion", "zsh")
		p := filepath.Join(t.TempDir(), "_"+b)
		if err := os.WriteFile(p, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(zsh, "-n", p).CombinedOutput(); err != nil {
			t.Errorf("zsh -n %s: %v %s", b, err, out)
		}
	}
}

// TestAuditLogReopenedOnSIGHUP: logrotate moves the server's audit log and
// sends SIGHUP; the server keeps running and writes a new file.
func TestAuditLogReopenedOnSIGHUP(t *testing.T) {
	c := newCluster(t, "127.0.0.24")
	audit := filepath.Join(c.srvDir, "audit.log")
	c.addMom("h1", "127.0.0.24")
	waitFor(t, "an audit line", 10*time.Second, func() bool {
		b, _ := os.ReadFile(audit)
		return strings.Contains(string(b), "accepted")
	})
	if err := os.Rename(audit, audit+".1"); err != nil {
		t.Fatal(err)
	}
	if err := c.server.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the server to reopen its audit log", 10*time.Second, func() bool {
		_, err := os.Stat(audit)
		return err == nil
	})
	if st, _ := os.Stat(audit); st.Mode().Perm() != 0o600 {
		t.Errorf("reopened audit log mode %o, want 600", st.Mode().Perm())
	}
	// The next admission attempt lands in the new file.
	sendGarbage(t, "127.0.0.24", c.srvAddr)
	waitFor(t, "an audit line in the new file", 10*time.Second, func() bool {
		b, _ := os.ReadFile(audit)
		return strings.Contains(string(b), "rejected")
	})
	if b, _ := os.ReadFile(audit + ".1"); strings.Contains(string(b), "rejected") {
		t.Error("the rejection went to the rotated file")
	}
	if c.server.exited() {
		t.Fatal("server died")
	}
}

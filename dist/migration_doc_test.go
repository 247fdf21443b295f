package dist

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// documentedRestartCmd returns the --restart-cmd example of
// docs/MIGRATION.md (the sh block after its marker comment).
func documentedRestartCmd(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile("../docs/MIGRATION.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(doc), "<!-- restart-cmd example: dist/migration_doc_test.go runs it -->")
	if !ok {
		t.Fatal("docs/MIGRATION.md lost the restart-cmd example marker")
	}
	for _, line := range strings.Split(after, "\n") {
		line = strings.TrimSpace(line)
		if rest, ok := strings.CutPrefix(line, "--restart-cmd '"); ok && strings.HasSuffix(rest, "'") {
			return strings.TrimSuffix(rest, "'")
		}
	}
	t.Fatal("no --restart-cmd '...' line after the marker")
	return ""
}

// TestDocumentedRestartCmd runs the restart hook docs/MIGRATION.md and
// rolling-migrate.sh --help show, with ssh and systemctl replaced by
// recorders and /etc/momgate by a temporary directory: it must set
// MOMGATE_MOM_PROTOCOL in the mom.env the shipped unit reads, keep the
// file's other lines, and restart the unit.
func TestDocumentedRestartCmd(t *testing.T) {
	tmpl := documentedRestartCmd(t)
	help, err := exec.Command("bash", "../migration/rolling-migrate.sh", "--help").Output()
	if err != nil {
		t.Fatalf("rolling-migrate.sh --help: %v", err)
	}
	if !strings.Contains(string(help), "'"+tmpl+"'") {
		t.Errorf("rolling-migrate.sh --help does not show the documented example %q:\n%s", tmpl, help)
	}
	unit, err := os.ReadFile("momgate-mom.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "EnvironmentFile=-/etc/momgate/mom.env\n") || !strings.Contains(tmpl, "/etc/momgate/mom.env") {
		t.Fatal("the example and the shipped unit name different environment files")
	}
	for _, doc := range []string{"../docs/MIGRATION.md", "../migration/rolling-migrate.sh", "../README.md", "../docs/DEPLOYMENT.md"} {
		if b, _ := os.ReadFile(doc); strings.Contains(string(b), "protocol.env") {
			t.Errorf("%s names protocol.env, which no unit reads", doc)
		}
	}

	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	bin := filepath.Join(dir, "bin")
	log := filepath.Join(dir, "systemctl.log")
	for _, d := range []string{etc, bin} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	fakes := map[string]string{
		// ssh HOST COMMAND...: run the command here, as the remote shell would.
		"ssh":       "#!/bin/sh\nshift\nexec sh -c \"$*\"\n",
		"systemctl": "#!/bin/sh\necho \"$*\" >> '" + log + "'\n",
	}
	for name, script := range fakes {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := filepath.Join(etc, "mom.env")
	run := func(protocol string) {
		t.Helper()
		cmd := strings.NewReplacer("{node}", "n7", "{protocol}", protocol, "/etc/momgate", etc).Replace(tmpl)
		c := exec.Command("bash", "-c", cmd) // as rolling-migrate.sh runs it
		c.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("documented restart command %q: %v\n%s", cmd, err, out)
		}
	}
	if err := os.WriteFile(env, []byte("MOMGATE_MOM_LOG_LEVEL=debug\nMOMGATE_MOM_PROTOCOL=follow\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run("ping")
	if got, _ := os.ReadFile(env); string(got) != "MOMGATE_MOM_LOG_LEVEL=debug\nMOMGATE_MOM_PROTOCOL=ping\n" {
		t.Errorf("mom.env after the upgrade hook:\n%s", got)
	}
	// mom.env deleted after enrollment, as the README says: created again.
	os.Remove(env)
	run("follow")
	if got, _ := os.ReadFile(env); string(got) != "MOMGATE_MOM_PROTOCOL=follow\n" {
		t.Errorf("mom.env after the rollback hook:\n%s", got)
	}
	if got, _ := os.ReadFile(log); string(got) != "restart momgate-mom\nrestart momgate-mom\n" {
		t.Errorf("systemctl calls:\n%s", got)
	}
}

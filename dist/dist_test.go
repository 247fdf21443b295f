// Package dist holds the files that deploy momgate: systemd units, the
// sysusers entry and example configs. Its tests run `make install` and
// check the installed tree and the units.
package dist

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// makeInstall runs `make install` from the repository root with vars.
func makeInstall(t *testing.T, vars ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
	cmd := exec.Command("make", append([]string{"--no-print-directory", "install"}, vars...)...)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make install %v: %v\n%s", vars, err, out)
	}
	return string(out)
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestInstallInPlace(t *testing.T) {
	root := t.TempDir()
	usr, etc := filepath.Join(root, "usr"), filepath.Join(root, "etc")
	makeInstall(t, "BIN="+filepath.Join(root, "build"), "PREFIX="+usr, "SYSCONFDIR="+etc)

	want := map[string]os.FileMode{
		"usr/bin/momgate-server":                                0o755,
		"usr/bin/momgate-mom":                                   0o755,
		"usr/bin/momgate-qmgr":                                  0o755,
		"usr/lib/systemd/system/momgate-server.service":         0o644,
		"usr/lib/systemd/system/momgate-mom.service":            0o644,
		"usr/lib/sysusers.d/momgate.conf":                       0o644,
		"etc/momgate/server.toml":                               0o644,
		"etc/momgate/mom.toml":                                  0o644,
		"usr/share/man/man8/momgate-server.8":                   0o644,
		"usr/share/man/man8/momgate-mom.8":                      0o644,
		"usr/share/man/man8/momgate-qmgr.8":                     0o644,
		"usr/share/bash-completion/completions/momgate-mom":     0o644,
		"usr/share/zsh/site-functions/_momgate-qmgr":            0o644,
		"usr/share/fish/vendor_completions.d/momgate-qmgr.fish": 0o644,
		"usr/share/man/man8/momgate-migrate.8":                  0o644,
		"usr/share/doc/momgate/DEPLOYMENT.md":                   0o644,
	}
	for rel, m := range want {
		if got := mode(t, filepath.Join(root, rel)); got&^0o022 != m&^0o022 {
			t.Errorf("%s: mode %o, want %o", rel, got, m)
		}
	}

	// The units run the installed binaries with the installed configs.
	unit, err := os.ReadFile(filepath.Join(usr, "lib/systemd/system/momgate-server.service"))
	if err != nil {
		t.Fatal(err)
	}
	wantExec := "ExecStart=" + filepath.Join(usr, "bin/momgate-server") + " run --config " + filepath.Join(etc, "momgate/server.toml")
	if !strings.Contains(string(unit), wantExec+"\n") {
		t.Errorf("server unit lacks %q:\n%s", wantExec, unit)
	}

	// The installed configs are valid as shipped.
	for _, d := range []string{"server", "mom"} {
		cmd := exec.Command(filepath.Join(usr, "bin/momgate-"+d), "config", "check", filepath.Join(etc, "momgate", d+".toml"))
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ok" {
			t.Errorf("config check of installed %s.toml: %v %s", d, err, out)
		}
	}

	// A second install keeps an edited config.
	cfg := filepath.Join(etc, "momgate/server.toml")
	edited := []byte("# edited by the administrator\nlisten = \":15001\"\n")
	if err := os.WriteFile(cfg, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	out := makeInstall(t, "BIN="+filepath.Join(root, "build"), "PREFIX="+usr, "SYSCONFDIR="+etc)
	if got, _ := os.ReadFile(cfg); !bytes.Equal(got, edited) {
		t.Errorf("make install overwrote an edited config:\n%s", got)
	}
	if !strings.Contains(out, "kept existing") {
		t.Errorf("make install did not say it kept the config:\n%s", out)
	}

	t.Run("man pages", func(t *testing.T) {
		checkManPages(t, filepath.Join(usr, "share/man/man8"))
	})
	t.Run("completion scripts", func(t *testing.T) {
		checkCompletionSyntax(t, usr)
	})

	t.Run("systemd-analyze verify", func(t *testing.T) {
		sa, err := exec.LookPath("systemd-analyze")
		if err != nil {
			t.Skip("systemd-analyze not installed")
		}
		units := []string{
			filepath.Join(usr, "lib/systemd/system/momgate-server.service"),
			filepath.Join(usr, "lib/systemd/system/momgate-mom.service"),
		}
		cmd := exec.Command(sa, append([]string{"verify"}, units...)...)
		// Documentation=man:... is checked against the installed pages.
		cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(usr, "share/man"), "SYSTEMD_LOG_LEVEL=notice")
		out, err := cmd.CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
		}
	})
}

// TestInstallStaged: with DESTDIR the files land under it, but what they
// name (unit ExecStart, config paths) is the final PREFIX.
func TestInstallStaged(t *testing.T) {
	root := t.TempDir()
	stage := filepath.Join(root, "stage")
	makeInstall(t, "BIN="+filepath.Join(root, "build"), "DESTDIR="+stage, "PREFIX=/usr")
	unit, err := os.ReadFile(filepath.Join(stage, "usr/lib/systemd/system/momgate-mom.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/bin/momgate-mom run --config /etc/momgate/mom.toml\n") {
		t.Errorf("staged unit does not name the final paths:\n%s", unit)
	}
	if strings.Contains(string(unit), stage) {
		t.Error("staged unit names the staging directory")
	}
	for _, rel := range []string{"usr/bin/momgate-qmgr", "etc/momgate/mom.toml", "usr/share/man/man8/momgate-mom.8"} {
		if _, err := os.Stat(filepath.Join(stage, rel)); err != nil {
			t.Errorf("staged %s: %v", rel, err)
		}
	}
}

// TestUnitsHardened guards the hardening settings the deployment relies on.
func TestUnitsHardened(t *testing.T) {
	required := []string{
		"NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectSystem=strict", "ProtectHome=yes",
		"StateDirectory=momgate", "StateDirectoryMode=0700", "UMask=0077",
		"RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet=\n",
		"SystemCallFilter=@system-service", "User=momgate",
	}
	for _, u := range []string{"momgate-server.service", "momgate-mom.service"} {
		data, err := os.ReadFile(u)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range required {
			if !strings.Contains(string(data), "\n"+r) {
				t.Errorf("%s lacks %q", u, strings.TrimSpace(r))
			}
		}
	}
}

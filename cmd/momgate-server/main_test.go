package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/cliutil"
	"github.com/momgate/momgate/server"
)

// runApp runs the CLI with a recorder in place of the daemon.
func runApp(t *testing.T, args ...string) (server.Config, string, string, error) {
	t.Helper()
	var got server.Config
	a := app(func(_ context.Context, cfg server.Config) error {
		got = cfg
		return nil
	})
	var out, errOut bytes.Buffer
	a.Writer, a.ErrWriter = &out, &errOut
	err := a.Run(append([]string{binary}, args...))
	return got, out.String(), errOut.String(), err
}

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestEveryRunFlagIsAConfigKey: the file can say whatever the command line
// can, and each flag has its MOMGATE_SERVER_* variable.
func TestEveryRunFlagIsAConfigKey(t *testing.T) {
	s, err := schema(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range runFlags() {
		name := f.Names()[0]
		env := f.(cli.DocGenerationFlag).GetEnvVars()
		if len(env) == 0 || env[0] != cliutil.EnvVar(envPrefix, name) {
			t.Errorf("--%s: first environment variable %v, want %s", name, env, cliutil.EnvVar(envPrefix, name))
		}
		if name == "config" {
			continue
		}
		if _, ok := s.Lookup(name); !ok {
			t.Errorf("--%s has no config key", name)
		}
	}
}

func TestRunPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, "server.toml", `
state-dir = "`+dir+`"
listen = "127.0.0.9:1000"
log-level = "warn"
audit-log = "`+filepath.Join(dir, "a.log")+`"
metrics-listen = "127.0.0.9:9151"
`)
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		listen     string
		metrics    string
		allowRemot bool
	}{
		{name: "default", args: []string{"--state-dir", dir}, listen: "127.0.0.1:15001"},
		{name: "file", args: []string{"--config", file}, listen: "127.0.0.9:1000", metrics: "127.0.0.9:9151"},
		{name: "env over file", env: map[string]string{"MOMGATE_SERVER_LISTEN": "127.0.0.8:2000"},
			args: []string{"--config", file}, listen: "127.0.0.8:2000", metrics: "127.0.0.9:9151"},
		{name: "old env name", env: map[string]string{"MOMGATE_LISTEN": "127.0.0.6:2000"},
			args: []string{"--config", file}, listen: "127.0.0.6:2000", metrics: "127.0.0.9:9151"},
		{name: "config from env", env: map[string]string{"MOMGATE_SERVER_CONFIG": file},
			listen: "127.0.0.9:1000", metrics: "127.0.0.9:9151"},
		{name: "flag over env over file", env: map[string]string{"MOMGATE_SERVER_LISTEN": "127.0.0.8:2000", "MOMGATE_SERVER_METRICS_LISTEN": "127.0.0.8:9"},
			args:   []string{"--config", file, "--listen", "127.0.0.7:3000", "--metrics-listen", "0.0.0.0:9151", "--metrics-allow-remote"},
			listen: "127.0.0.7:3000", metrics: "0.0.0.0:9151", allowRemot: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, _, _, err := runApp(t, append([]string{"run"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if got.StateDir != dir || got.Listen != tt.listen || got.MetricsListen != tt.metrics || got.MetricsAllowRemote != tt.allowRemot {
				t.Errorf("got state-dir %q listen %q metrics %q remote %v; want %q %q %q %v",
					got.StateDir, got.Listen, got.MetricsListen, got.MetricsAllowRemote, dir, tt.listen, tt.metrics, tt.allowRemot)
			}
			if got.Log == nil || got.Audit == nil {
				t.Error("logger or audit log missing")
			}
		})
	}
}

func TestRunNeedsStateDir(t *testing.T) {
	_, _, _, err := runApp(t, "run")
	if err == nil || !strings.Contains(err.Error(), "state-dir") || !strings.Contains(err.Error(), "MOMGATE_SERVER_STATE_DIR") {
		t.Fatalf("want a missing state-dir error, got %v", err)
	}
}

func TestRunRejectsBadConfig(t *testing.T) {
	file := writeFile(t, "bad.toml", "listen = \"nowhere\"\n")
	_, _, _, err := runApp(t, "run", "--config", file, "--state-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "bad.toml:1: listen") {
		t.Fatalf("want a line-numbered config error, got %v", err)
	}
}

// TestRunLogsDaemonError: a failing daemon is logged through logrus and
// main prints nothing more.
func TestRunLogsDaemonError(t *testing.T) {
	a := app(func(context.Context, server.Config) error { return errors.New("boom") })
	a.Writer, a.ErrWriter = &bytes.Buffer{}, &bytes.Buffer{}
	err := a.Run([]string{binary, "run", "--state-dir", t.TempDir(), "--audit-log", "-", "--log-level", "panic"})
	if err == nil {
		t.Fatal("daemon error lost")
	}
	var printed []string
	if code := cliutil.Exit(binary, err, func(s string) { printed = append(printed, s) }); code != 1 || len(printed) != 0 {
		t.Fatalf("exit %d, printed %q; want 1 and nothing (already logged)", code, printed)
	}
}

func TestConfigCheck(t *testing.T) {
	_, out, _, err := runApp(t, "config", "check", "../../dist/server.toml")
	if err != nil || out != "ok\n" {
		t.Fatalf("shipped server.toml: %v, %q", err, out)
	}
	bad := writeFile(t, "bad.toml", `# a config with four problems
state-dir = "relative"
listen = "127.0.0.1:99999"
log-level = "chatty"

metrics-listen = "0.0.0.0:9151"
colour = "blue"
`)
	_, out, errOut, err := runApp(t, "config", "check", bad)
	if err == nil || out != "" {
		t.Fatalf("bad file: err %v, stdout %q", err, out)
	}
	for _, want := range []string{
		bad + ":2: state-dir: ",
		bad + ":3: listen: ",
		bad + ":4: log-level: ",
		bad + ":6: metrics-listen: ",
		bad + ":7: colour: unknown key",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("output lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(err.Error(), "5 problem") {
		t.Errorf("summary %q", err)
	}
	ok := writeFile(t, "remote.toml", "metrics-listen = \"0.0.0.0:9151\"\nmetrics-allow-remote = true\n")
	if _, out, _, err := runApp(t, "config", "check", ok); err != nil || out != "ok\n" {
		t.Errorf("remote metrics allowed in the file: %v %q", err, out)
	}
	if _, _, _, err := runApp(t, "config", "check"); err == nil {
		t.Error("config check without FILE exited 0")
	}
	if _, _, _, err := runApp(t, "config", "check", filepath.Join(t.TempDir(), "absent.toml")); err == nil {
		t.Error("config check of a missing file exited 0")
	}
}

func TestCompletionAndMan(t *testing.T) {
	_, out, _, err := runApp(t, "completion", "bash")
	if err != nil || !strings.Contains(out, "complete -o filenames -F _momgate_server momgate-server") {
		t.Fatalf("bash completion: %v\n%s", err, out)
	}
	_, out, _, err = runApp(t, "completion", "zsh")
	if err != nil || !strings.HasPrefix(out, "#compdef momgate-server\n") {
		t.Fatalf("zsh completion: %v\n%s", err, out)
	}
	_, out, _, err = runApp(t, "completion", "fish")
	if err != nil || !strings.Contains(out, "complete -c momgate-server -f -a '(_momgate_server)'") {
		t.Fatalf("fish completion: %v\n%s", err, out)
	}
	if _, _, _, err := runApp(t, "completion", "tcsh"); err == nil {
		t.Error("completion tcsh: want an error")
	}
	_, out, _, err = runApp(t, "man")
	if err != nil || !strings.Contains(out, ".TH MOMGATE\\-SERVER 8") || !strings.Contains(out, `metrics\-listen`) ||
		!strings.Contains(out, "MOMGATE_SERVER_<FLAG>") {
		t.Fatalf("man page: %v\n%.300s", err, out)
	}
}

// TestJoinRefusesMalformedTokenFirst: a join whose token cannot be parsed
// is refused with the token's error and leaves no state directory behind.
func TestJoinRefusesMalformedTokenFirst(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	for _, tok := range []string{"garbage", "mgj1_AAAA"} {
		_, _, _, err := runApp(t, "join", "--token", tok, "--state-dir", dir, "--listen", "127.0.0.41:15001",
			"--replication-listen", "127.0.0.41:15005")
		if err == nil || !strings.Contains(err.Error(), "--token: malformed join token") {
			t.Fatalf("token %q: got %v, want a malformed-token error", tok, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Fatalf("token %q: the refused join left %s behind (%v)", tok, dir, err)
		}
	}
}

// TestBackupRestoreFlags: backup and restore need their files; a backup
// that is not one is refused naming the file, and leaves no directory.
func TestBackupRestoreFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"backup", "--state-dir", dir}, "backup needs --out FILE"},
		{[]string{"backup", "--out", "/x"}, "state-dir"},
		{[]string{"backup", "--state-dir", dir, "--out", filepath.Join(t.TempDir(), "b"), "extra"}, "backup takes no arguments"},
		{[]string{"restore", "--state-dir", dir}, "restore needs --from FILE"},
		{[]string{"restore", "--state-dir", dir, "--from", writeFile(t, "junk", "{}")}, "not a valid momgate backup"},
	} {
		_, _, _, err := runApp(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("a refused restore left %s (%v)", dir, err)
	}
}

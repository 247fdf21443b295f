package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/internal/cliutil"
	"github.com/momgate/momgate/mom"
)

func runApp(t *testing.T, args ...string) (mom.Config, string, string, error) {
	t.Helper()
	var got mom.Config
	a := app(func(_ context.Context, cfg mom.Config) error {
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
	if listenFlag().Names()[0] != "listen" {
		t.Fatalf("listenFlag is --%s", listenFlag().Names()[0])
	}
}

func TestRunPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := writeFile(t, "mom.toml", `
state-dir = "`+dir+`"
server = "127.0.0.1:2000"
listen = "127.0.0.5:15003"
heartbeat = "2s"
freshness = "0s"
audit-log = "`+filepath.Join(dir, "a.log")+`"
`)
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		server    string
		listen    string
		heartbeat time.Duration
	}{
		{name: "file", args: []string{"--config", file}, server: "127.0.0.1:2000", listen: "127.0.0.5:15003", heartbeat: 2 * time.Second},
		{name: "env over file", env: map[string]string{"MOMGATE_MOM_HEARTBEAT": "3s", "MOMGATE_MOM_LISTEN": "127.0.0.6:15003"},
			args: []string{"--config", file}, server: "127.0.0.1:2000", listen: "127.0.0.6:15003", heartbeat: 3 * time.Second},
		{name: "old env name", env: map[string]string{"MOMGATE_SERVER": "127.0.0.1:4000"},
			args: []string{"--config", file}, server: "127.0.0.1:4000", listen: "127.0.0.5:15003", heartbeat: 2 * time.Second},
		{name: "flag over env over file", env: map[string]string{"MOMGATE_MOM_HEARTBEAT": "3s"},
			args: []string{"--config", file, "--heartbeat", "4s", "--server", "127.0.0.1:5000"}, server: "127.0.0.1:5000", listen: "127.0.0.5:15003", heartbeat: 4 * time.Second},
		{name: "defaults", args: []string{"--state-dir", dir, "--listen", "127.0.0.5:1", "--audit-log", "-"},
			server: "127.0.0.1:15001", listen: "127.0.0.5:1", heartbeat: mom.DefaultHeartbeat},
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
			if got.StateDir != dir || got.Server != tt.server || got.Listen != tt.listen || got.Heartbeat != tt.heartbeat {
				t.Errorf("got %q %q %q %s; want %q %q %q %s", got.StateDir, got.Server, got.Listen, got.Heartbeat,
					dir, tt.server, tt.listen, tt.heartbeat)
			}
		})
	}
}

// TestServerList: --server takes a list from the flag, the environment
// (commas) and the file (an array, or one string with commas), with the
// precedence of every other key; a bad list is refused wherever it came
// from, naming what is wrong.
func TestServerList(t *testing.T) {
	dir := t.TempDir()
	base := "state-dir = \"" + dir + "\"\nlisten = \"127.0.0.5:15003\"\naudit-log = \"-\"\n"
	array := writeFile(t, "array.toml", base+`server = ["127.0.0.1:2000", "127.0.0.2", "s3.example:2000"]`+"\n")
	joined := writeFile(t, "joined.toml", base+`server = "127.0.0.1:2000,127.0.0.2:2000"`+"\n")
	good := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "file array", args: []string{"--config", array}, want: "127.0.0.1:2000,127.0.0.2,s3.example:2000"},
		{name: "file string", args: []string{"--config", joined}, want: "127.0.0.1:2000,127.0.0.2:2000"},
		{name: "env over file", env: map[string]string{"MOMGATE_MOM_SERVER": "127.0.0.7:1,127.0.0.8:1"},
			args: []string{"--config", array}, want: "127.0.0.7:1,127.0.0.8:1"},
		{name: "flag over env", env: map[string]string{"MOMGATE_MOM_SERVER": "127.0.0.7:1,127.0.0.8:1"},
			args: []string{"--config", array, "--server", "127.0.0.9:1, 127.0.0.10:1"}, want: "127.0.0.9:1, 127.0.0.10:1"},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, _, _, err := runApp(t, append([]string{"run"}, tt.args...)...)
			if err != nil {
				t.Fatal(err)
			}
			if got.Server != tt.want {
				t.Errorf("server %q, want %q", got.Server, tt.want)
			}
			if _, err := mom.ParseServers(got.Server); err != nil {
				t.Errorf("the daemon would refuse %q: %v", got.Server, err)
			}
		})
	}
	bad := []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{name: "flag empty element", args: []string{"--state-dir", dir, "--listen", "127.0.0.5:1", "--server", "a:1,,b:1"},
			want: "element 2 of \"a:1,,b:1\" is empty"},
		{name: "flag duplicate", args: []string{"--state-dir", dir, "--listen", "127.0.0.5:1", "--server", "a:15001,a"},
			want: "element 2 (a:15001) repeats element 1"},
		{name: "env bad port", env: map[string]string{"MOMGATE_MOM_SERVER": "a:1,b:99999"},
			args: []string{"--state-dir", dir, "--listen", "127.0.0.5:1"}, want: "port \"99999\" is not a number from 1 to 65535"},
		{name: "file array duplicate", args: []string{"--config", writeFile(t, "dup.toml", base+`server = ["a:1", "a:1"]`+"\n")},
			want: "server: bad server list: element 2 (a:1) repeats element 1"},
		{name: "file array not strings", args: []string{"--config", writeFile(t, "int.toml", base+`server = ["a:1", 2]`+"\n")},
			want: "element 2 is the integer 2"},
		{name: "file array element with a comma", args: []string{"--config", writeFile(t, "comma.toml", base+`server = ["a:1,b:1"]`+"\n")},
			want: "holds a comma"},
		{name: "file empty array", args: []string{"--config", writeFile(t, "empty.toml", base+`server = []`+"\n")},
			want: "server: bad server list: empty"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, _, errOut, err := runApp(t, append([]string{"run"}, tt.args...)...)
			if err == nil {
				t.Fatal("accepted")
			}
			if msg := err.Error() + errOut; !strings.Contains(msg, tt.want) {
				t.Errorf("error %q lacks %q", msg, tt.want)
			}
		})
	}
}

func TestRunNeedsListen(t *testing.T) {
	_, _, _, err := runApp(t, "run", "--state-dir", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "missing listen") || !strings.Contains(err.Error(), "MOMGATE_MOM_LISTEN") {
		t.Fatalf("want a missing listen error, got %v", err)
	}
}

func TestConfigCheck(t *testing.T) {
	_, out, _, err := runApp(t, "config", "check", "../../dist/mom.toml")
	if err != nil || out != "ok\n" {
		t.Fatalf("shipped mom.toml: %v, %q", err, out)
	}
	bad := writeFile(t, "bad.toml", `listen = "0.0.0.0:15003"
server = ":15001"
enroll = "not-a-token"
heartbeat = "-1s"
freshness = "soon"
`)
	_, _, errOut, err := runApp(t, "config", "check", bad)
	if err == nil {
		t.Fatal("bad file passed")
	}
	for _, want := range []string{":1: listen: ", "wildcard", ":2: server: ", ":3: enroll: bad enrollment token", ":4: heartbeat: ", ":5: freshness: bad duration"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("output lacks %q:\n%s", want, errOut)
		}
	}
}

func TestAdminCommandsNeedStateDir(t *testing.T) {
	for _, cmd := range []string{"peers", "status"} {
		if _, _, _, err := runApp(t, cmd); err == nil || !strings.Contains(err.Error(), "MOMGATE_MOM_STATE_DIR") {
			t.Errorf("%s without --state-dir: %v", cmd, err)
		}
	}
}

func TestCompletionAndMan(t *testing.T) {
	_, out, _, err := runApp(t, "completion", "bash")
	if err != nil || !strings.Contains(out, "-F _momgate_mom momgate-mom") {
		t.Fatalf("bash completion: %v\n%s", err, out)
	}
	_, out, _, err = runApp(t, "man")
	if err != nil || !strings.Contains(out, ".TH MOMGATE\\-MOM 8") {
		t.Fatalf("man page: %v\n%.300s", err, out)
	}
}

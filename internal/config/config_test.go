package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// testFlags returns fresh flags: urfave/cli keeps "set from environment"
// state in the flag values, so each run needs its own.
func testFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config"},
		&cli.StringFlag{Name: "listen", Value: "127.0.0.1:15001", EnvVars: []string{"MOMGATE_TEST_LISTEN", "MOMGATE_TEST_OLD_LISTEN"}},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"MOMGATE_TEST_LOG_LEVEL"}},
		&cli.DurationFlag{Name: "heartbeat", Value: 10 * time.Second, EnvVars: []string{"MOMGATE_TEST_HEARTBEAT"}},
		&cli.BoolFlag{Name: "metrics-allow-remote", EnvVars: []string{"MOMGATE_TEST_METRICS_ALLOW_REMOTE"}},
		&cli.StringFlag{Name: "state-dir", EnvVars: []string{"MOMGATE_TEST_STATE_DIR"}},
	}
}

var testChecks = map[string]Check{
	"listen":    ListenAddr,
	"log-level": LogLevel,
	"heartbeat": PositiveDuration,
	"state-dir": AbsPath,
}

func testSchema(t *testing.T) *Schema {
	t.Helper()
	s, err := FromFlags(testFlags(), []string{"config"}, testChecks)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type resolved struct {
	Listen, Level, StateDir string
	Heartbeat               time.Duration
	Remote                  bool
}

// runApp runs a one-command app the way the daemons wire their run
// command, and returns what the action saw.
func runApp(t *testing.T, args []string) (resolved, error) {
	t.Helper()
	var got resolved
	flags := testFlags()
	schema, err := FromFlags(flags, []string{"config"}, testChecks)
	if err != nil {
		t.Fatal(err)
	}
	app := &cli.App{
		Name: "t",
		Commands: []*cli.Command{{
			Name:  "run",
			Flags: flags,
			Action: func(c *cli.Context) error {
				if p := c.String("config"); p != "" {
					vals, err := Load(p, schema)
					if err != nil {
						return err
					}
					if err := Apply(c, vals); err != nil {
						return err
					}
				}
				if err := Require(c, flags[5]); err != nil {
					return err
				}
				got = resolved{Listen: c.String("listen"), Level: c.String("log-level"), StateDir: c.String("state-dir"),
					Heartbeat: c.Duration("heartbeat"), Remote: c.Bool("metrics-allow-remote")}
				return nil
			},
		}},
	}
	err = app.Run(append([]string{"t", "run"}, args...))
	return got, err
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
listen = "127.0.0.9:1000"
log-level = "warn"
heartbeat = "3s"
metrics-allow-remote = true
state-dir = "/var/lib/file"
`)
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want resolved
	}{
		{
			name: "defaults only",
			args: []string{"--state-dir", "/flag"},
			want: resolved{Listen: "127.0.0.1:15001", Level: "info", StateDir: "/flag", Heartbeat: 10 * time.Second},
		},
		{
			name: "file over default",
			args: []string{"--config", file},
			want: resolved{Listen: "127.0.0.9:1000", Level: "warn", StateDir: "/var/lib/file", Heartbeat: 3 * time.Second, Remote: true},
		},
		{
			name: "environment over file",
			env: map[string]string{"MOMGATE_TEST_LISTEN": "127.0.0.8:2000", "MOMGATE_TEST_HEARTBEAT": "4s",
				"MOMGATE_TEST_METRICS_ALLOW_REMOTE": "false"},
			args: []string{"--config", file},
			want: resolved{Listen: "127.0.0.8:2000", Level: "warn", StateDir: "/var/lib/file", Heartbeat: 4 * time.Second},
		},
		{
			name: "old environment name still read",
			env:  map[string]string{"MOMGATE_TEST_OLD_LISTEN": "127.0.0.6:2000"},
			args: []string{"--config", file},
			want: resolved{Listen: "127.0.0.6:2000", Level: "warn", StateDir: "/var/lib/file", Heartbeat: 3 * time.Second, Remote: true},
		},
		{
			name: "flag over environment over file",
			env:  map[string]string{"MOMGATE_TEST_LISTEN": "127.0.0.8:2000", "MOMGATE_TEST_LOG_LEVEL": "error"},
			args: []string{"--config", file, "--listen", "127.0.0.7:3000", "--heartbeat", "5s", "--state-dir", "/flag"},
			want: resolved{Listen: "127.0.0.7:3000", Level: "error", StateDir: "/flag", Heartbeat: 5 * time.Second, Remote: true},
		},
		{
			name: "flag equal to the default still wins over the file",
			args: []string{"--config", file, "--log-level", "info", "--metrics-allow-remote=false"},
			want: resolved{Listen: "127.0.0.9:1000", Level: "info", StateDir: "/var/lib/file", Heartbeat: 3 * time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			got, err := runApp(t, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestRequire(t *testing.T) {
	_, err := runApp(t, nil)
	if err == nil || !strings.Contains(err.Error(), "missing state-dir") || !strings.Contains(err.Error(), "$MOMGATE_TEST_STATE_DIR") {
		t.Fatalf("want a missing state-dir error naming the flag, env and key, got %v", err)
	}
	t.Setenv("MOMGATE_TEST_STATE_DIR", "/env")
	got, err := runApp(t, nil)
	if err != nil || got.StateDir != "/env" {
		t.Fatalf("state-dir from environment: %+v, %v", got, err)
	}
}

func TestLoadErrorIsReported(t *testing.T) {
	bad := writeFile(t, "listen = 5\n")
	if _, err := runApp(t, []string{"--config", bad}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("want ErrInvalid, got %v", err)
	}
	if _, err := runApp(t, []string{"--config", filepath.Join(t.TempDir(), "absent.toml")}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("want a not-exist error, got %v", err)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []Problem // Msg holds a substring of the message
	}{
		{name: "empty file", body: ""},
		{name: "comments only", body: "# nothing\n\n"},
		{name: "valid", body: "listen = \":15001\"\nheartbeat = \"250ms\"\nmetrics-allow-remote = false\n"},
		{
			name: "unknown key with suggestion",
			body: "# c\nlisten = \"127.0.0.1:1\"\nlistn = \"x\"\n",
			want: []Problem{{3, "listn", `unknown key (did you mean "listen"?)`}},
		},
		{
			name: "underscore spelling",
			body: "\nlog_level = \"info\"\n",
			want: []Problem{{2, "log_level", `did you mean "log-level"?`}},
		},
		{
			name: "bad values, all reported in line order",
			body: "log-level = \"loud\"\n\nlisten = \"127.0.0.1\"\nheartbeat = \"10\"\nstate-dir = \"relative/dir\"\nbogus = 1\n",
			want: []Problem{
				{1, "log-level", `bad log level "loud"`},
				{3, "listen", `bad address "127.0.0.1": want HOST:PORT`},
				{4, "heartbeat", `bad duration "10"`},
				{5, "state-dir", `path "relative/dir" is not absolute`},
				{6, "bogus", "unknown key"},
			},
		},
		{
			name: "wrong types",
			body: "listen = 15001\nheartbeat = 10\nmetrics-allow-remote = \"yes\"\n",
			want: []Problem{
				{1, "listen", "want a string, got the integer 15001"},
				{2, "heartbeat", "want a duration string"},
				{3, "metrics-allow-remote", `want a boolean (true or false), got the string "yes"`},
			},
		},
		{
			name: "port out of range and zero duration",
			body: "listen = \"127.0.0.1:70000\"\nheartbeat = \"0s\"\n",
			want: []Problem{
				{1, "listen", "is not a number from 1 to 65535"},
				{2, "heartbeat", "must be above zero"},
			},
		},
		{
			name: "table",
			body: "listen = \":1\"\n\n[metrics]\nlisten = \"127.0.0.1:9\"\n",
			want: []Problem{{3, "metrics", "no tables"}},
		},
		{
			name: "syntax error stops at its line",
			body: "listen = \":1\"\nlog-level = \nheartbeat = \"x\"\n",
			want: []Problem{{2, "", "syntax:"}},
		},
		{
			name: "duplicate key",
			body: "listen = \":1\"\nlisten = \":2\"\n",
			want: []Problem{{2, "", "syntax: Key 'listen' has already been defined"}},
		},
	}
	s := testSchema(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals, err := Parse("f.toml", []byte(tt.body), s)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("want no problems, got %v", err)
				}
				return
			}
			var ps *Problems
			if !errors.As(err, &ps) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("want *Problems, got %v (values %v)", err, vals)
			}
			if len(ps.List) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ps.List), len(tt.want), err)
			}
			for i, w := range tt.want {
				g := ps.List[i]
				if g.Line != w.Line || g.Key != w.Key || !strings.Contains(g.Msg, w.Msg) {
					t.Errorf("problem %d: got %+v, want line %d key %q containing %q", i, g, w.Line, w.Key, w.Msg)
				}
			}
			for i, l := range ps.Lines() {
				if !strings.HasPrefix(l, "f.toml:") {
					t.Errorf("line %d %q lacks the file name", i, l)
				}
			}
		})
	}
}

func TestParseValues(t *testing.T) {
	vals, err := Parse("f", []byte("listen = \"[::1]:5\"\n\nheartbeat = \"1m30s\"\nmetrics-allow-remote = true\n"), testSchema(t))
	if err != nil {
		t.Fatal(err)
	}
	want := Values{
		"listen":               {Text: "[::1]:5", Line: 1},
		"heartbeat":            {Text: "1m30s", Line: 3},
		"metrics-allow-remote": {Text: "true", Line: 4},
	}
	if !reflect.DeepEqual(vals, want) {
		t.Fatalf("got %v, want %v", vals, want)
	}
}

func TestCrossKeyCheck(t *testing.T) {
	s := NewSchema(
		Key{Name: "a", Kind: KindString, Check: func(v string, f Values) error {
			if v == "x" && !f.Bool("b") {
				return errors.New("x needs b")
			}
			return nil
		}},
		Key{Name: "b", Kind: KindBool},
	)
	if _, err := Parse("f", []byte("a = \"x\"\nb = true\n"), s); err != nil {
		t.Fatal(err)
	}
	_, err := Parse("f", []byte("b = false\na = \"x\"\n"), s)
	var ps *Problems
	if !errors.As(err, &ps) || len(ps.List) != 1 || ps.List[0].Line != 2 || ps.List[0].Key != "a" {
		t.Fatalf("got %v", err)
	}
}

// TestListKey: a list key takes an array of strings or one string, as the
// comma-joined flag text, and refuses other arrays and elements that hold
// a comma; WithLists refuses a key that is not a string.
func TestListKey(t *testing.T) {
	s, err := NewSchema(Key{Name: "server", Kind: KindString}, Key{Name: "b", Kind: KindBool}).WithLists("server")
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		`server = ["a:1", "b:2"]`: "a:1,b:2",
		`server = "a:1,b:2"`:      "a:1,b:2",
		`server = []`:             "",
		`server = ["a"]`:          "a",
	} {
		vals, err := Parse("f", []byte(in+"\n"), s)
		if err != nil || vals.String("server") != want {
			t.Errorf("%s: got %q, %v; want %q", in, vals.String("server"), err, want)
		}
	}
	for in, want := range map[string]string{
		`server = ["a", 1]`: "element 2 is the integer 1",
		`server = ["a,b"]`:  "holds a comma",
		`server = 5`:        "want an array of strings",
		`server = [["a"]]`:  "element 1 is an array",
		`b = ["true"]`:      "want a boolean",
	} {
		_, err := Parse("f", []byte(in+"\n"), s)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", in, err, want)
		}
	}
	if _, err := s.WithLists("b"); err == nil {
		t.Error("WithLists of a bool key: want an error")
	}
	if _, err := s.WithLists("nope"); err == nil {
		t.Error("WithLists of an unknown key: want an error")
	}
}

func TestFromFlagsRejects(t *testing.T) {
	if _, err := FromFlags([]cli.Flag{&cli.StringSliceFlag{Name: "c"}}, nil, nil); err == nil {
		t.Error("a slice flag has no key kind; want an error")
	}
	if _, err := FromFlags([]cli.Flag{&cli.StringFlag{Name: "a"}}, nil, map[string]Check{"b": ListenAddr}); err == nil {
		t.Error("a check for an undefined key must fail")
	}
}

func TestChecks(t *testing.T) {
	tests := []struct {
		check Check
		v     string
		ok    bool
	}{
		{ListenAddr, ":15001", true},
		{ListenAddr, "0.0.0.0:15001", true},
		{ListenAddr, "server.example:15001", true},
		{ListenAddr, "[::1]:15001", true},
		{ListenAddr, "15001", false},
		{ListenAddr, "127.0.0.1:0", false},
		{ListenAddr, "127.0.0.1:http", false},
		{ListenAddr, "bad host:1", false},
		{DialAddr, "server.example:15001", true},
		{DialAddr, ":15001", false},
		{NodeAddr, "10.1.2.3:15003", true},
		{NodeAddr, "[fd00::3]:15003", true},
		{NodeAddr, "0.0.0.0:15003", false},
		{NodeAddr, "node3:15003", false},
		{NodeAddr, "10.1.2.3:0", false},
		{LogLevel, "debug", true},
		{LogLevel, "verbose", false},
		{LogFormat, "json", true},
		{LogFormat, "xml", false},
		{AuditPath, "-", true},
		{AuditPath, "/var/log/momgate/audit.log", true},
		{AuditPath, "audit.log", false},
		{PositiveDuration, "1ms", true},
		{PositiveDuration, "0s", false},
		{NonNegativeDuration, "0s", true},
		{NonNegativeDuration, "-1s", false},
	}
	for _, tt := range tests {
		err := tt.check(tt.v, nil)
		if (err == nil) != tt.ok {
			t.Errorf("check(%q): got %v, want ok=%v", tt.v, err, tt.ok)
		}
	}
}

func TestFloatKey(t *testing.T) {
	s, err := FromFlags([]cli.Flag{&cli.Float64Flag{Name: "rate"}}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if k, _ := s.Lookup("rate"); k.Kind != KindFloat {
		t.Fatalf("Float64Flag gives kind %v", k.Kind)
	}
	for body, want := range map[string]string{"rate = 0.001\n": "0.001", "rate = 200\n": "200", "rate = -1\n": "-1"} {
		vals, err := Parse("f", []byte(body), s)
		if err != nil || vals["rate"].Text != want {
			t.Errorf("%q: %v %v, want %s", body, vals, err, want)
		}
	}
	if _, err := Parse("f", []byte("rate = \"fast\"\n"), s); err == nil {
		t.Error("a string for a number key: want an error")
	}
}

package qmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/momgate/momgate/internal/admin"
)

func runCfg(t *testing.T, cfg Config) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cfg.Out, cfg.Err = &out, &out
	err := Run(context.Background(), cfg)
	return out.String(), err
}

// TestJSONIsOneDocument: several directives give one array, the failing
// one last with its reason code; a single -c gives its bare result.
func TestJSONIsOneDocument(t *testing.T) {
	dir, _ := startAdmin(t)
	out, err := runCfg(t, Config{StateDir: dir, JSON: true, Commands: []string{"l n n1 Mom", "list key", "delete node n9", "list node"}})
	if ExitStatus(err) != ExitFailed {
		t.Fatalf("exit %d (%v)", ExitStatus(err), err)
	}
	var doc []Outcome
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not one JSON document: %v\n%s", err, out)
	}
	if len(doc) != 3 || doc[0].Directive != "list node n1 Mom" || doc[0].Line != 1 || doc[1].Result == nil ||
		doc[2].Code != admin.CodeUnknownNode || doc[2].Error != "delete node n9: unknown node n9" || doc[2].Result != nil {
		t.Fatalf("document:\n%s", out)
	}
	var sel []map[string]any
	if err := json.Unmarshal(doc[0].Result, &sel); err != nil || len(sel) != 1 || sel[0]["mom"] != "127.0.0.2" || sel[0]["host"] != "" || len(sel[0]) != 3 {
		t.Fatalf("list node n1 Mom: %s", doc[0].Result)
	}

	// A script on stdin, with a syntax error: nothing runs, one document.
	out, err = runCfg(t, Config{StateDir: dir, JSON: true, In: strings.NewReader("delete node n1\ncreate node x Mom=1.2.3\n")})
	if ExitStatus(err) != ExitSyntax {
		t.Fatalf("syntax error: exit %d", ExitStatus(err))
	}
	doc = nil
	if err := json.Unmarshal([]byte(out), &doc); err != nil || len(doc) != 1 || doc[0].Line != 2 || doc[0].Code != "bad_value" || doc[0].Column != 19 {
		t.Fatalf("script document: %v\n%s", err, out)
	}
	if out, _ := runCfg(t, Config{StateDir: dir, Commands: []string{"list node n1"}}); !strings.Contains(out, "Node n1") {
		t.Fatal("the syntax error ran delete node n1")
	}

	// A single -c: its result; failed: the error object.
	out, err = runCfg(t, Config{StateDir: dir, JSON: true, Commands: []string{"list node n2"}})
	var nodes []admin.NodeInfo
	if err != nil || json.Unmarshal([]byte(out), &nodes) != nil || len(nodes) != 1 || nodes[0].Name != "n2" {
		t.Fatalf("single -c: %v\n%s", err, out)
	}
	out, err = runCfg(t, Config{StateDir: dir, JSON: true, Commands: []string{"list node n9"}})
	var o Outcome
	if ExitStatus(err) != ExitFailed || json.Unmarshal([]byte(out), &o) != nil || o.Code != admin.CodeUnknownNode {
		t.Fatalf("single failing -c: %v\n%s", err, out)
	}
}

// TestNoExecEchoAndExitStatus: -n checks without a server, -e echoes, and
// the exit status says what went wrong.
func TestNoExecEchoAndExitStatus(t *testing.T) {
	// -n needs no server at all.
	out, err := runCfg(t, Config{Options: Options{NoExec: true}, JSON: true, Commands: []string{"delete node n1", "s s mode=compat"}})
	var doc []Outcome
	if err != nil || json.Unmarshal([]byte(out), &doc) != nil || len(doc) != 2 || doc[1].Directive != "set server mode=compat" || doc[0].Result != nil {
		t.Fatalf("-n: %v\n%s", err, out)
	}
	if _, err := runCfg(t, Config{Options: Options{NoExec: true}, Commands: []string{"delete node"}}); ExitStatus(err) != ExitSyntax {
		t.Fatalf("-n syntax error: exit %d", ExitStatus(err))
	}
	dir, srv := startAdmin(t)
	out, err = runCfg(t, Config{StateDir: dir, Options: Options{Echo: true}, In: strings.NewReader("# save\nlist node n2 state\n")})
	if err != nil || out != "list node n2 state\nNode n2\n    state = enrolling\n\n" {
		t.Fatalf("-e: %v\n%q", err, out)
	}
	if _, err := runCfg(t, Config{StateDir: dir, Options: Options{Echo: true}, JSON: true, Commands: []string{"list key"}}); ExitStatus(err) != ExitSyntax {
		t.Fatalf("-e --json: %v", err)
	}
	if _, err := runCfg(t, Config{StateDir: t.TempDir(), Commands: []string{"list key"}}); ExitStatus(err) != ExitNoServer {
		t.Fatalf("no server: exit %d (%v)", ExitStatus(err), err)
	}
	if _, err := runCfg(t, Config{Commands: []string{"list key"}}); ExitStatus(err) != ExitSyntax {
		t.Fatalf("no --state-dir: exit %d (%v)", ExitStatus(err), err)
	}
	srv.mu.Lock()
	_, ok := srv.nodes["n1"]
	srv.mu.Unlock()
	if !ok {
		t.Fatal("-n ran delete node n1")
	}
}

func TestNodesView(t *testing.T) {
	dir, srv := startAdmin(t)
	srv.mu.Lock()
	n1 := srv.nodes["n1"]
	n1.Session, n1.SessionKeyAge = "encrypt", "1m30s"
	srv.nodes["n1"] = n1
	srv.nodes["n3"] = admin.NodeInfo{Name: "n3", Mom: "127.0.0.4", Host: "cn03", Port: 15003, State: "down", Protocol: "v2", Upgraded: true,
		KeyState: admin.KeyNeedsSync, LastSeen: &lastSeen}
	srv.mu.Unlock()
	run := func(f NodeFilter, header bool) string {
		t.Helper()
		var out bytes.Buffer
		if err := RunNodes(context.Background(), NodesConfig{Config: Config{StateDir: dir, Out: &out}, Filter: f, NoHeader: !header}); err != nil {
			t.Fatal(err)
		}
		return out.String()
	}
	want := "NAME  ADDRESS          HOST  STATE      PROTOCOL  UPGRADED  KEY_STATE   SESSION  KEY_AGE  LAST_SEEN\n" +
		"n1    127.0.0.2:15003  -     up         v2        True      current     encrypt  1m30s    2026-01-02T04:00:00Z\n" +
		"n2    [::1]:15004      -     enrolling  -         False     -           -        -        never\n" +
		"n3    127.0.0.4:15003  cn03  down       v2        True      needs_sync  -        -        2026-01-02T04:00:00Z\n"
	if got := run(NodeFilter{}, true); got != want {
		t.Errorf("nodes:\n%s\nwant\n%s", got, want)
	}
	for _, tc := range []struct {
		f    NodeFilter
		want string
	}{
		{NodeFilter{Down: true}, "n2 n3"},
		{NodeFilter{Down: true, Upgraded: true}, "n3"},
		{NodeFilter{NeedsSync: true}, "n3"},
		{NodeFilter{Upgraded: true}, "n1 n3"},
		{NodeFilter{PendingKey: true}, ""},
	} {
		var names []string
		for _, l := range strings.Split(strings.TrimSpace(run(tc.f, false)), "\n") {
			if f := strings.Fields(l); len(f) > 0 {
				names = append(names, f[0])
			}
		}
		if got := strings.Join(names, " "); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.f, got, tc.want)
		}
	}
	var out bytes.Buffer
	if err := RunNodes(context.Background(), NodesConfig{Config: Config{StateDir: dir, Out: &out, JSON: true}, Filter: NodeFilter{Down: true}}); err != nil {
		t.Fatal(err)
	}
	var nodes []admin.NodeInfo
	if err := json.Unmarshal(out.Bytes(), &nodes); err != nil || len(nodes) != 2 || nodes[1].LastSeen == nil || !nodes[1].LastSeen.Equal(lastSeen) {
		t.Fatalf("--json: %v\n%s", err, out.String())
	}
}

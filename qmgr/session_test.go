package qmgr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

var (
	t0       = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	lastSeen = time.Date(2026, 1, 2, 4, 0, 0, 0, time.UTC)
)

// fakeServer is an in-memory model of the server's admin operations.
type fakeServer struct {
	mu     sync.Mutex
	nodes  map[string]admin.NodeInfo
	attrs  map[string]string
	keys   []admin.KeyInfo
	failOp map[string]error // forced failures by op
	// members, when set, make the server a group's leader s1: print
	// server shows them and set_member changes their roles.
	members map[string]admin.MemberInfo
}

func newFakeServer() *fakeServer {
	return &fakeServer{
		nodes: map[string]admin.NodeInfo{
			"n1": {Name: "n1", ID: "node-n1", Mom: "127.0.0.2", Port: 15003, State: "up", Protocol: "v2", Upgraded: true,
				KeyID: "0a1b2c3d", KeyState: "current", Fingerprint: "fp:n1", Created: t0, LastSeen: &lastSeen},
			"n2": {Name: "n2", ID: "node-n2", Mom: "::1", Port: 15004, State: "enrolling", Created: t0},
		},
		attrs: map[string]string{"mode": "ping", "key_distribution": "auto", "token_ttl": "1h0m0s",
			"freshness": "5m0s", "heartbeat": "10s", "key_grace": "30s"},
		keys:   []admin.KeyInfo{{ID: "0a1b2c3d", State: "active", Created: t0}},
		failOp: map[string]error{},
	}
}

func (f *fakeServer) serverInfo() admin.ServerInfo {
	attrs := map[string]string{}
	for k, v := range f.attrs {
		attrs[k] = v
	}
	return admin.ServerInfo{ID: "srv-1", Fingerprint: "fp:srv", Listen: "127.0.0.1:15001", Mode: f.attrs["mode"],
		KeyDistribution: f.attrs["key_distribution"], ActiveKey: "0a1b2c3d", Nodes: len(f.nodes), Attrs: attrs}
}

func (f *fakeServer) sorted() []admin.NodeInfo {
	out := []admin.NodeInfo{}
	for _, n := range f.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// handle implements admin.Handler.
func (f *fakeServer) handle(_ context.Context, op string, raw json.RawMessage) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failOp[op]; err != nil {
		return nil, err
	}
	dec := func(v any) error {
		if len(raw) == 0 {
			return nil
		}
		return json.Unmarshal(raw, v)
	}
	switch op {
	case admin.OpCreateNode:
		var a admin.CreateNodeArgs
		if err := dec(&a); err != nil {
			return nil, err
		}
		if _, ok := f.nodes[a.Name]; ok {
			return nil, admin.Errorf(admin.CodeDuplicateNode, "node %s already exists", a.Name)
		}
		if a.Port == 0 {
			a.Port = 15003
		}
		n := admin.NodeInfo{Name: a.Name, ID: "node-" + a.Name, Mom: a.Mom, Port: a.Port, State: "enrolling", Created: t0}
		if a.Mom == "cn09" { // the one host name the fake resolves
			n.Mom, n.Host = "127.0.0.59", "cn09"
		}
		f.nodes[a.Name] = n
		return admin.CreateNodeResult{Node: n, Token: "tok-" + a.Name, TokenExpires: t0.Add(time.Hour)}, nil
	case admin.OpDeleteNode:
		var a admin.NodeArgs
		if err := dec(&a); err != nil {
			return nil, err
		}
		n, ok := f.nodes[a.Name]
		if !ok {
			return nil, admin.Errorf(admin.CodeUnknownNode, "unknown node %s", a.Name)
		}
		delete(f.nodes, a.Name)
		return n, nil
	case admin.OpListNode:
		var a admin.ListNodeArgs
		if err := dec(&a); err != nil {
			return nil, err
		}
		if a.Name == "" {
			return f.sorted(), nil
		}
		n, ok := f.nodes[a.Name]
		if !ok {
			return nil, admin.Errorf(admin.CodeUnknownNode, "unknown node %s", a.Name)
		}
		return []admin.NodeInfo{n}, nil
	case admin.OpSetNode:
		var a admin.SetArgs
		if err := dec(&a); err != nil {
			return nil, err
		}
		n, ok := f.nodes[a.Name]
		if !ok {
			return nil, admin.Errorf(admin.CodeUnknownNode, "unknown node %s", a.Name)
		}
		for _, kv := range a.Attrs {
			switch kv.Name {
			case "Mom":
				n.Mom = kv.Value
			case "protocol":
				n.Upgraded = false
			}
		}
		f.nodes[a.Name] = n
		return n, nil
	case admin.OpPrintServer:
		rep := admin.ServerReport{Server: f.serverInfo(), Nodes: f.sorted()}
		if f.members != nil {
			rep.Server.Group = &admin.GroupInfo{Member: "s1", Leader: "s1"}
			for _, n := range []string{"s1", "s2", "s3"} {
				if m, ok := f.members[n]; ok {
					rep.Server.Group.Members = append(rep.Server.Group.Members, m)
				}
			}
		}
		return rep, nil
	case admin.OpSetMember:
		a, err := admin.DecodeSetMemberArgs(raw)
		if err != nil {
			return nil, admin.Errorf(admin.CodeBadRequest, "%v", err)
		}
		m, ok := f.members[a.Name]
		switch {
		case !ok:
			return nil, admin.Errorf(admin.CodeBadValue, "unknown member %s", a.Name)
		case m.Role == "leader" && *a.Standby:
			return nil, admin.Errorf(admin.CodeConflict, "%s leads the group and the leader does not demote itself", a.Name)
		case *a.Standby:
			m.Role = "standby"
		case m.Role == "standby":
			m.Role = "follower"
		}
		f.members[a.Name] = m
		return m, nil
	case admin.OpSetServer:
		var a admin.SetArgs
		if err := dec(&a); err != nil {
			return nil, err
		}
		for _, kv := range a.Attrs {
			if _, ok := f.attrs[kv.Name]; !ok {
				return nil, admin.Errorf(admin.CodeBadValue, "unknown server attribute %q", kv.Name)
			}
		}
		for _, kv := range a.Attrs {
			f.attrs[kv.Name] = kv.Value
		}
		return f.serverInfo(), nil
	case admin.OpUnsetServer:
		var a admin.UnsetArgs
		if err := dec(&a); err != nil {
			return nil, err
		}
		for _, n := range a.Attrs {
			if _, ok := f.attrs[n]; !ok {
				return nil, admin.Errorf(admin.CodeBadValue, "unknown server attribute %q", n)
			}
		}
		for _, n := range a.Attrs {
			f.attrs[n] = newFakeServer().attrs[n]
		}
		return f.serverInfo(), nil
	case admin.OpListKey:
		kl := admin.KeyList{Keys: f.keys}
		for _, n := range f.sorted() {
			kl.Nodes = append(kl.Nodes, admin.NodeKeyInfo{Name: n.Name, KeyID: n.KeyID, KeyState: n.KeyState})
		}
		return kl, nil
	case admin.OpRotateKey:
		k := admin.KeyInfo{ID: "0a1b2c3e", State: "next", Created: t0}
		f.keys = append(f.keys, k)
		return admin.RotationInfo{Phase: "distributing", Seq: 1, Distribution: "auto", OldKey: "0a1b2c3d", NewKey: k.ID, Waiting: 1}, nil
	case admin.OpExportKey, admin.OpActivateKey:
		var a admin.KeyArgs
		if err := dec(&a); err != nil {
			return nil, err
		}
		for i, k := range f.keys {
			if k.ID == a.ID {
				if op == admin.OpActivateKey {
					f.keys[i].State = "active"
				}
				return f.keys[i], nil
			}
		}
		return nil, admin.Errorf(admin.CodeUnknownKey, "unknown key %s", a.ID)
	}
	return nil, admin.Errorf(admin.CodeUnknownOp, "unknown operation %q", op)
}

type call struct{ op, args string }

// fakeExec is an Executor over a fakeServer that records every call and
// passes results through JSON, as the socket does.
type fakeExec struct {
	srv   *fakeServer
	calls []call
}

func (f *fakeExec) Call(ctx context.Context, op string, args, out any) error {
	var raw json.RawMessage
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return err
		}
		raw = b
	}
	f.calls = append(f.calls, call{op, string(raw)})
	res, err := f.srv.handle(ctx, op, raw)
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}

func newSession(jsonOut bool) (*Session, *fakeExec, *bytes.Buffer) {
	fx := &fakeExec{srv: newFakeServer()}
	var out bytes.Buffer
	return &Session{Exec: fx, Out: &out, Err: &out, JSON: jsonOut}, fx, &out
}

func run(t *testing.T, s *Session, line string) error {
	t.Helper()
	d, err := Parse(line)
	if err != nil {
		t.Fatalf("Parse(%q): %v", line, err)
	}
	return s.Run(context.Background(), d)
}

const n1Block = `Node n1
    Mom = 127.0.0.2
    Port = 15003
    state = up
    protocol = v2
    upgraded = True
    key_id = 0a1b2c3d
    key_state = current
    fingerprint = fp:n1
    id = node-n1
    created = 2026-01-02T03:04:05Z
    last_seen = 2026-01-02T04:00:00Z
`

const n2Block = `Node n2
    Mom = ::1
    Port = 15004
    state = enrolling
    upgraded = False
    id = node-n2
    created = 2026-01-02T03:04:05Z
`

func TestRunText(t *testing.T) {
	cwd, _ := os.Getwd()
	for _, tc := range []struct {
		line  string
		calls []call
		out   string
	}{
		{"create node n3 Mom=127.0.0.4,Port=15005",
			[]call{{admin.OpCreateNode, `{"name":"n3","mom":"127.0.0.4","port":15005}`}},
			"Node n3\n    Mom = 127.0.0.4\n    Port = 15005\n    state = enrolling\n    upgraded = False\n    id = node-n3\n" +
				"    created = 2026-01-02T03:04:05Z\ntoken: tok-n3\ntoken expires: 2026-01-02T04:04:05Z\n"},
		{"create node n3 Mom=10.0.0.3",
			[]call{{admin.OpCreateNode, `{"name":"n3","mom":"10.0.0.3","port":0}`}},
			"Node n3\n    Mom = 10.0.0.3\n    Port = 15003\n    state = enrolling\n    upgraded = False\n    id = node-n3\n" +
				"    created = 2026-01-02T03:04:05Z\ntoken: tok-n3\ntoken expires: 2026-01-02T04:04:05Z\n"},
		{"create node n9 Mom=CN09",
			[]call{{admin.OpCreateNode, `{"name":"n9","mom":"cn09","port":0}`}},
			"Node n9\n    Mom = 127.0.0.59 (cn09)\n    Port = 15003\n    state = enrolling\n    upgraded = False\n    id = node-n9\n" +
				"    created = 2026-01-02T03:04:05Z\ntoken: tok-n9\ntoken expires: 2026-01-02T04:04:05Z\n"},
		{"list node", []call{{admin.OpListNode, `{"name":""}`}}, n1Block + "\n" + n2Block + "\n"},
		{"list node n2", []call{{admin.OpListNode, `{"name":"n2"}`}}, n2Block + "\n"},
		{"list node n2,n1", []call{{admin.OpListNode, `{"name":"n2"}`}, {admin.OpListNode, `{"name":"n1"}`}}, n2Block + "\n" + n1Block + "\n"},
		{"print node", []call{{admin.OpListNode, `{"name":""}`}},
			"create node n1 Mom=127.0.0.2,Port=15003\ncreate node n2 Mom=::1,Port=15004\n"},
		{"delete node n2", []call{{admin.OpDeleteNode, `{"name":"n2"}`}}, ""},
		{"delete node n1,n2", []call{
			{admin.OpListNode, `{"name":"n1"}`}, {admin.OpListNode, `{"name":"n2"}`},
			{admin.OpDeleteNode, `{"name":"n1"}`}, {admin.OpDeleteNode, `{"name":"n2"}`}}, ""},
		{"set node n1 protocol=legacy", []call{{admin.OpSetNode, `{"name":"n1","attrs":[{"name":"protocol","value":"legacy"}]}`}}, ""},
		{"set node n1,n2 Mom=10.1.1.1", []call{
			{admin.OpListNode, `{"name":"n1"}`}, {admin.OpListNode, `{"name":"n2"}`},
			{admin.OpSetNode, `{"name":"n1","attrs":[{"name":"Mom","value":"10.1.1.1"}]}`},
			{admin.OpSetNode, `{"name":"n2","attrs":[{"name":"Mom","value":"10.1.1.1"}]}`}}, ""},
		{"set server mode=compat, token_ttl=2h",
			[]call{{admin.OpSetServer, `{"name":"","attrs":[{"name":"mode","value":"compat"},{"name":"token_ttl","value":"2h"}]}`}}, ""},
		{"unset server token_ttl,mode", []call{{admin.OpUnsetServer, `{"attrs":["token_ttl","mode"]}`}}, ""},
		{"print server", []call{{admin.OpPrintServer, ``}}, `#
# Set server attributes.
#
set server freshness = 5m0s
set server heartbeat = 10s
set server key_distribution = auto
set server key_grace = 30s
set server mode = ping
set server token_ttl = 1h0m0s
#
# Create nodes.
#
create node n1 Mom=127.0.0.2,Port=15003
create node n2 Mom=::1,Port=15004
`},
		{"list server", []call{{admin.OpPrintServer, ``}}, `Server srv-1
    fingerprint = fp:srv
    listen = 127.0.0.1:15001
    active_key = 0a1b2c3d
    nodes = 2
    freshness = 5m0s
    heartbeat = 10s
    key_distribution = auto
    key_grace = 30s
    mode = ping
    token_ttl = 1h0m0s
`},
		{"list key", []call{{admin.OpListKey, ``}}, `KEY ID    STATE   CREATED
0a1b2c3d  active  2026-01-02T03:04:05Z

NODE  UP     KEY ID    KEY STATE
n1    False  0a1b2c3d  current
n2    False  -         -
`},
		{"rotate key", []call{{admin.OpRotateKey, ``}}, "key rotation 1 started: new key 0a1b2c3e (next), pushed to 1 connected MOM(s); list key shows the progress\n"},
		{"export key 0a1b2c3d file=/abs/k2", []call{{admin.OpExportKey, `{"id":"0a1b2c3d","file":"/abs/k2"}`}},
			"exported key 0a1b2c3d (active) to /abs/k2\n"},
		{"export key 0A1B2C3D keyfile", []call{{admin.OpExportKey, fmt.Sprintf(`{"id":"0a1b2c3d","file":%q}`, filepath.Join(cwd, "keyfile"))}},
			fmt.Sprintf("exported key 0a1b2c3d (active) to %s\n", filepath.Join(cwd, "keyfile"))},
		{"export key 0a1b2c3d /abs/key", []call{{admin.OpExportKey, `{"id":"0a1b2c3d","file":"/abs/key"}`}},
			"exported key 0a1b2c3d (active) to /abs/key\n"},
		{"activate key 0a1b2c3d", []call{{admin.OpActivateKey, `{"id":"0a1b2c3d"}`}}, "key 0a1b2c3d is now active\n"},
		{"activate key 0a1b2c3d force", []call{{admin.OpActivateKey, `{"id":"0a1b2c3d","force":true}`}}, "key 0a1b2c3d is now active\n"},
		{"# nothing", nil, ""},
		{"quit", nil, ""},
	} {
		s, fx, out := newSession(false)
		if err := run(t, s, tc.line); err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		if fmt.Sprint(fx.calls) != fmt.Sprint(tc.calls) {
			t.Errorf("%s: calls\n  %v\nwant\n  %v", tc.line, fx.calls, tc.calls)
		}
		if out.String() != tc.out {
			t.Errorf("%s: output\n%s\nwant\n%s", tc.line, out, tc.out)
		}
	}
}

func TestRunJSON(t *testing.T) {
	for _, tc := range []struct {
		line  string
		check func(t *testing.T, v any)
	}{
		{"create node n3 Mom=127.0.0.4", func(t *testing.T, v any) {
			m := v.(map[string]any)
			if m["token"] != "tok-n3" || m["token_expires"] != "2026-01-02T04:04:05Z" || m["node"].(map[string]any)["name"] != "n3" {
				t.Errorf("create node JSON = %v", m)
			}
		}},
		{"list node", func(t *testing.T, v any) {
			a := v.([]any)
			if len(a) != 2 || a[0].(map[string]any)["name"] != "n1" || a[1].(map[string]any)["last_seen"] != nil {
				t.Errorf("list node JSON = %v", a)
			}
		}},
		{"list node n2,n1", func(t *testing.T, v any) {
			if a := v.([]any); len(a) != 2 || a[0].(map[string]any)["name"] != "n2" {
				t.Errorf("list node JSON = %v", a)
			}
		}},
		{"print node n1", func(t *testing.T, v any) {
			if a := v.([]any); len(a) != 1 || a[0].(map[string]any)["mom"] != "127.0.0.2" {
				t.Errorf("print node JSON = %v", a)
			}
		}},
		{"delete node n1", func(t *testing.T, v any) {
			if a := v.([]any); len(a) != 1 || a[0].(map[string]any)["name"] != "n1" {
				t.Errorf("delete node JSON = %v", a)
			}
		}},
		{"set node n1,n2 protocol=legacy", func(t *testing.T, v any) {
			if a := v.([]any); len(a) != 2 || a[0].(map[string]any)["upgraded"] != false {
				t.Errorf("set node JSON = %v", a)
			}
		}},
		{"set server mode=compat", func(t *testing.T, v any) {
			if m := v.(map[string]any); m["mode"] != "compat" || m["attrs"].(map[string]any)["mode"] != "compat" {
				t.Errorf("set server JSON = %v", m)
			}
		}},
		{"print server", func(t *testing.T, v any) {
			m := v.(map[string]any)
			if m["server"].(map[string]any)["id"] != "srv-1" || len(m["nodes"].([]any)) != 2 {
				t.Errorf("print server JSON = %v", m)
			}
		}},
		{"list server", func(t *testing.T, v any) {
			if m := v.(map[string]any); m["server"].(map[string]any)["active_key"] != "0a1b2c3d" {
				t.Errorf("list server JSON = %v", m)
			}
		}},
		{"list key", func(t *testing.T, v any) {
			m := v.(map[string]any)
			if len(m["keys"].([]any)) != 1 || len(m["nodes"].([]any)) != 2 {
				t.Errorf("list key JSON = %v", m)
			}
		}},
		{"rotate key", func(t *testing.T, v any) {
			if m := v.(map[string]any); m["new_key"] != "0a1b2c3e" || m["phase"] != "distributing" {
				t.Errorf("rotate key JSON = %v", m)
			}
		}},
		{"export key 0a1b2c3d /k", func(t *testing.T, v any) {
			if m := v.(map[string]any); m["id"] != "0a1b2c3d" {
				t.Errorf("export key JSON = %v", m)
			}
		}},
		{"activate key 0a1b2c3d", func(t *testing.T, v any) {
			if m := v.(map[string]any); m["state"] != "active" {
				t.Errorf("activate key JSON = %v", m)
			}
		}},
	} {
		s, _, out := newSession(true)
		if err := run(t, s, tc.line); err != nil {
			t.Errorf("%s: %v", tc.line, err)
			continue
		}
		if !strings.HasSuffix(out.String(), "\n") || !strings.Contains(out.String(), "\n  ") && len(out.String()) > 3 {
			t.Errorf("%s: output not indented JSON: %q", tc.line, out)
		}
		var v any
		if err := json.Unmarshal(out.Bytes(), &v); err != nil {
			t.Errorf("%s: output is not JSON: %v\n%s", tc.line, err, out)
			continue
		}
		tc.check(t, v)
	}
}

func TestRunErrors(t *testing.T) {
	for _, tc := range []struct {
		line, want, code string
		calls            int
	}{
		{"delete node n9", "qmgr: delete node n9: unknown node n9", admin.CodeUnknownNode, 1},
		{"delete node n1,n9", "qmgr: delete node n1,n9: unknown node n9 (nothing changed)", admin.CodeUnknownNode, 2},
		{"set node n9 Mom=1.1.1.1", "qmgr: set node n9: unknown node n9", admin.CodeUnknownNode, 1},
		{"create node n1 Mom=10.0.0.1", "qmgr: create node n1: node n1 already exists", admin.CodeDuplicateNode, 1},
		{"list node n1,n9", "qmgr: list node n1,n9: unknown node n9", admin.CodeUnknownNode, 2},
		{"activate key 0000dead", "qmgr: activate key 0000dead: unknown key 0000dead", admin.CodeUnknownKey, 1},
	} {
		s, fx, out := newSession(false)
		before := fmt.Sprint(fx.srv.sorted())
		err := run(t, s, tc.line)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %s", tc.line, err, tc.want)
		}
		if admin.CodeOf(err) != tc.code {
			t.Errorf("%s: code = %s, want %s", tc.line, admin.CodeOf(err), tc.code)
		}
		if len(fx.calls) != tc.calls {
			t.Errorf("%s: %d calls, want %d: %v", tc.line, len(fx.calls), tc.calls, fx.calls)
		}
		if after := fmt.Sprint(fx.srv.sorted()); after != before {
			t.Errorf("%s: nodes changed", tc.line)
		}
		if out.Len() != 0 {
			t.Errorf("%s: output on failure: %q", tc.line, out)
		}
	}

	// A failure part-way through a multi-node change says what was done.
	s, fx, _ := newSession(false)
	fx.srv.failOp[admin.OpSetNode] = nil
	calls := 0
	s.Exec = execFunc(func(ctx context.Context, op string, args, out any) error {
		if op == admin.OpSetNode {
			calls++
			if calls == 2 {
				return admin.Errorf(admin.CodeInternal, "persist: disk full")
			}
		}
		return fx.Call(ctx, op, args, out)
	})
	err := run(t, s, "set node n1,n2 Mom=10.9.9.9")
	if err == nil || err.Error() != "qmgr: set node n1,n2: n2: persist: disk full (already done: n1)" {
		t.Errorf("partial failure: %v", err)
	}
}

type execFunc func(ctx context.Context, op string, args, out any) error

func (f execFunc) Call(ctx context.Context, op string, args, out any) error {
	return f(ctx, op, args, out)
}

func TestRunRevalidates(t *testing.T) {
	s, fx, _ := newSession(false)
	for _, d := range []Directive{
		{Command: "create", Object: "node", Names: []string{"n3"}, Attrs: []Attr{{Name: "Mom", Op: "=", Value: "not_an_ip"}}},
		{Command: "create", Object: "node", Names: []string{"bad name"}, Attrs: []Attr{{Name: "Mom", Op: "=", Value: "1.2.3.4"}}},
		{Command: "launch", Object: "node"},
		{Command: "set", Object: "server", Attrs: []Attr{{Name: "mode", Op: "=", Value: "x\ny"}}},
	} {
		if err := s.Run(context.Background(), d); err == nil {
			t.Errorf("Run(%#v) succeeded", d)
		}
	}
	if len(fx.calls) != 0 {
		t.Fatalf("invalid directives reached the server: %v", fx.calls)
	}
	// A hand-built directive is canonicalised like a parsed one.
	d := Directive{Command: "set", Object: "server", Attrs: []Attr{{Name: "MODE", Value: "Compat"}}}
	if err := s.Run(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if want := `{"name":"","attrs":[{"name":"mode","value":"compat"}]}`; fx.calls[0].args != want {
		t.Fatalf("args = %s, want %s", fx.calls[0].args, want)
	}
}

func TestPrintServerReparses(t *testing.T) {
	s, fx, out := newSession(false)
	fx.srv.attrs["mode"] = "compat"
	fx.srv.nodes["odd"] = admin.NodeInfo{Name: "odd", Mom: "fe80::2", Port: 1}
	if err := run(t, s, "print server"); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		d, err := Parse(line)
		if err != nil {
			t.Errorf("print server line %q does not parse: %v", line, err)
		}
		if d.Command != "" {
			n++
		}
	}
	if n != 6+3 {
		t.Errorf("%d directives in print server output, want 9:\n%s", n, out)
	}
}

func TestHelp(t *testing.T) {
	s, fx, out := newSession(false)
	if err := run(t, s, "help"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "create node NAME Mom=ADDR|HOST[,Port=N]") || len(fx.calls) != 0 {
		t.Fatalf("help output:\n%s", out)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestRunWriteError(t *testing.T) {
	s, _, _ := newSession(false)
	s.Out = failWriter{}
	if err := run(t, s, "list node"); err == nil || !strings.Contains(err.Error(), "write output: broken pipe") {
		t.Fatalf("err = %v", err)
	}
}

func TestRunMalformedResult(t *testing.T) {
	s, _, _ := newSession(false)
	s.Exec = execFunc(func(ctx context.Context, op string, args, out any) error {
		*(out.(*json.RawMessage)) = json.RawMessage(`{"nodes":"nope"}`)
		return nil
	})
	if err := run(t, s, "list node"); err == nil || !strings.Contains(err.Error(), "malformed list_node result") {
		t.Fatalf("err = %v", err)
	}
}

// TestMomHostShown: a node created by host name shows its address with
// the name beside it, and print node recreates it by the name, so that a
// replay resolves the name again.
func TestMomHostShown(t *testing.T) {
	s, _, out := newSession(false)
	if err := run(t, s, "create node n9 Mom=cn09"); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(t, s, "list node n9 Mom"); err != nil || out.String() != "Node n9\n    Mom = 127.0.0.59 (cn09)\n\n" {
		t.Fatalf("list node n9 Mom: %v %q", err, out)
	}
	out.Reset()
	if err := run(t, s, "print node n9"); err != nil || out.String() != "create node n9 Mom=cn09,Port=15003\n" {
		t.Fatalf("print node n9: %v %q", err, out)
	}
	s.JSON = true
	out.Reset()
	if err := run(t, s, "list node n9 Mom"); err != nil {
		t.Fatal(err)
	}
	var sel []map[string]any
	if err := json.Unmarshal(out.Bytes(), &sel); err != nil || len(sel) != 1 || sel[0]["mom"] != "127.0.0.59" || sel[0]["host"] != "cn09" {
		t.Fatalf("list node n9 Mom --json: %v %s", err, out)
	}
}

// TestHalfDeletedNodeShown: a node an incomplete delete node left
// registered (state deleting) shows the denied mark and the comment that
// names the command finishing it; print node stays a script, the comment
// a qmgr comment above its create directive; the nodes view keeps one
// word per column.
func TestHalfDeletedNodeShown(t *testing.T) {
	comment := `denied, delete incomplete (delete node at 2026-12-01T10:00:00Z): run "delete node cn03" again`
	node := admin.NodeInfo{Name: "cn03", ID: "4ecd0f61-0000-4000-8000-000000000003", Mom: "127.0.0.53", Port: 15003,
		State: admin.NodeDeleting, Denied: true, Comment: comment}
	s, _, out := newSession(false)
	s.Exec = execFunc(func(ctx context.Context, op string, args, res any) error {
		b, _ := json.Marshal([]admin.NodeInfo{node})
		*(res.(*json.RawMessage)) = b
		return nil
	})
	if err := run(t, s, "list node cn03 state,denied,comment"); err != nil {
		t.Fatal(err)
	}
	want := "Node cn03\n    state = deleting\n    denied = True\n    comment = " + comment + "\n\n"
	if out.String() != want {
		t.Fatalf("list node cn03:\n%s\nwant:\n%s", out, want)
	}
	out.Reset()
	if err := run(t, s, "print node cn03"); err != nil {
		t.Fatal(err)
	}
	// The create directive is commented out: replaying the script must
	// not create again the node being deleted.
	want = "# cn03: " + comment + "\n# create node cn03 Mom=127.0.0.53,Port=15003\n"
	if out.String() != want {
		t.Fatalf("print node cn03: %q, want %q", out, want)
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if _, err := Parse(line); err != nil {
			t.Fatalf("print node output does not parse: %q: %v", line, err)
		}
	}
	var b strings.Builder
	WriteNodeLines(&b, []admin.NodeInfo{node}, false)
	if f := strings.Fields(b.String()); len(f) != 10 || f[3] != admin.NodeDeleting {
		t.Fatalf("nodes line %q", b.String())
	}
	s.JSON = true
	out.Reset()
	if err := run(t, s, "list node cn03 state,denied,comment"); err != nil {
		t.Fatal(err)
	}
	var sel []map[string]any
	if err := json.Unmarshal(out.Bytes(), &sel); err != nil || len(sel) != 1 || sel[0]["state"] != "deleting" ||
		sel[0]["denied"] != true || sel[0]["comment"] != comment {
		t.Fatalf("list node --json: %v %s", err, out)
	}
}

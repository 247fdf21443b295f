package qmgr

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/momgate/momgate/internal/admin"
)

func groupMembers() map[string]admin.MemberInfo {
	return map[string]admin.MemberInfo{
		"s1": {Name: "s1", Role: "leader", State: "alive"},
		"s2": {Name: "s2", Role: "follower", State: "alive"},
		"s3": {Name: "s3", Role: "standby", State: "alive"},
	}
}

// TestRunSetMember: set server NAME standby= calls set_member with the
// name and a standby that is always given; set server ATTR=VALUE still
// calls set_server; the server's refusals come back with their codes.
func TestRunSetMember(t *testing.T) {
	for _, tc := range []struct{ line, call, out string }{
		{"set server s2 standby=true", `{"name":"s2","standby":true}`, "member s2 is a standby: it replicates, never votes nor leads (role standby)\n"},
		{"s s s3 standby=FALSE", `{"name":"s3","standby":false}`, "member s3 is a voter: it votes and may lead (role follower)\n"},
	} {
		s, fx, out := newSession(false)
		fx.srv.members = groupMembers()
		if err := run(t, s, tc.line); err != nil {
			t.Fatalf("%s: %v", tc.line, err)
		}
		if want := fmt.Sprint([]call{{admin.OpSetMember, tc.call}}); fmt.Sprint(fx.calls) != want {
			t.Errorf("%s: calls %v, want %v", tc.line, fx.calls, want)
		}
		if out.String() != tc.out {
			t.Errorf("%s: output %q, want %q", tc.line, out, tc.out)
		}
	}
	s, fx, out := newSession(true)
	fx.srv.members = groupMembers()
	if err := run(t, s, "set server s2 standby=true"); err != nil {
		t.Fatal(err)
	}
	var mi admin.MemberInfo
	if err := json.Unmarshal(out.Bytes(), &mi); err != nil || mi.Name != "s2" || mi.Role != "standby" {
		t.Fatalf("--json: %v %s", err, out)
	}
	s, fx, _ = newSession(false)
	fx.srv.members = groupMembers()
	if err := run(t, s, "set server key_grace=1s"); err != nil || fx.calls[0].op != admin.OpSetServer {
		t.Fatalf("set server key_grace=1s: %v, calls %v", err, fx.calls)
	}
	for line, code := range map[string]string{
		"set server s1 standby=true": admin.CodeConflict,
		"set server s9 standby=true": admin.CodeBadValue,
	} {
		s, fx, out := newSession(false)
		fx.srv.members = groupMembers()
		if err := run(t, s, line); admin.CodeOf(err) != code || out.Len() != 0 {
			t.Errorf("%s: %v (code %s), output %q; want code %s", line, err, admin.CodeOf(err), out, code)
		}
	}
}

// TestCompleteMembers: after set server come the server's attributes and
// the group's members; after a member, standby= and its values.
func TestCompleteMembers(t *testing.T) {
	fx := &fakeExec{srv: newFakeServer()}
	fx.srv.members = groupMembers()
	c := &Completer{Exec: fx}
	for _, tc := range []struct{ prefix, want string }{
		{"set server ", "freshness=|heartbeat=|im_security=|key_distribution=|key_grace=|mode=|s1 |s2 |s3 |token_ttl="},
		{"set server s", "s1 |s2 |s3 "},
		{"set server s2 ", "standby="},
		{"set server s2 standby=", "false|true"},
		{"set server s2 standby=true,", "standby="},
		{"set server key_grace=1s,", "freshness=|heartbeat=|im_security=|key_distribution=|key_grace=|mode=|token_ttl="},
		{"set server @default ", ""},
		{"delete server ", "s1 |s2 |s3 "},
		{"create server ", ""},
	} {
		if got := completions(t, c, tc.prefix); got != tc.want {
			t.Errorf("Complete(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}

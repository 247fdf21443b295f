package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

func boolp(b bool) *bool { return &b }

// role is member name's role in the group as dir's member reports it.
// member is member name as the member at dir lists it (zero if it does
// not, or does not answer).
func (g *inProcGroup) member(dir, name string) admin.MemberInfo {
	var rep admin.ServerReport
	if call(g.tb, dir, admin.OpPrintServer, nil, &rep) != nil || rep.Server.Group == nil {
		return admin.MemberInfo{}
	}
	for _, m := range rep.Server.Group.Members {
		if m.Name == name {
			return m
		}
	}
	return admin.MemberInfo{}
}

func (g *inProcGroup) role(dir, name string) string { return g.member(dir, name).Role }

// waitMember waits until the member at dir lists member name with role
// and, unless state is "", state.
func (g *inProcGroup) waitMember(dir, name, role, state string) {
	g.tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m := g.member(dir, name)
		if m.Role == role && (state == "" || m.State == state) {
			return
		}
		if time.Now().After(deadline) {
			g.tb.Fatalf("%s: %+v, want role %q state %q", name, m, role, state)
		}
		time.Sleep(20 * time.Millisecond) // polling interval
	}
}

func (g *inProcGroup) waitRole(dir, name, role string) {
	g.tb.Helper()
	g.waitMember(dir, name, role, "")
}

func wantCode(t *testing.T, err error, code, text string) {
	t.Helper()
	if admin.CodeOf(err) != code || !strings.Contains(fmt.Sprint(err), text) {
		t.Fatalf("got %v (code %q), want code %s and %q", err, admin.CodeOf(err), code, text)
	}
}

// TestSetMemberStandby: set_member demotes a follower to standby and
// promotes it back, in the raft configuration as every member sees it;
// the leader does not demote itself, a follower names the leader, an
// unknown member and malformed arguments are refused; a member created
// as a voter and demoted before it joins joins as a standby (its record
// is what join follows).
func TestSetMemberStandby(t *testing.T) {
	g := startInProcGroup(t, 3)
	l := g.dirs[0]
	var mi admin.MemberInfo
	if err := call(t, l, admin.OpSetMember, admin.SetMemberArgs{Name: "s2", Standby: boolp(true)}, &mi); err != nil {
		t.Fatal(err)
	}
	if mi.Name != "s2" || mi.Role != "standby" {
		t.Fatalf("demoted s2: %+v", mi)
	}
	g.waitRole(l, "s2", "standby")
	g.waitRole(g.dirs[1], "s2", "standby") // the configuration reached s2
	// Again: nothing to do, same answer.
	if err := call(t, l, admin.OpSetMember, admin.SetMemberArgs{Name: "s2", Standby: boolp(true)}, &mi); err != nil || mi.Role != "standby" {
		t.Fatalf("demote twice: %+v, %v", mi, err)
	}
	// A standby is promoted only once it is alive and in sync: the
	// refusal otherwise is the product's (a voter that cannot answer
	// counts in the quorum at once), so wait for it as an administrator
	// would, on list server.
	g.waitMember(l, "s2", "standby", "alive")

	err := call(t, l, admin.OpSetMember, admin.SetMemberArgs{Name: "s1", Standby: boolp(true)}, nil)
	wantCode(t, err, admin.CodeConflict, "does not demote itself")
	if !strings.Contains(err.Error(), "delete server s1") {
		t.Fatalf("the refusal does not say what to do: %v", err)
	}
	err = call(t, g.dirs[2], admin.OpSetMember, admin.SetMemberArgs{Name: "s2", Standby: boolp(false)}, nil)
	wantCode(t, err, admin.CodeNotLeader, "s1 leads")
	wantCode(t, call(t, l, admin.OpSetMember, admin.SetMemberArgs{Name: "s9", Standby: boolp(true)}, nil), admin.CodeBadValue, "unknown member s9")
	wantCode(t, call(t, l, admin.OpSetMember, map[string]any{"name": "s2"}, nil), admin.CodeBadRequest, "standby")
	wantCode(t, call(t, l, admin.OpSetMember, map[string]any{"name": "s2", "standby": true, "force": true}, nil), admin.CodeBadRequest, "unknown field")

	if err := call(t, l, admin.OpSetMember, admin.SetMemberArgs{Name: "s2", Standby: boolp(false)}, &mi); err != nil || mi.Role != "follower" {
		t.Fatalf("promote s2: %+v, %v", mi, err)
	}
	g.waitRole(l, "s2", "follower")

	// A member demoted between create server and join joins as standby.
	dir := filepath.Join(t.TempDir(), "s4")
	gc := GroupConfig{Server: Config{StateDir: dir, Listen: freeAddr(t, "127.0.0.4"), Log: quietLog()},
		Member: "s4", ReplicationListen: freeAddr(t, "127.0.0.4"), Timing: benchTiming}
	var res admin.CreateServerResult
	waitCall(t, l, admin.OpCreateServer, admin.CreateServerArgs{Name: "s4", Address: gc.ReplicationListen}, &res)
	if err := call(t, l, admin.OpSetMember, admin.SetMemberArgs{Name: "s4", Standby: boolp(true)}, &mi); err != nil ||
		mi.Role != "standby" || mi.State != "not joined" {
		t.Fatalf("demote s4 before it joins: %+v, %v", mi, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Join(ctx, JoinConfig{Group: gc, Token: res.Token}, func(string) {}) }()
	g.dirs, g.cancels, g.done = append(g.dirs, dir), append(g.cancels, cancel), append(g.done, done)
	g.waitRole(l, "s4", "standby")

	// A standby that is down is not promoted: as a voter it would count
	// in the quorum at once.
	g.cancels[3]()
	<-g.done[3]
	g.cancels[3] = nil
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := call(t, l, admin.OpSetMember, admin.SetMemberArgs{Name: "s4", Standby: boolp(false)}, nil)
		if err != nil {
			wantCode(t, err, admin.CodeConflict, "promote it once list server shows it alive")
			break
		}
		// Promoted before the leader saw it down: demote it again and wait.
		if err := call(t, l, admin.OpSetMember, admin.SetMemberArgs{Name: "s4", Standby: boolp(true)}, nil); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the leader never saw s4 down")
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
	g.waitRole(l, "s4", "standby")
}

// TestSetMemberLastVoter: the only voter of a group is not demoted.
func TestSetMemberLastVoter(t *testing.T) {
	g := startInProcGroup(t, 1)
	err := call(t, g.dirs[0], admin.OpSetMember, admin.SetMemberArgs{Name: "s1", Standby: boolp(true)}, nil)
	wantCode(t, err, admin.CodeConflict, "only voter")
	// Promoting a voter is nothing to do.
	var mi admin.MemberInfo
	if err := call(t, g.dirs[0], admin.OpSetMember, admin.SetMemberArgs{Name: "s1", Standby: boolp(false)}, &mi); err != nil || mi.Role != "leader" {
		t.Fatalf("promote the leader: %+v, %v", mi, err)
	}
}

// TestSetMemberOnASingleServer: a single server says the group ops need a
// group.
func TestSetMemberOnASingleServer(t *testing.T) {
	s := startServer(t)
	_, err := adminCall(t, s, admin.OpSetMember, admin.SetMemberArgs{Name: "s2", Standby: boolp(true)})
	wantCode(t, err, admin.CodeUnknownOp, "not a member of one")
}

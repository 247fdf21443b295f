package migration

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/momgate/momgate/proto"
)

// view makes a cluster of n nodes n01..nNN at 127.0.0.(i+1), all up.
func view(mode proto.Mode, n int, f func(*NodeView)) ClusterView {
	v := ClusterView{Mode: mode}
	for i := 1; i <= n; i++ {
		nv := NodeView{Name: fmt.Sprintf("n%02d", i), IMAddr: fmt.Sprintf("127.0.0.%d:15003", i+1), Up: true, Protocol: "v1", Versions: v1}
		if f != nil {
			f(&nv)
		}
		v.Nodes = append(v.Nodes, nv)
	}
	return v
}

func kinds(as []Action) string {
	var out []string
	for _, a := range as {
		s := string(a.Kind)
		switch a.Kind {
		case ActSetMode:
			s += "=" + a.Mode.String()
		case ActRestart:
			s += "(" + strings.Join(a.Nodes, ",") + ")=" + a.Protocol
		case ActWait:
			s += ":" + string(a.Want)
			if len(a.Nodes) > 0 {
				s += "(" + strings.Join(a.Nodes, ",") + ")"
			}
		case ActClear:
			s += "(" + strings.Join(a.Nodes, ",") + ")"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestMigratePlan(t *testing.T) {
	s, err := NewPlan(GoalMigrate, view(proto.ModeLegacy, 5, nil), Options{BatchSize: 2, VerifyPeers: 1})
	if err != nil {
		t.Fatal(err)
	}
	got := kinds(s.Simulate())
	want := "preflight set-mode=compat wait:compat " +
		"restart(n01,n02)=ping wait:upgraded(n01,n02) verify " +
		"restart(n03,n04)=ping wait:upgraded(n03,n04) verify " +
		"restart(n05)=ping wait:upgraded(n05) verify " +
		"set-mode=ping wait:upgraded done"
	if got != want {
		t.Fatalf("plan:\n got %s\nwant %s", got, want)
	}
	if s.Pos != 0 {
		t.Fatal("Simulate changed the state")
	}
	// The last batch's swaps: n05 with the next node in name order (wrapping to n01), both ways.
	acts := s.Simulate()
	v := acts[11]
	if v.Kind != ActVerify || v.Batch != 3 || v.Batches != 3 || v.Step != 12 || v.Steps != 14 {
		t.Fatalf("verify action %+v", v)
	}
	wantPairs := []Pair{{From: "n05", To: "n01", Addr: "127.0.0.2:15003"}, {From: "n01", To: "n05", Addr: "127.0.0.6:15003"}}
	if !reflect.DeepEqual(v.Pairs, wantPairs) {
		t.Fatalf("pairs %+v, want %+v", v.Pairs, wantPairs)
	}
}

func TestMigratePlanSkipsUpgradedAndFinishedClusters(t *testing.T) {
	v := view(proto.ModeCompat, 3, func(n *NodeView) { n.Upgraded = n.Name == "n02" })
	s, err := NewPlan(GoalMigrate, v, Options{BatchSize: 5, VerifyPeers: 2})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s.Batches, [][]string{{"n01", "n03"}}) {
		t.Fatalf("batches %v", s.Batches)
	}
	done := view(proto.ModePing, 3, func(n *NodeView) { n.Upgraded = true })
	s, err = NewPlan(GoalMigrate, done, Options{BatchSize: 5, VerifyPeers: 2})
	if err != nil || !s.Finished() || s.Next().Kind != ActDone {
		t.Fatalf("migrating a migrated cluster: %v %+v", err, s.Next())
	}
	s, err = NewPlan(GoalRollback, view(proto.ModeLegacy, 3, nil), Options{BatchSize: 5, VerifyPeers: 2})
	if err != nil || !s.Finished() {
		t.Fatalf("rolling back a legacy cluster: %v %+v", err, s.Next())
	}
	if _, err := NewPlan(GoalMigrate, v, Options{BatchSize: 0, VerifyPeers: 1}); !errors.Is(err, ErrBadPlan) {
		t.Fatalf("batch 0: %v", err)
	}
}

func TestFailureRetriesTheSameStep(t *testing.T) {
	s, _ := NewPlan(GoalMigrate, view(proto.ModeLegacy, 2, nil), Options{BatchSize: 1, VerifyPeers: 1})
	_ = s.Record(true, "")
	before := s.Next()
	_ = s.Record(false, "server unreachable")
	if after := s.Next(); !reflect.DeepEqual(before, after) || s.Attempts != 1 || s.LastError != "server unreachable" {
		t.Fatalf("after a failure: %+v attempts %d", after, s.Attempts)
	}
	_ = s.Record(true, "")
	if s.Attempts != 0 || s.LastError != "" || s.Pos != 2 {
		t.Fatalf("success did not advance cleanly: %+v", s)
	}
	for !s.Finished() {
		_ = s.Record(true, "")
	}
	if err := s.Record(true, ""); !errors.Is(err, ErrFinished) {
		t.Fatalf("record on a finished plan: %v", err)
	}
}

// TestInterruptAnywhere: persisting the state and reloading it at any
// point, including between an action and its result (the action is then
// asked for again and repeated), gives the same sequence of actions as an
// uninterrupted run.
func TestInterruptAnywhere(t *testing.T) {
	s0, _ := NewPlan(GoalMigrate, view(proto.ModeLegacy, 4, nil), Options{BatchSize: 3, VerifyPeers: 2})
	straight := kinds(s0.Simulate())
	for crash := 0; crash <= len(s0.Steps); crash++ {
		s, _ := DecodeState(EncodeState(s0))
		var seq []Action
		for i := 0; !s.Finished(); i++ {
			a := s.Next()
			if i == crash { // crash after issuing a, before recording: reload, ask again
				r, err := DecodeState(EncodeState(s))
				if err != nil {
					t.Fatal(err)
				}
				if again := r.Next(); !reflect.DeepEqual(again, a) {
					t.Fatalf("crash at %d: action changed across reload: %+v vs %+v", crash, a, again)
				}
				s = r
			}
			seq = append(seq, a)
			if err := s.Record(true, ""); err != nil {
				t.Fatal(err)
			}
		}
		seq = append(seq, s.Next())
		if got := kinds(seq); got != straight {
			t.Fatalf("crash at %d:\n got %s\nwant %s", crash, got, straight)
		}
	}
}

func TestRollbackFromTheMiddle(t *testing.T) {
	s, _ := NewPlan(GoalMigrate, view(proto.ModeLegacy, 4, nil), Options{BatchSize: 2, VerifyPeers: 1})
	for s.Next().Kind != ActRestart {
		_ = s.Record(true, "")
	}
	// Not begun (paused before the batch): nothing of it to roll back.
	c, _ := DecodeState(EncodeState(s))
	c.StartRollback(view(proto.ModeCompat, 4, nil))
	if got := kinds(c.Simulate()); got != "preflight set-mode=compat set-mode=legacy wait:legacy done" {
		t.Fatalf("rollback before the first restart: %s", got)
	}
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	// The first batch is being restarted; n02 did not come back, so the
	// server shows only n01 upgraded. Both are rolled back.
	v := view(proto.ModeCompat, 4, func(n *NodeView) {
		if n.Name == "n01" {
			n.Upgraded, n.Protocol, n.Versions = true, "v2", v2
		}
		if n.Name == "n02" {
			n.Up = false
		}
	})
	s.StartRollback(v)
	got := kinds(s.Simulate())
	want := "preflight set-mode=compat restart(n01,n02)=follow wait:compat(n01,n02) clear-upgraded(n01,n02) set-mode=legacy wait:legacy done"
	if got != want {
		t.Fatalf("rollback:\n got %s\nwant %s", got, want)
	}
	if s.Goal != GoalRollback || s.Next().Phase != PhaseRBPreflight {
		t.Fatalf("state after StartRollback: %+v", s.Next())
	}
	// A rollback of a compat cluster that never upgraded anything just sets legacy.
	s, _ = NewPlan(GoalRollback, view(proto.ModeCompat, 2, nil), Options{BatchSize: 1, VerifyPeers: 1})
	if got := kinds(s.Simulate()); got != "preflight set-mode=compat set-mode=legacy wait:legacy done" {
		t.Fatalf("plain rollback: %s", got)
	}
	// From a finished migration, every node is rolled back.
	s, _ = NewPlan(GoalMigrate, view(proto.ModeLegacy, 3, nil), Options{BatchSize: 2, VerifyPeers: 1})
	for !s.Finished() {
		_ = s.Record(true, "")
	}
	s.StartRollback(view(proto.ModePing, 3, func(n *NodeView) { n.Upgraded = true }))
	if !slices.Equal(s.Rollback, []string{"n01", "n02", "n03"}) {
		t.Fatalf("rollback nodes %v", s.Rollback)
	}
}

func TestUnmetAndPreflight(t *testing.T) {
	v := view(proto.ModeCompat, 4, func(n *NodeView) {
		switch n.Name {
		case "n01":
			n.Protocol, n.Versions = "v2", v1|v2
		case "n02":
			n.Protocol, n.Versions, n.Upgraded = "v2", v2, true
		case "n03":
			n.Up = false
		}
	})
	if u := v.Unmet(WantCompat, []string{"n01"}); u != nil {
		t.Fatalf("n01 is compat: %v", u)
	}
	if u := v.Unmet(WantUpgraded, []string{"n02"}); u != nil {
		t.Fatalf("n02 is upgraded: %v", u)
	}
	u := v.Unmet(WantCompat, nil)
	if len(u) != 3 || !strings.Contains(u[0], "n02: speaks PING only") || !strings.Contains(u[1], "n03: not connected") ||
		!strings.Contains(u[2], "n04: speaks v1") || !strings.Contains(u[2], "--protocol follow") || strings.Contains(u[2], "--enroll") {
		t.Fatalf("unmet compat: %q", u)
	}
	// The hint names the cause: never enrolled, or still reconnecting.
	hv := view(proto.ModeCompat, 2, func(n *NodeView) {
		if n.Name == "n01" {
			n.Versions = v1 | v2
		} else {
			n.Up, n.Protocol, n.Versions, n.NoKey = true, "v1", v1, true
		}
	})
	if u := hv.Unmet(WantCompat, []string{"n01", "n02"}); len(u) != 2 || !strings.Contains(u[0], "reconnects in compat mode") ||
		!strings.Contains(u[1], "never enrolled") || !strings.Contains(u[1], "--enroll TOKEN") {
		t.Fatalf("unmet hints: %q", u)
	}
	if u := v.Unmet(WantLegacy, []string{"n04", "zz"}); len(u) != 1 || !strings.Contains(u[0], "zz: no such node") {
		t.Fatalf("unmet legacy: %q", u)
	}
	if p := v.Preflight(GoalMigrate); len(p) != 1 || !strings.Contains(p[0], "n03") {
		t.Fatalf("preflight: %q", p)
	}
	// A node that never enrolled is neither down nor waited for.
	nv := view(proto.ModeLegacy, 2, func(n *NodeView) {
		if n.Name == "n02" {
			n.Up, n.Protocol, n.NeverEnrolled = false, "", true
		}
	})
	if p := nv.Preflight(GoalMigrate); p != nil {
		t.Fatalf("preflight with a node never enrolled: %q", p)
	}
	if u := nv.Unmet(WantLegacy, nil); u != nil {
		t.Fatalf("unmet legacy of every node waits for the one never enrolled: %q", u)
	}
	if p := (&ClusterView{Mode: proto.ModeLegacy}).Preflight(GoalMigrate); len(p) != 1 {
		t.Fatalf("preflight without nodes: %q", p)
	}
}

// TestPlanInPingModeNeverGoesBackToCompat: a cluster already in ping mode
// with nodes left to upgrade is upgraded without switching the server to
// compat (which would reopen legacy admission), and nodes that never
// enrolled are left out.
func TestPlanInPingModeNeverGoesBackToCompat(t *testing.T) {
	v := view(proto.ModePing, 4, func(n *NodeView) {
		switch n.Name {
		case "n01", "n02":
			n.Protocol, n.Versions, n.Upgraded = "v2", v2, true
		case "n03":
			n.Protocol, n.Versions = "v2", v1|v2
		case "n04":
			n.Up, n.Protocol, n.Versions, n.NeverEnrolled = false, "", 0, true
		}
	})
	s, err := NewPlan(GoalMigrate, v, Options{BatchSize: 5, VerifyPeers: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range s.Simulate() {
		if a.Kind == ActSetMode {
			t.Errorf("plan sets the server mode: %s", a.Desc)
		}
		if a.Kind == ActRestart && strings.Join(a.Nodes, ",") != "n03" {
			t.Errorf("plan restarts %v, want n03 only", a.Nodes)
		}
	}
	if got := kinds(s.Simulate()); !strings.HasPrefix(got, "preflight restart") {
		t.Errorf("steps: %s", got)
	}
	if slices.Contains(s.Nodes, "n04") {
		t.Errorf("never-enrolled n04 is in the plan: %v", s.Nodes)
	}
	// Every node upgraded, or never enrolled: nothing to do.
	v.Nodes[2].Upgraded, v.Nodes[2].Versions = true, v2
	if s, _ := NewPlan(GoalMigrate, v, Options{BatchSize: 5, VerifyPeers: 1}); !s.Finished() {
		t.Errorf("migrated cluster: plan not finished: %s", kinds(s.Simulate()))
	}
}

func TestDecodeStateRejectsInconsistentStates(t *testing.T) {
	s, _ := NewPlan(GoalMigrate, view(proto.ModeLegacy, 3, nil), Options{BatchSize: 2, VerifyPeers: 1})
	good := string(EncodeState(s))
	if _, err := DecodeState([]byte(good)); err != nil {
		t.Fatal(err)
	}
	for name, edit := range map[string][2]string{
		"pos":      {`"pos": 0`, `"pos": 99`},
		"goal":     {`"goal": "migrate"`, `"goal": "sideways"`},
		"phase":    {`"phase": "compat"`, `"phase": "warp"`},
		"batch":    {`"phase": "restart"`, `"phase": "restart", "batch": 7`},
		"node":     {`"n01",`, `"-bad",`},
		"format":   {`"format": 1`, `"format": 3`},
		"addr":     {`"127.0.0.2:15003"`, `"nowhere"`},
		"unknown":  {`"format": 1`, `"format": 1, "extra": true`},
		"peers":    {`"verify_peers": 1`, `"verify_peers": 0`},
		"trailing": {"}\n", "}\n{}"},
	} {
		bad := strings.Replace(good, edit[0], edit[1], 1)
		if bad == good {
			t.Fatalf("%s: edit %q did not apply", name, edit[0])
		}
		if _, err := DecodeState([]byte(bad)); !errors.Is(err, ErrBadState) {
			t.Errorf("%s: %v, want ErrBadState", name, err)
		}
	}
}

// FuzzDecodeState: a state that decodes re-encodes to an equal state, and
// every action it yields is well formed.
func FuzzDecodeState(f *testing.F) {
	s, _ := NewPlan(GoalMigrate, view(proto.ModeLegacy, 3, nil), Options{BatchSize: 2, VerifyPeers: 1})
	f.Add(EncodeState(s))
	s.StartRollback(view(proto.ModeCompat, 3, func(n *NodeView) { n.Upgraded = true }))
	f.Add(EncodeState(s))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := DecodeState(b)
		if err != nil {
			return
		}
		st2, err := DecodeState(EncodeState(st))
		if err != nil || !reflect.DeepEqual(st, st2) {
			t.Fatalf("round trip: %v", err)
		}
		for _, a := range st.Simulate() {
			if a.Kind == "" {
				t.Fatalf("empty action from %+v", st)
			}
		}
	})
}

package member

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/replica"
)

func TestOneMemberGroupSurvivesRestart(t *testing.T) {
	g := newGroup(t)
	s1 := g.start("s1", "127.0.0.1")
	if err := s1.m.Bootstrap(s1.addr); err != nil {
		t.Fatal(err)
	}
	c, _ := createNode("n1")
	if res := g.apply(c); res.Err != nil {
		t.Fatal(res.Err)
	}
	if err := s1.m.Bootstrap(s1.addr); !errors.Is(err, ErrHasState) {
		t.Fatalf("second bootstrap: %v", err)
	}
	g.kill(s1)
	s1 = g.start("s1", "127.0.0.1")
	if err := s1.m.Bootstrap(s1.addr); !errors.Is(err, ErrHasState) {
		t.Fatalf("bootstrap after restart: %v", err)
	}
	g.leader()
	waitFor(t, "the log to be replayed into the fresh state", func() bool { return hasNodes(s1, "n1") })
}

func TestFailoverKeepsCommittedWrites(t *testing.T) {
	g := newGroup(t)
	g.three()
	var names []string
	for i := range 5 {
		name := fmt.Sprintf("n%d", i)
		c, _ := createNode(name)
		if res := g.apply(c); res.Err != nil {
			t.Fatal(res.Err)
		}
		names = append(names, name)
	}
	old := g.leader()
	changes := func() uint64 {
		var total uint64
		for _, n := range g.nodes {
			if n.m != nil && n != old {
				st, _ := n.m.Status()
				total += st.LeaderChanges
			}
		}
		return total
	}
	before := changes()
	g.kill(old)
	next := g.leader()
	if next == old {
		t.Fatal("the killed member still leads")
	}
	// A new leader serves only after a barrier: then it has applied every
	// committed write.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := next.m.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
	if !hasNodes(next, names...) {
		t.Fatalf("the new leader lost acknowledged writes: has %v, want %v", next.reg.Names(), names)
	}
	if changes() <= before {
		t.Fatal("no leadership change was counted")
	}
	// Two of three still commit.
	c, _ := createNode("after")
	if res := g.apply(c); res.Err != nil {
		t.Fatal(res.Err)
	}
	// The old leader comes back as a follower and catches up.
	back := g.start(old.name, old.ip)
	waitFor(t, "the restarted member to catch up", func() bool { return hasNodes(back, append(names, "after")...) })
}

func TestTokenRedeemedOnceAcrossTheGroup(t *testing.T) {
	g := newGroup(t)
	g.three()
	c, enroll := createNode("n1")
	if res := g.apply(c); res.Err != nil {
		t.Fatal(res.Err)
	}
	// Two redemptions of one token at once: exactly one wins.
	var wg sync.WaitGroup
	results := make([]replica.Result, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = g.apply(enroll)
		}()
	}
	wg.Wait()
	won := 0
	for _, r := range results {
		switch {
		case r.Err == nil:
			won++
		case !errors.Is(r.Err, keys.ErrTokenUsed):
			t.Fatalf("a redemption failed otherwise: %v", r.Err)
		}
	}
	if won != 1 {
		t.Fatalf("%d redemptions of one token succeeded", won)
	}
	// The next leader refuses it too: the redemption is group state.
	g.kill(g.leader())
	if res := g.apply(enroll); !errors.Is(res.Err, keys.ErrTokenUsed) {
		t.Fatalf("redemption after failover: %v", res.Err)
	}
}

func TestFollowerNamesTheLeader(t *testing.T) {
	g := newGroup(t)
	g.three()
	l := g.leader()
	for _, n := range g.nodes {
		if n == l {
			continue
		}
		waitFor(t, n.name+" to know the leader", func() bool { st, _ := n.m.Status(); return st.Leader == l.name })
		c, _ := createNode("x")
		_, err := n.m.Apply(context.Background(), c)
		var nl *NotLeaderError
		if !errors.As(err, &nl) || !errors.Is(err, ErrNotLeader) {
			t.Fatalf("apply on follower %s: %v", n.name, err)
		}
		if nl.Leader != l.name || nl.LeaderAddr != l.addr {
			t.Fatalf("follower %s names %s at %s, want %s at %s", n.name, nl.Leader, nl.LeaderAddr, l.name, l.addr)
		}
		if err := n.m.AddVoter(context.Background(), "s9", "127.0.0.9:1"); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("membership change on a follower: %v", err)
		}
	}
}

func TestMinorityCannotCommit(t *testing.T) {
	g := newGroup(t)
	g.three()
	l := g.leader()
	c, _ := createNode("before")
	if res := g.apply(c); res.Err != nil {
		t.Fatal(res.Err)
	}
	for _, n := range g.nodes {
		if n != l {
			g.kill(n)
		}
	}
	applied := l.reg.Applied()
	c, _ = createNode("minority")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := l.m.Apply(ctx, c)
	if !errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrNotLeader) {
		t.Fatalf("apply with one member of three: %v, want ErrOutcomeUnknown or ErrNotLeader", err)
	}
	if hasNodes(l, "minority") || l.reg.Applied() != applied {
		t.Fatal("a write was applied without a quorum")
	}
	waitFor(t, "the lone member to step down", func() bool { return !l.leading.Load() })
	if _, err := l.m.Apply(context.Background(), c); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("apply after stepping down: %v", err)
	}
}

func TestStandbyNeverLeads(t *testing.T) {
	g := newGroup(t)
	g.three()
	s4 := g.start("s4", "127.0.0.4")
	g.mustAdd(g.leader(), s4, true)
	c, _ := createNode("n1")
	if res := g.apply(c); res.Err != nil {
		t.Fatal(res.Err)
	}
	waitFor(t, "the standby to replicate", func() bool { return hasNodes(s4, "n1") })
	st, err := g.leader().m.Status()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.Name == "s4" && m.Role != RoleStandby {
			t.Fatalf("s4 has role %s", m.Role)
		}
	}
	// Kill leaders until one voter is left: it campaigns (without a
	// quorum), and the standby never does.
	g.kill(g.leader())
	g.leader()
	g.kill(g.leader())
	var last *testNode
	for _, n := range g.nodes {
		if n.m != nil && n != s4 {
			last = n
		}
	}
	// When the standby's follower loop finds the leader gone it clears the
	// leader, in the very branch where a voter would start an election.
	waitFor(t, "the standby to notice the leader is gone", func() bool {
		st, _ := s4.m.Status()
		return st.Leader == ""
	})
	waitFor(t, "the last voter to campaign", func() bool {
		st, _ := last.m.Status()
		return st.Campaigns > 0
	})
	st, _ = s4.m.Status()
	if st.Campaigns != 0 || s4.everLed.Load() {
		t.Fatalf("the standby campaigned %d times, led: %v", st.Campaigns, s4.everLed.Load())
	}
}

func TestLaggingMemberShownAndCaughtUp(t *testing.T) {
	g := newGroup(t)
	g.tweak = func(c *Config) { c.TrailingLogs, c.SnapshotThreshold = 16, 1<<20 }
	_, _, s3 := g.three()
	var names []string
	add := func(n int) {
		for range n {
			name := fmt.Sprintf("n%d", len(names))
			c, _ := createNode(name)
			if res := g.apply(c); res.Err != nil {
				t.Fatal(res.Err)
			}
			names = append(names, name)
		}
	}
	add(3)
	if g.leader() == s3 {
		g.kill(s3)
		g.start(s3.name, s3.ip)
		waitFor(t, "a leader other than s3", func() bool { return g.leader() != s3 })
	}
	g.kill(s3)
	add(20)
	row := func() MemberStatus {
		st, err := g.leader().m.Status()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range st.Members {
			if m.Name == "s3" {
				return m
			}
		}
		t.Fatal("s3 missing from the status")
		return MemberStatus{}
	}
	waitFor(t, "s3 shown down and behind", func() bool {
		r := row()
		return r.Health == HealthDown && r.NeedsSync && r.Behind >= 20
	})
	t.Logf("while down: %s", row().State())
	s3 = g.start(s3.name, s3.ip)
	waitFor(t, "s3 alive and in sync", func() bool {
		r := row()
		return r.Health == HealthAlive && !r.NeedsSync && hasNodes(s3, names...)
	})

	// A member whose state directory was lost rejoins from a snapshot: the
	// leader compacts its log, so s4 cannot be sent the early entries.
	if err := g.leader().m.Snapshot(); err != nil {
		t.Fatal(err)
	}
	add(20) // beyond TrailingLogs after the snapshot
	if err := g.leader().m.Snapshot(); err != nil {
		t.Fatal(err)
	}
	s4 := g.start("s4", "127.0.0.4")
	g.mustAdd(g.leader(), s4, true)
	waitFor(t, "s4 restored from a snapshot", func() bool { return hasNodes(s4, names...) })
}

func TestRemoveMember(t *testing.T) {
	g := newGroup(t)
	g.three()
	l := g.leader()
	var gone *testNode
	for _, n := range g.nodes {
		if n != l {
			gone = n
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := l.m.Remove(ctx, gone.name); err != nil {
		t.Fatal(err)
	}
	st, _ := l.m.Status()
	for _, m := range st.Members {
		if m.Name == gone.name {
			t.Fatalf("%s still in the group", gone.name)
		}
	}
	// Two voters now: both needed, and both there.
	c, _ := createNode("n1")
	if res := g.apply(c); res.Err != nil {
		t.Fatal(res.Err)
	}
	if hasNodes(gone, "n1") {
		t.Fatal("the removed member still receives writes")
	}
}

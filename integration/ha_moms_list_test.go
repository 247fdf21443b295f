package integration

import (
	"strings"
	"testing"
	"time"
)

// TestHAGroupMomsFollowTheLeader: three real members (ha2's group), MOMs
// given every member's control address with the followers first: they
// reach the leader through NotLeader; kill -9 of the leader moves every
// MOM to the new leader within the deadline while sisters keep admitting
// each other.
func TestHAGroupMomsFollowTheLeader(t *testing.T) {
	g := newHAGroup(t, "127.0.0.61", "127.0.0.62")
	l := g.leader()
	var list []string
	for _, n := range []string{"s3", "s2", "s1"} { // followers first
		list = append(list, g.members[n].control)
	}
	servers := strings.Join(list, ",")
	a := g.c.startMomVia("a", "127.0.0.61", g.c.createNode("a", "127.0.0.61"), servers)
	b := g.c.startMomVia("b", "127.0.0.62", g.c.createNode("b", "127.0.0.62"), servers)
	g.c.waitOn("a", l.control)
	g.c.waitOn("b", l.control)
	g.c.mutuallyAdmitted(a, b)
	st, _ := g.c.fullStatus(a)
	t.Logf("a on the leader %s: redirects %v", l.name, st.ServerRedirects)
	if st.ServerRedirects["followed"] < 1 && list[0] != l.control {
		t.Errorf("a reached the leader without a followed redirect: %v", st.ServerRedirects)
	}

	l.proc.kill()
	killed := time.Now()
	l.proc = nil
	nl := g.leader()
	t.Logf("new leader %s after %s", nl.name, time.Since(killed).Round(time.Millisecond))
	waitFor(t, "both MOMs on the new leader", 30*time.Second, func() bool {
		g.c.mutuallyAdmitted(a, b)
		sa, okA := g.c.fullStatus(a)
		sb, okB := g.c.fullStatus(b)
		return okA && okB && sa.Connected && sa.Server == nl.control && sb.Connected && sb.Server == nl.control
	})
	t.Logf("kill -9 of the leader to both MOMs on the new leader: %s (draft, loaded machine)", time.Since(killed).Round(time.Millisecond))
	sa, _ := g.c.fullStatus(a)
	t.Logf("a: switches %d, redirects %v", sa.ServerSwitches, sa.ServerRedirects)
	g.follow(nl)
	g.c.waitUp("a")
	g.c.waitUp("b")
}

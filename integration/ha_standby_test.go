package integration

import (
	"strings"
	"testing"
	"time"
)

// TestHAGroupStandbyRole: set server NAME standby=true|false in a group of
// three. A follower names the leader, the leader does not demote itself,
// a bad value is a syntax error like any other. A demoted follower is
// listed as standby, and after kill -9 of the leader it never leads: the
// group leads again once the killed voter is back, and never with the
// standby. Promoted again it is a follower, and it can lead: with the
// third member demoted, delete server of the leader leaves it the only
// voter, and it leads and commits.
func TestHAGroupStandbyRole(t *testing.T) {
	t0 := time.Now()
	g := newHAGroup(t)
	l := g.leader()
	var f, o *member
	for _, m := range g.members {
		switch {
		case m == l:
		case f == nil:
			f = m
		default:
			o = m
		}
	}
	demote, promote := "set server "+f.name+" standby=true", "set server "+f.name+" standby=false"
	if r := g.qmgr(f, demote, false); r.code != 2 || !strings.Contains(r.stderr, l.name+" leads") {
		t.Fatalf("demote on a follower: code %d, %q", r.code, r.stderr)
	}
	if r := g.qmgr(l, "set server "+l.name+" standby=true", false); r.code != 2 || !strings.Contains(r.stderr, "does not demote itself") ||
		!strings.Contains(r.stderr, "delete server "+l.name) {
		t.Fatalf("demote of the leader on itself: code %d, %q", r.code, r.stderr)
	}
	bad := g.qmgr(l, "set server "+f.name+" standby=maybe", false)
	other := g.qmgr(l, "set server mode=fast", false)
	if bad.code == 0 || bad.code != other.code || !strings.Contains(bad.stderr, `standby "maybe": want one of true, false`) {
		t.Fatalf("standby=maybe: code %d (a bad mode: %d), %q", bad.code, other.code, bad.stderr)
	}
	if r := g.qmgr(l, "set server key_grace=1s", false); r.code != 0 {
		t.Fatalf("set server key_grace=1s beside the member form: %s", r.stderr)
	}

	// Demote f: standby in list server; kill -9 of the leader: f never
	// leads (the other voter alone is no quorum), and once the leader is
	// back a voter leads.
	if r := g.qmgr(l, demote, false); r.code != 0 || !strings.Contains(r.stdout, "is a standby") {
		t.Fatalf("%s: code %d, %q %q", demote, r.code, r.stdout, r.stderr)
	}
	waitFor(t, f.name+" standby in list server", 30*time.Second, func() bool {
		_, role := g.state(f.name)
		return role == "standby"
	})
	if r := g.qmgr(l, "list server", false); !strings.Contains(r.stdout, "standby") {
		t.Fatalf("list server:\n%s", r.stdout)
	}
	l.proc.kill()
	l.proc = nil
	g.runMember(l)
	nl := g.leader()
	if nl == f {
		t.Fatalf("the demoted %s leads", f.name)
	}
	if v, ok := g.view(f); ok && v.Server.Group.Leader == f.name {
		t.Fatalf("the demoted %s says it leads", f.name)
	}
	if strings.Contains(f.proc.out.String(), "leading the group: serving MOMs") {
		t.Fatalf("the demoted %s led at some point:\n%s", f.name, f.proc.out.String())
	}

	// Promote f (once the new leader hears it): a follower again. Demote
	// the third member and delete the leader: f is the only voter left,
	// and leads.
	g.waitAlive(f.name)
	if r := g.qmgr(nl, promote, false); r.code != 0 || !strings.Contains(r.stdout, "is a voter") {
		t.Fatalf("%s: code %d, %q %q", promote, r.code, r.stdout, r.stderr)
	}
	waitFor(t, f.name+" follower in list server", 30*time.Second, func() bool {
		_, role := g.state(f.name)
		return role == "follower"
	})
	third := o
	if nl == o {
		third = l
	}
	if r := g.qmgr(nl, "set server "+third.name+" standby=true", false); r.code != 0 {
		t.Fatalf("demote %s: %s", third.name, r.stderr)
	}
	if r := g.qmgr(nl, "delete server "+nl.name, false); r.code != 0 {
		t.Fatalf("delete server %s: %s", nl.name, r.stderr)
	}
	waitLogged(t, nl.proc, "this member deleted itself from the group")
	nl.proc.stop()
	nl.proc = nil
	if next := g.leader(); next != f {
		t.Fatalf("%s leads, want the promoted %s (the only voter)", next.name, f.name)
	}
	g.write("create node after-promotion Mom=127.0.2.98")
	t.Logf("TestHAGroupStandbyRole took %s", time.Since(t0).Round(time.Second))
}

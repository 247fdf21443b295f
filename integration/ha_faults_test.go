package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/proto"
)

// kill -9 of a group's leader during enrollment and during delete node
// (issue 14, docs/HA.md): three real members on 127.0.0.1, .2, .3 and
// MOMs on further loopback addresses that know every member. The crash
// points are the single server's (internal/daemon/crash.go): the leader
// runs the server's own enrollment and delete paths, with the group's
// commit where a single server writes its journal.

// controls is every member's control address, s1 first: the --server
// list of the group's MOMs.
func (g *haGroup) controls() string {
	var list []string
	for _, n := range []string{"s1", "s2", "s3"} {
		list = append(list, g.members[n].control)
	}
	return strings.Join(list, ",")
}

// momsOnGroup restarts the named MOMs, enrolled at the single server
// before the upgrade, with the group's list, and returns them.
func (g *haGroup) momsOnGroup(names ...string) []*momProc {
	g.t.Helper()
	var out []*momProc
	for _, n := range names {
		m := g.c.moms[n]
		m.stop()
		out = append(out, g.c.startMomVia(n, m.ip, "", g.controls()))
	}
	return out
}

// waitMomsOn waits until every MOM in moms has a control session with
// member l; at every poll the sisters admit each other.
func (g *haGroup) waitMomsOn(l *member, sisters []*momProc, moms ...*momProc) {
	g.t.Helper()
	waitFor(g.t, "every MOM on the leader "+l.name, 90*time.Second, func() bool {
		g.c.mutuallyAdmitted(sisters...)
		for _, m := range moms {
			st, ok := g.c.fullStatus(m)
			if !ok || !st.Connected || st.Server != l.control {
				return false
			}
		}
		return true
	})
}

// requireTokensUsed runs, for each node, a second MOM with an identity of
// its own at the node's address, redeeming the node's token through the
// group (all at once): each must be refused as used and stop.
func (g *haGroup) requireTokensUsed(names, ips, toks []string) {
	g.t.Helper()
	var ps []*proc
	for i, n := range names {
		dir := filepath.Join(g.c.dir, n+"-again")
		ps = append(ps, start(g.t, n+"-again", "momgate-mom", "run", "--state-dir", dir, "--server", g.controls(),
			"--listen", fmt.Sprintf("%s:%d", ips[i], freePort(g.t, ips[i])), "--enroll", toks[i], "--log-level", "debug"))
	}
	for i, p := range ps {
		if code := p.waitExit(g.t, 90*time.Second); code == 0 || !strings.Contains(p.out.String(), "token already used") {
			g.t.Fatalf("a second identity with %s's token: exit %d, want refused as used:\n%s", names[i], code, p.out.String())
		}
	}
}

// createNode creates node name on the leader, again on the new leader
// if a follower refused it (an election under load may move the
// leadership between two calls), and returns its token; the cluster
// helpers follow the leader that created it.
func (g *haGroup) createNode(name, ip string) string {
	g.t.Helper()
	var r result
	waitFor(g.t, "create node "+name+" on the leader", 60*time.Second, func() bool {
		l := g.leader()
		g.follow(l)
		r = g.qmgr(l, fmt.Sprintf("create node %s Mom=%s,Port=%d", name, ip, g.c.imPort), true)
		return r.code == 0 || !strings.Contains(r.stderr, "not_leader")
	})
	if r.code != 0 {
		g.t.Fatalf("create node %s: %s", name, r.stderr)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Token == "" {
		g.t.Fatalf("create node %s: no token in %q (%v)", name, r.stdout, err)
	}
	return out.Token
}

// crashed waits for the member that the crash hook at step killed (the
// leader, whichever it is by then) and returns it, its proc kept in
// killed for its log.
func (g *haGroup) crashed(step string) (m *member, killed *proc) {
	g.t.Helper()
	waitFor(g.t, "a member to crash at "+step, 90*time.Second, func() bool {
		for _, c := range g.members {
			if c.proc != nil && c.proc.exited() {
				m = c
				return true
			}
		}
		return false
	})
	killed = m.proc
	crashedAt(g.t, killed, step)
	m.proc = nil
	return m, killed
}

// refusedWith fails unless err is a Reject with one of codes.
func refusedWith(t *testing.T, what string, err error, codes ...proto.RejectCode) {
	t.Helper()
	var rj *handshake.RejectError
	if !errors.As(err, &rj) || !slices.Contains(codes, rj.Code) {
		t.Fatalf("%s: got %v, want a Reject with one of codes %v", what, err, codes)
	}
}

// TestHAGroupKilledAfterEnrollmentSaved: every member armed with the
// crash hook enroll-saved; the leader dies right after the enrollment of
// c is committed through the group, before the Welcome reaches c's MOM.
// The MOM's retry with the same token and identity is, at the new leader,
// the enrollment the old one committed (no second "node enrolled"); c is
// enrolled with its MOM's own identity; the token is refused to another
// identity; every MOM ends on the new leader, and the sisters admit each
// other at every step of the failover.
func TestHAGroupKilledAfterEnrollmentSaved(t *testing.T) {
	const ipA, ipB, ipC = "127.0.0.71", "127.0.0.72", "127.0.0.73"
	g := newHAGroupEnv(t, crashEnv("enroll-saved"), func(c *cluster) {
		c.addMom("a", ipA)
		c.addMom("b", ipB)
	}, ipA, ipB, ipC)
	ms := g.momsOnGroup("a", "b")
	a, b := ms[0], ms[1]
	g.waitMomsOn(g.leader(), nil, a, b)
	g.c.mutuallyAdmitted(a, b)

	tok := g.createNode("c", ipC)
	c := g.c.startMomVia("c", ipC, tok, g.controls())
	killed, out := g.crashed("enroll-saved")
	if n := enrolledLines(out, "c"); n != 1 {
		t.Fatalf("the killed leader %s logged %d enrollments of c, want 1", killed.name, n)
	}
	g.c.mutuallyAdmitted(a, b) // their server just died

	nl := g.leader()
	g.follow(nl)
	g.waitMomsOn(nl, []*momProc{a, b}, a, b, c)
	g.c.waitUp("c")
	if n := enrolledLines(nl.proc, "c"); n != 0 {
		t.Fatalf("the new leader %s enrolled c anew (%d): the enrollment committed before the kill was lost", nl.name, n)
	}
	g.c.requireEnrolledAs("c", c)
	g.requireTokensUsed([]string{"c"}, []string{ipC}, []string{tok})
	g.c.requireEnrolledAs("c", c)
	g.c.requireNodes("a", "b", "c")
	g.c.mutuallyAdmitted(a, b, c)
}

// TestHAGroupKilledDuringEnrollments: four MOMs enroll at once; the
// leader is killed (-9) as soon as it has logged the first enrollment,
// the others under way, committed but not answered, or not yet begun.
// At the new leader every node is enrolled once (at most one "node
// enrolled" over both leaders' logs: a second would be its token redeemed
// twice), with its MOM's own identity, up; every token is refused to a
// second identity; every MOM ends on the new leader; the sisters admit
// each other throughout and admit the new nodes.
func TestHAGroupKilledDuringEnrollments(t *testing.T) {
	const ipA, ipB = "127.0.0.74", "127.0.0.75"
	names := []string{"n1", "n2", "n3", "n4"}
	ips := []string{"127.0.0.76", "127.0.0.77", "127.0.0.78", "127.0.0.79"}
	g := newHAGroupEnv(t, nil, func(c *cluster) {
		c.addMom("a", ipA)
		c.addMom("b", ipB)
	}, append([]string{ipA, ipB}, ips...)...)
	ms := g.momsOnGroup("a", "b")
	a, b := ms[0], ms[1]
	g.waitMomsOn(g.leader(), nil, a, b)

	var toks []string
	for i, n := range names {
		toks = append(toks, g.createNode(n, ips[i]))
	}
	var moms []*momProc
	for i, n := range names {
		moms = append(moms, g.c.startMomVia(n, ips[i], toks[i], g.controls()))
	}
	// The member that logs the first enrollment leads: it is killed.
	// Polled every 2 ms, not waitFor's 20: the kill should find the
	// other enrollments under way.
	var l *member
	deadline := time.Now().Add(60 * time.Second)
	for l == nil {
		for _, m := range g.members {
			if m.proc != nil && strings.Contains(m.proc.out.String(), `msg="node enrolled"`) {
				l = m
			}
		}
		if l != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("timed out after 60s waiting for the leader to log the first enrollment")
		}
		time.Sleep(2 * time.Millisecond) // poll interval, not synchronisation
	}
	l.proc.kill()
	old := l.proc
	l.proc = nil
	logged := 0
	for _, n := range names {
		logged += enrolledLines(old, n)
	}
	t.Logf("leader %s killed with %d of %d enrollments logged", l.name, logged, len(names))
	g.c.mutuallyAdmitted(a, b)

	nl := g.leader()
	g.follow(nl)
	g.waitMomsOn(nl, []*momProc{a, b}, append([]*momProc{a, b}, moms...)...)
	for i, n := range names {
		g.c.waitUp(n)
		before, after := enrolledLines(old, n), enrolledLines(nl.proc, n)
		t.Logf("%s: %d enrollment(s) logged by the killed leader, %d by the new one %s", n, before, after, nl.name)
		if before+after > 1 {
			t.Errorf("node %s enrolled %d times at the old leader and %d at the new one: its token redeemed twice", n, before, after)
		}
		g.c.requireEnrolledAs(n, moms[i])
	}
	g.requireTokensUsed(names, ips, toks)
	g.c.requireNodes(append([]string{"a", "b"}, names...)...)
	for i, m := range moms {
		g.c.requireEnrolledAs(names[i], m)
		g.c.mutuallyAdmitted(a, m)
	}
	g.c.mutuallyAdmitted(b, moms[0])
}

// TestHAGroupKilledDuringDeleteNode: kill -9 of the leader answering
// delete node v. Sister d is stopped through the delete and the failover:
// it can learn of the delete only from the new leader; a and b run and
// admit each other throughout. Manual key distribution holds the delete's
// rotation still for as long as the test looks.
//
// acknowledged (no hook; the leader killed once qmgr has its answer) and
// committed (every member armed with the hook delete-saved: the delete
// committed through the group, not acknowledged, nothing pushed to the
// MOMs yet): the delete is whole at the new leader: v is gone, refused as
// revoked by every sister, d too, and by the new leader (its MOM stops,
// exit 4); the rotation the delete requested completes there, and v stays
// refused after it.
//
// not_committed (every member armed with the hook queued: the delete's
// rotation request committed, the delete not; not acknowledged): nothing
// of the delete is applied: v is listed, enrolled as before, its MOM up
// on the new leader and admitted by its sisters; the rotation the request
// asked for completes with v in it.
func TestHAGroupKilledDuringDeleteNode(t *testing.T) {
	for _, tc := range []struct {
		name, step string
		ips        [4]string // a, b, d, v
	}{
		{"acknowledged", "", [4]string{"127.0.0.81", "127.0.0.82", "127.0.0.83", "127.0.0.84"}},
		{"committed", "delete-saved", [4]string{"127.0.0.85", "127.0.0.86", "127.0.0.87", "127.0.0.88"}},
		{"not_committed", "queued", [4]string{"127.0.0.89", "127.0.0.90", "127.0.0.91", "127.0.0.92"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ipA, ipB, ipD, ipV := tc.ips[0], tc.ips[1], tc.ips[2], tc.ips[3]
			var env []string
			if tc.step != "" {
				env = crashEnv(tc.step)
			}
			g := newHAGroupEnv(t, env, func(c *cluster) {
				c.mustQmgr("set server key_grace=1s")
				c.addMom("a", ipA)
				c.addMom("b", ipB)
				c.addMom("d", ipD)
				c.addMom("v", ipV)
				c.mustQmgr("set server key_distribution=manual")
			}, ipA, ipB, ipD, ipV)
			ms := g.momsOnGroup("a", "b", "d", "v")
			a, b, d, v := ms[0], ms[1], ms[2], ms[3]
			g.waitMomsOn(g.leader(), nil, a, b, d, v)
			g.c.mutuallyAdmitted(a, b, d)
			// v's keys, stolen, seal its PINGs from its address; its MOM
			// stopped, so no genuine PING of v moves a mark past them.
			thief := stealKeys(t, v)
			v.stop()
			d.stop()
			asV := func(to *momProc) error {
				return thief.deliver(ipV, to.imAddr(g.c.imPort), thief.seal(ipV, to.ip))
			}
			for _, m := range []*momProc{a, b} {
				if err := asV(m); err != nil {
					t.Fatalf("v refused by %s before its delete: %v", m.name, err)
				}
			}

			var r result
			var answering *member
			waitFor(t, "delete node v to reach the leader", 60*time.Second, func() bool {
				answering = g.leader()
				r = g.qmgr(answering, "delete node v", false)
				return r.code == 0 || !strings.Contains(r.stderr, "not_leader")
			})
			if tc.step == "" {
				if r.code != 0 {
					t.Fatalf("delete node v: exit %d: %s", r.code, r.stderr)
				}
				answering.proc.kill()
				answering.proc = nil
			} else {
				if r.code == 0 {
					t.Fatalf("delete node v acknowledged by a leader that died answering it:\n%s", r.stdout)
				}
				g.crashed(tc.step)
			}
			g.c.mutuallyAdmitted(a, b)
			nl := g.leader()
			g.follow(nl)
			g.waitMomsOn(nl, []*momProc{a, b}, a, b)
			d = g.c.startMomVia("d", ipD, "", g.controls())
			g.waitMomsOn(nl, []*momProc{a, b}, a, b, d)

			if tc.step != "queued" {
				if _, ok := g.c.node("v"); ok {
					t.Fatal("the delete, committed before the kill, is lost at the new leader")
				}
				for _, m := range []*momProc{a, b, d} {
					waitRejectedWith(t, m.name+" to refuse the deleted v", func() error { return asV(m) }, proto.RejectRevoked)
				}
				v = g.c.startMomVia("v", ipV, "", g.controls())
				if code := v.waitExit(t, 90*time.Second); code != 4 {
					t.Fatalf("deleted v's MOM against the new leader: exit %d, want 4 (deleted)", code)
				}
				g.c.distributeByHand(a, b, d)
				for _, m := range []*momProc{a, b, d} {
					refusedWith(t, m.name+" refusing v after the rotation", asV(m), proto.RejectRevoked, proto.RejectUnknownKey)
				}
				g.c.requireNodes("a", "b", "d")
				g.c.waitConverged(a, b, d)
				g.c.mutuallyAdmitted(a, b, d)
			} else {
				if _, ok := g.c.node("v"); !ok {
					t.Fatal("v deleted at the new leader, although the delete never committed")
				}
				v = g.c.startMomVia("v", ipV, "", g.controls())
				g.waitMomsOn(nl, []*momProc{a, b}, a, b, d, v)
				g.c.waitUp("v")
				g.c.requireEnrolledAs("v", v)
				g.c.distributeByHand(a, b, d, v)
				g.c.requireNodes("a", "b", "d", "v")
				g.c.waitConverged(a, b, d, v)
				g.c.mutuallyAdmitted(a, b, d, v)
			}

		})
	}
}

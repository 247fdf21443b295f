package integration

import (
	"strings"
	"testing"
	"time"
)

// TestNodeNamesEverywhere: MOMs name their sisters, not only by node id,
// in `ping`, `peers` and their audit lines, asking the server once per
// sister; a deleted node's refusals are named too, by a sister that knew
// it and by one that never saw it (the server remembers deleted names).
func TestNodeNamesEverywhere(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	c.mustQmgr("set server key_grace=1h") // the deny refuses x, not the key
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	x := c.addMom("x", "127.0.0.4")
	fresh := c.addMom("fresh", "127.0.0.5")
	ids := map[string]string{}
	for _, n := range c.nodes() {
		ids[n.Name] = n.ID
	}

	mark := auditMark(t, b.auditPath())
	pr, r := c.ping(a, b.imAddr(c.imPort))
	if !pr.Admitted || pr.Name != "b" || pr.NodeID != ids["b"] {
		t.Fatalf("a -> b: %+v %s", pr, r.stderr)
	}
	if r := run(t, "", "momgate-mom", "ping", "--state-dir", a.dir, b.imAddr(c.imPort)); !strings.Contains(r.stdout, "admitted: node b ("+ids["b"]+")") {
		t.Fatalf("ping text: %q", r.stdout)
	}
	waitFor(t, "b's audit line naming a", 20*time.Second, func() bool {
		for _, l := range readAudit(t, b.auditPath())[mark:] {
			if l["outcome"] == "accepted" && l["channel"] == "im" && l["node"] == "a" && l["node_id"] == ids["a"] {
				return true
			}
		}
		return false
	})
	aLines := readAudit(t, a.auditPath())
	if l := aLines[len(aLines)-1]; l["node"] != "b" || l["node_id"] != ids["b"] {
		t.Fatalf("a's audit line of its ping: %v", l)
	}
	waitFor(t, "peers tables to name each other", 20*time.Second, func() bool {
		named := func(m *momProc, want string) bool {
			for _, p := range c.peers(m) {
				if p.Name == want && p.NodeID == ids[want] {
					return true
				}
			}
			return false
		}
		return named(a, "b") && named(b, "a")
	})
	if r := run(t, "", "momgate-mom", "peers", "--state-dir", b.dir); !strings.Contains(r.stdout, "127.0.0.2  a  ") || strings.Fields(r.stdout)[1] != "NAME" {
		t.Fatalf("peers text:\n%s", r.stdout)
	}

	// x is known to b (it pinged b), never seen by fresh.
	if pr, _ := c.ping(x, b.imAddr(c.imPort)); !pr.Admitted {
		t.Fatalf("x -> b: %+v", pr)
	}
	c.mustQmgr("delete node x")
	if code := x.waitExit(t, 30*time.Second); code != 4 {
		t.Fatalf("deleted x exited %d", code)
	}
	x = c.startMomCutOff("x", "127.0.0.4")
	for _, to := range []*momProc{b, fresh} {
		mark := auditMark(t, to.auditPath())
		c.refusedBy(x, to, "revoked")
		l := waitAudit(t, to.auditPath(), mark, "revoked", "127.0.0.4", "revoked")
		if l["node"] != "x" || l["node_id"] != ids["x"] {
			t.Errorf("%s's refusal of the deleted x: %v, want node=x node_id=%s", to.name, l, ids["x"])
		}
	}
}

// TestJobStartRefusesUnknownSisters: `job start` looks every sister up
// first and refuses the job, naming the unknown ones, before anything is
// saved or polled; known sisters start it.
func TestJobStartRefusesUnknownSisters(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	c.addMom("b", "127.0.0.3")
	r := run(t, "", "momgate-mom", "job", "start", "--state-dir", a.dir, "--name", "j1", "--sisters", "b,n98,n99")
	if r.code == 0 || !strings.Contains(r.stderr, "job j1: unknown sister(s) n98,n99: the server has no node of that name") {
		t.Fatalf("job with unknown sisters: exit %d %q", r.code, r.stderr)
	}
	if r := run(t, "", "momgate-mom", "job", "list", "--json", "--state-dir", a.dir); r.code != 0 || strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("a refused job is listed: %q %q", r.stdout, r.stderr)
	}
	if r := run(t, "", "momgate-mom", "job", "start", "--state-dir", a.dir, "--name", "j1", "--sisters", "b"); r.code != 0 {
		t.Fatalf("job with a known sister: %s", r.stderr)
	}
}

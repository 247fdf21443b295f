package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestEnrollAndMutualAdmission: three MOMs enroll with tokens, and every
// sister admits every other by PING swap.
func TestEnrollAndMutualAdmission(t *testing.T) {
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	c := newCluster(t, ips...)
	var moms []*momProc
	for i, ip := range ips {
		moms = append(moms, c.addMom(fmt.Sprintf("n%d", i+2), ip))
	}
	ids := map[string]string{}
	for _, n := range c.nodes() {
		ids[n.Mom] = n.ID
		if n.KeyState != "current" {
			t.Errorf("node %s key state %q, want current", n.Name, n.KeyState)
		}
	}
	for _, from := range moms {
		for _, to := range moms {
			if from == to {
				continue
			}
			pr, r := c.ping(from, to.imAddr(c.imPort))
			if r.code != 0 || !pr.Admitted {
				t.Fatalf("%s -> %s: not admitted: %+v %s", from.name, to.name, pr, r.stderr)
			}
			if pr.NodeID != ids[to.ip] {
				t.Fatalf("%s -> %s: reply from node %s, want %s", from.name, to.name, pr.NodeID, ids[to.ip])
			}
		}
	}
	for _, m := range moms {
		ps := c.peers(m)
		if len(ps) != 2 {
			t.Fatalf("%s peers table has %d rows, want 2: %+v", m.name, len(ps), ps)
		}
		for _, p := range ps {
			ip := strings.Split(p.Addr, ":")[0]
			if ids[ip] != p.NodeID {
				t.Errorf("%s: peer %s recorded as node %s, want %s", m.name, p.Addr, p.NodeID, ids[ip])
			}
		}
	}
	// The human table names each sister.
	r := run(t, "", "momgate-mom", "peers", "--state-dir", moms[0].dir)
	if r.code != 0 || !strings.Contains(r.stdout, "127.0.0.3") || !strings.Contains(r.stdout, "127.0.0.4") {
		t.Fatalf("peers table: %q %q", r.stdout, r.stderr)
	}
}

// TestRestartLosesNothing: the server and a MOM restart, cleanly and by
// kill -9, and come back with every node, key and mark.
func TestRestartLosesNothing(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	before := c.nodes()
	keysBefore := c.qmgr("--json", "-c", "list key").stdout

	c.server.stop()
	waitFor(t, "MOMs to notice the server is gone", 20*time.Second, func() bool {
		return !c.status(a).Connected
	})
	c.startServer()
	c.waitUp("a")
	c.waitUp("b")
	if got := c.nodes(); len(got) != len(before) || got[0].ID != before[0].ID || got[1].ID != before[1].ID {
		t.Fatalf("nodes after restart %+v, before %+v", got, before)
	}
	if got := c.qmgr("--json", "-c", "list key").stdout; !sameKeyIDs(got, keysBefore) {
		t.Fatalf("keys changed across restart:\n%s\n%s", keysBefore, got)
	}

	c.server.kill()
	c.startServer()
	c.waitUp("a")
	c.waitUp("b")

	// A MOM restarts without its token: it authenticates by identity.
	b.kill()
	b = c.startMom("b", "127.0.0.3", "")
	c.waitUp("b")
	if pr, r := c.ping(a, b.imAddr(c.imPort)); !pr.Admitted {
		t.Fatalf("a -> restarted b: %+v %s", pr, r.stderr)
	}
	if pr, r := c.ping(b, a.imAddr(c.imPort)); !pr.Admitted {
		t.Fatalf("restarted b -> a: %+v %s", pr, r.stderr)
	}
}

func sameKeyIDs(a, b string) bool {
	pick := func(s string) string {
		i := strings.Index(s, `"nodes"`)
		if i < 0 {
			return s
		}
		return s[:i]
	}
	return pick(a) == pick(b)
}

// TestTokenReuseRefused: a token works once; a second MOM presenting it is
// refused with a clear message and a non-zero exit.
func TestTokenReuseRefused(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	token := c.createNode("a", "127.0.0.2")
	c.startMom("a", "127.0.0.2", token)
	c.waitUp("a")

	// Same token again, from a fresh state dir on the node's own address.
	c.moms["a"].stop()
	again := c.startMom("a2", "127.0.0.2", token)
	if code := again.waitExit(t, 30*time.Second); code == 0 {
		t.Fatal("MOM with a used token exited 0")
	}
	if !strings.Contains(again.out.String(), "already used") && !strings.Contains(again.out.String(), "already enrolled") {
		t.Fatalf("reused token: unclear message:\n%s", again.out.String())
	}
	// From another address: the token names node a at 127.0.0.2.
	tokB := c.createNode("b", "127.0.0.3")
	thief := c.startMom("thief", "127.0.0.2", tokB)
	if code := thief.waitExit(t, 30*time.Second); code == 0 {
		t.Fatal("MOM using another node's token exited 0")
	}
	if !strings.Contains(thief.out.String(), "used from") {
		t.Fatalf("token from wrong address: unclear message:\n%s", thief.out.String())
	}
}

// TestExpiredTokenRefused: a token past its lifetime is refused.
func TestExpiredTokenRefused(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	if r := c.qmgr("set server token_ttl=1s"); r.code != 0 {
		t.Fatalf("set token_ttl: %s", r.stderr)
	}
	token := c.createNode("a", "127.0.0.2")
	expiry := time.Now().Add(1100 * time.Millisecond)
	waitFor(t, "token expiry", 10*time.Second, func() bool { return time.Now().After(expiry) })
	m := c.startMom("a", "127.0.0.2", token)
	if code := m.waitExit(t, 30*time.Second); code == 0 {
		t.Fatal("MOM with an expired token exited 0")
	}
	if !strings.Contains(m.out.String(), "expired") {
		t.Fatalf("expired token: unclear message:\n%s", m.out.String())
	}
}

// TestWrongServerFingerprintRefused: a token pins its server's key; a MOM
// pointed at another server refuses to enroll there.
func TestWrongServerFingerprintRefused(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	other := newCluster(t, "127.0.0.2")
	token := other.createNode("a", "127.0.0.2")
	m := c.startMom("a", "127.0.0.2", token)
	if code := m.waitExit(t, 30*time.Second); code == 0 {
		t.Fatal("MOM enrolled with a server its token does not pin")
	}
	if !strings.Contains(m.out.String(), "pinned") {
		t.Fatalf("wrong server: unclear message:\n%s", m.out.String())
	}
}

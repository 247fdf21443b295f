package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Tests of a replicated server group (docs/HA.md) with the real binaries.

// startGroupServer runs c's server as a member of a group replicating on
// repl (the state directory upgrades in place on the first such start).
func (c *cluster) startGroupServer(name, repl string) {
	c.t.Helper()
	c.server = start(c.t, "server-"+name, "momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr,
		"--replication-listen", repl, "--member-name", name, "--raft-heartbeat", "300ms", "--log-level", "debug")
	waitFor(c.t, "group server admin socket", 30*time.Second, func() bool {
		return run(c.t, "", "momgate-qmgr", "--state-dir", c.srvDir, "-c", "list node").code == 0
	})
}

// TestHAUpgradeInPlace: a single server with enrolled MOMs becomes a group
// of one member in place. The MOMs reconnect without enrolling again (same
// node ids, same keys), writes after the upgrade survive restarts through
// the raft log, a deleted node stays refused, a rotation completes.
func TestHAUpgradeInPlace(t *testing.T) {
	c := newCluster(t, "127.0.0.31", "127.0.0.32", "127.0.0.33")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.31")
	b := c.addMom("b", "127.0.0.32")
	before := map[string]string{}
	for _, n := range c.nodes() {
		before[n.Name] = n.ID
	}
	c.server.stop()
	repl := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	c.startGroupServer("s1", repl)
	for _, f := range []string{"raft", "group-ca.json"} {
		if _, err := os.Stat(filepath.Join(c.srvDir, f)); err != nil {
			t.Fatalf("after the upgrade: %v", err)
		}
	}
	c.waitUp("a")
	c.waitUp("b")
	for _, n := range c.nodes() {
		if before[n.Name] != n.ID {
			t.Fatalf("node %s: id %s after the upgrade, %s before (enrolled again?)", n.Name, n.ID, before[n.Name])
		}
	}
	c.mutuallyAdmitted(a, b)
	if r := c.mustQmgr("list server"); !strings.Contains(r.stdout, "s1") || !strings.Contains(r.stdout, "leader") {
		t.Fatalf("list server in a group of one:\n%s", r.stdout)
	}

	// A write after the upgrade lives in the raft log: it survives a
	// restart of the member.
	tok := c.createNode("n3", "127.0.0.33")
	c.server.stop()
	c.startGroupServer("s1", repl)
	if _, ok := c.node("n3"); !ok {
		t.Fatal("n3, created after the upgrade, lost at a restart")
	}
	m3 := c.startMom("n3", "127.0.0.33", tok)
	c.waitUp("n3")
	c.waitUp("a")

	// Delete b: refused by a at once; the rotation completes; b stays
	// deleted across a restart (kill -9).
	c.mustQmgr("delete node b")
	waitFor(t, "a to refuse deleted b", 20*time.Second, func() bool {
		pr, _ := c.ping(a, b.imAddr(c.imPort))
		return !pr.Admitted
	})
	c.waitRotated(1)
	c.server.kill()
	c.startGroupServer("s1", repl)
	if _, ok := c.node("b"); ok {
		t.Fatal("deleted node b back after kill -9 of the member")
	}
	c.waitUp("a")
	c.waitUp("n3")
	c.waitConverged(a, m3)
	c.mutuallyAdmitted(a, m3)
}

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestHAGroupBackupRestore: momgate-server backup of a follower while the
// leader writes on; the file is 0600 and not replaced without --force.
// The group is then lost whole, and restore makes a single server of the
// backup (refusing a directory with state unless --force): on the
// group's control address it serves the nodes created before the backup,
// and MOM a, enrolled in the group, reconnects to it without enrolling
// again.
func TestHAGroupBackupRestore(t *testing.T) {
	t0 := time.Now()
	g := newHAGroup(t, "127.0.0.51")
	a := g.c.addMom("a", "127.0.0.51")
	for i := 0; i < 3; i++ {
		g.write(fmt.Sprintf("create node b%d Mom=127.0.3.%d", i, i+1))
	}
	l := g.leader()
	var f *member
	for _, m := range g.members {
		if m != l {
			f = m
		}
	}
	g.waitAlive(f.name) // in sync: it has applied the creates
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := 0
	wg.Add(1)
	go func() { // writes go on during the backup
		defer wg.Done()
		for i := 0; i < 200; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if g.qmgr(l, fmt.Sprintf("create node d%d Mom=127.0.4.%d", i, i+1), false).code == 0 {
				mu.Lock()
				acked++
				mu.Unlock()
			}
		}
	}()
	waitFor(t, "writes under way", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return acked >= 2
	})
	out := filepath.Join(g.c.dir, "group.backup")
	r := run(t, "", "momgate-server", "backup", "--state-dir", f.dir, "--out", out)
	close(stop)
	wg.Wait()
	if r.code != 0 || !strings.Contains(r.stdout, "backed up member "+f.name) {
		t.Fatalf("backup: code %d, %q %q", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v", fi, err)
	}
	if r := run(t, "", "momgate-server", "backup", "--state-dir", f.dir, "--out", out); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("backup over an existing file: code %d, %q", r.code, r.stderr)
	}

	// The group is lost; the backup becomes a single server.
	for _, m := range g.members {
		m.proc.kill()
		m.proc = nil
	}
	dir := filepath.Join(g.c.dir, "restored")
	if r := run(t, "", "momgate-server", "restore", "--from", out, "--state-dir", dir); r.code != 0 {
		t.Fatalf("restore: %s", r.stderr)
	}
	if r := run(t, "", "momgate-server", "restore", "--from", out, "--state-dir", dir); r.code == 0 || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("restore over state: code %d, %q", r.code, r.stderr)
	}
	if r := run(t, "", "momgate-server", "restore", "--force", "--from", out, "--state-dir", dir); r.code != 0 || !strings.Contains(r.stdout, "backed up the previous state") {
		t.Fatalf("restore --force: code %d, %q %q", r.code, r.stdout, r.stderr)
	}
	g.c.srvDir, g.c.srvAddr = dir, g.members["s1"].control
	g.c.startServer()
	nodes := map[string]bool{}
	for _, n := range g.c.nodes() {
		nodes[n.Name] = true
	}
	for _, n := range []string{"a", "b0", "b1", "b2"} {
		if !nodes[n] {
			t.Fatalf("node %s, created before the backup, missing from the restored server (%d nodes)", n, len(nodes))
		}
	}
	g.c.waitUp("a")
	if a.exited() {
		t.Fatal("MOM a exited instead of reconnecting to the restored server")
	}
	g.c.createNode("after-restore", "127.0.0.52")
	mu.Lock()
	t.Logf("TestHAGroupBackupRestore took %s (%d nodes restored, %d creates acknowledged during the backup run)",
		time.Since(t0).Round(time.Second), len(nodes), acked)
	mu.Unlock()
}

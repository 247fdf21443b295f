package integration

// State you can trust (issue 16), the holes a black-box review found
// after the first round: a deleted manifest taken for an older version's
// directory (a MOM's marks, the server's journal), a recovery floor that a
// sender whose clock runs ahead passes with a PING sealed before the
// loss, and Mom= naming the server's own address.

import (
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/proto"
)

// waitMutuallyAdmitted waits until every MOM of moms admits every other.
func (c *cluster) waitMutuallyAdmitted(moms ...*momProc) {
	c.t.Helper()
	for _, from := range moms {
		for _, to := range moms {
			if from != to {
				waitFor(c.t, from.name+" -> "+to.name+" admitted", 30*time.Second, func() bool {
					pr, _ := c.ping(from, to.imAddr(c.imPort))
					return pr.Admitted
				})
			}
		}
	}
}

// wantRefusedAny fails unless err is a Reject (any code): a PING the
// receiver did not admit.
func wantRefusedAny(t *testing.T, what string, err error) {
	t.Helper()
	var rj *handshake.RejectError
	if !errors.As(err, &rj) {
		t.Fatalf("%s: admitted or failed otherwise (%v), want a Reject", what, err)
	}
}

// TestStateLossManifestWithMarks (F1): a MOM's manifest.json deleted
// together with its mark files (and, in a second round, its deny list
// too) does not make it take the directory for one of an older version
// without marks: it recovers with the recovery floor, loudly, and the PING
// captured before the damage is refused; a's genuine PINGs are admitted.
func TestStateLossManifestWithMarks(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	target := b.imAddr(c.imPort)
	thief := stealKeys(t, a)
	for _, files := range [][]string{
		{store.ManifestName, store.MarkLogName, store.MarkSnapName},
		{store.ManifestName, store.MarkLogName, store.MarkSnapName, "deny.json", "legacy.json"},
	} {
		t.Run(strings.Join(files, "+"), func(t *testing.T) {
			cp := thief.seal("127.0.0.2", "127.0.0.3")
			if err := thief.deliver("127.0.0.2", target, cp); err != nil {
				t.Fatalf("the capture, before the damage: %v", err)
			}
			b.stop()
			for _, f := range files {
				removeFile(t, filepath.Join(b.dir, f))
			}
			if r := run(t, "", "momgate-mom", "state", "check", "--state-dir", b.dir); r.code != 2 || !strings.Contains(r.stdout, "recover: "+store.MarkLogName) {
				t.Fatalf("state check: exit %d, want 2 (recover marks): %q %q", r.code, r.stdout, r.stderr)
			}
			b = c.startMom("b", "127.0.0.3", "")
			c.waitUp("b")
			c.waitAdmin(b)
			waitLogged(t, b.proc, "level=error msg=\"state loss: "+store.MarkLogName)
			wantCaptureRefused(t, "the capture after the manifest and marks were deleted", thief.deliver("127.0.0.2", target, cp))
			waitFor(t, "b to admit a again", 30*time.Second, func() bool {
				pr, _ := c.ping(a, target)
				return pr.Admitted
			})
		})
	}
}

// TestStateLossServerManifestWithJournal (F2): the server's manifest.json
// deleted together with its mark files and its state journal (deleted, or
// emptied), the delete of node d being in the journal's lost records and
// its rotation still queued: the server does not take the directory for
// one of an older version and start from state.json, which still holds d
// with its token: it refuses, naming the journal, and changes nothing.
func TestStateLossServerManifestWithJournal(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	c.addMom("a", "127.0.0.2")
	c.mustQmgr("set server key_distribution=manual") // the delete's rotation stays queued
	c.createNode("d", "127.0.0.5")
	c.mustQmgr("delete node d")
	c.server.stop()
	whole := serverFiles(t, c.srvDir)
	journal := filepath.Join(c.srvDir, "state.journal")
	for _, tc := range []struct {
		name   string
		damage func()
	}{
		{"journal_deleted", func() { removeFile(t, journal) }},
		{"journal_emptied", func() { truncateFile(t, journal, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restoreFiles(t, c.srvDir, whole)
			for _, f := range []string{store.ManifestName, store.MarkLogName, store.MarkSnapName, "deny.json", "rotation.json"} {
				removeFile(t, filepath.Join(c.srvDir, f))
			}
			tc.damage()
			before := fileSums(t, c.srvDir, "lock")
			if r := run(t, "", "momgate-server", "state", "check", "--state-dir", c.srvDir); r.code != 1 || !strings.Contains(r.stdout, "state.journal") {
				t.Fatalf("state check: exit %d, want 1 naming state.journal: %q %q", r.code, r.stdout, r.stderr)
			}
			p := start(t, "server", "momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr)
			wantRefused(t, p, "state.journal", "docs/DEPLOYMENT.md section 7")
			requireSameFiles(t, "a refused start", c.srvDir, before, "lock")
		})
	}
	c.restoreAndRequireDeleted(t, whole, "d")
}

// TestRecoveryFloorSenderAhead (F3): a's clock runs 30 s ahead of b's. b
// admits a PING of a (captured), then loses its marks while the server is
// down, so that no attested floor can be had. The capture, stamped above
// b's wall clock at the recovery, is refused; so is every sender b cannot
// vouch for while the server is away; once the server is back a is
// admitted on its attested floor.
func TestRecoveryFloorSenderAhead(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	b := c.addMom("b", "127.0.0.3")
	a := c.addMomWith("a", "127.0.0.2", "--test-clock-offset", "30s")
	target := b.imAddr(c.imPort)
	waitFor(t, "b to admit a, 30 s ahead", 30*time.Second, func() bool {
		pr, _ := c.ping(a, target)
		return pr.Admitted
	})
	thief := stealKeys(t, a)
	cp := thief.sealAged("127.0.0.2", "127.0.0.3", -30*time.Second)
	if err := thief.deliver("127.0.0.2", target, cp); err != nil {
		t.Fatalf("the capture, before the damage: %v", err)
	}
	c.server.stop()
	b.stop()
	removeFile(t, filepath.Join(b.dir, store.MarkLogName))
	removeFile(t, filepath.Join(b.dir, store.MarkSnapName))
	b = c.startMom("b", "127.0.0.3", "")
	c.waitAdmin(b)
	waitLogged(t, b.proc, "level=error msg=\"state loss: ")
	wantRefusedAny(t, "the capture of a sender ahead, no attested floor", thief.deliver("127.0.0.2", target, cp))
	fresh := thief.sealAged("127.0.0.2", "127.0.0.3", -30*time.Second)
	wantRefusedAny(t, "a fresh PING of a sender ahead, no attested floor", thief.deliver("127.0.0.2", target, fresh))
	c.startServer()
	c.waitUp("a")
	c.waitUp("b")
	waitFor(t, "b to admit a on the server's attested floor", 30*time.Second, func() bool {
		pr, _ := c.ping(a, target)
		return pr.Admitted
	})
	wantRefusedAny(t, "the capture once the server is back", thief.deliver("127.0.0.2", target, cp))
}

// TestCreateNodeRefusesServerAddr (F4): Mom= naming the address the
// server listens on is refused, for create node and set node, and changes
// nothing.
func TestCreateNodeRefusesServerAddr(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	c.addMom("a", "127.0.0.2")
	srvIP := strings.Split(c.srvAddr, ":")[0]
	for _, d := range []string{"create node x Mom=" + srvIP, "set node a Mom=" + srvIP, fmt.Sprintf("create node x Mom=%s,Port=%d", srvIP, c.imPort)} {
		if r := c.qmgr(d); r.code == 0 || !strings.Contains(r.stderr, "the server's own address") {
			t.Errorf("%s: exit %d %q", d, r.code, r.stderr)
		}
	}
	c.requireOnlyNode(t, "a", "127.0.0.2")
}

// TestConcurrentSwapsAfterRestart (issue 16, "the sister restarts and the
// jobs reconnect together"): b is killed or stopped and started again,
// and each time four swaps of a reach it at once, the daemons' own and
// captures of a's: all are admitted, and every replay of them is refused.
func TestConcurrentSwapsAfterRestart(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	target := b.imAddr(c.imPort)
	thief := stealKeys(t, a)
	const restarts, width = 4, 4
	for i := 0; i < restarts; i++ {
		if i%2 == 0 {
			b.kill()
		} else {
			b.stop()
		}
		b = c.startMom("b", "127.0.0.3", "")
		c.waitAdmin(b)
		results := make([]string, width)
		var wg sync.WaitGroup
		for j := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[j] = pingOnce(a.dir, target)
			}()
		}
		caps := make([]capture, width)
		for j := range caps {
			caps[j] = thief.seal("127.0.0.2", "127.0.0.3")
		}
		errs := deliverAll(thief, target, caps)
		wg.Wait()
		for j, r := range results {
			if r != "" {
				t.Fatalf("restart %d: momgate-mom ping %d refused: %s", i, j, r)
			}
		}
		for j, err := range errs {
			if err != nil {
				t.Fatalf("restart %d: concurrent PING %d refused: %v", i, j, err)
			}
		}
		for j, err := range deliverAll(thief, target, caps) {
			wantReject(t, fmt.Sprintf("restart %d: replay %d", i, j), err, proto.RejectReplay)
		}
		if strings.Contains(b.out.String(), "state loss") {
			t.Fatalf("restart %d: b lost state:\n%s", i, b.out.String())
		}
	}
}

// TestLockFileDeletedUnderLiveDaemon: an administrator removes the lock
// file of a live server and a live MOM (taking it for a stale one), then
// starts a second daemon on each directory: refused all the same, naming
// the directory in use, and no byte of the directory changes (the live
// daemons are frozen meanwhile); the lock file is not created again by
// the refused one.
func TestLockFileDeletedUnderLiveDaemon(t *testing.T) {
	c := newCluster(t, "127.0.0.3")
	b := c.addMom("b", "127.0.0.3")
	second := map[string][]string{
		"server": {"momgate-server", "run", "--state-dir", c.srvDir, "--listen", "127.0.0.1:0"},
		"b":      {"momgate-mom", "run", "--state-dir", b.dir, "--server", c.srvAddr, "--listen", "127.0.0.3:0"},
	}
	live := map[string]*proc{"server": c.server, "b": b.proc}
	dirs := map[string]string{"server": c.srvDir, "b": b.dir}
	for _, name := range []string{"server", "b"} {
		t.Run(name, func(t *testing.T) {
			pid := live[name].cmd.Process.Pid
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			waitFor(t, name+" stopped", 10*time.Second, func() bool { return procState(pid) == 'T' })
			removeFile(t, filepath.Join(dirs[name], "lock"))
			before := fileSums(t, dirs[name])
			p := start(t, "second "+name, second[name]...)
			code := p.waitExit(t, 30*time.Second)
			requireSameFiles(t, "a refused second "+name, dirs[name], before)
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if code != 1 || !strings.Contains(p.out.String(), "in use by another process") {
				t.Fatalf("second %s with the lock file removed: exit %d:\n%s", name, code, p.out.String())
			}
		})
	}
	c.waitUp("b")
}

// TestDeleteCrashKeepsDeny: the server killed right after a delete node's
// registry commit (hook delete-saved), its rotation held still by manual
// distribution. After the restart the deleted node is refused by its
// sisters as revoked, never admitted under the key it still holds: the
// deny entry was on disk before the delete.
func TestDeleteCrashKeepsDeny(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.4")
	a := c.addMom("a", "127.0.0.2")
	v := c.addMom("v", "127.0.0.4")
	c.mustQmgr("set server key_distribution=manual")
	thief := stealKeys(t, v)
	v.stop()
	asVictim := func() error {
		return thief.deliver("127.0.0.4", a.imAddr(c.imPort), thief.seal("127.0.0.4", "127.0.0.2"))
	}
	if err := asVictim(); err != nil {
		t.Fatalf("v before its delete: %v", err)
	}
	c.server.stop()
	c.server = startEnv(t, "server", []string{"MOMGATE_TEST_CRASH_AT=delete-saved"},
		"momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr, "--log-level", "debug")
	waitFor(t, "server admin socket", 20*time.Second, func() bool {
		return run(t, "", "momgate-qmgr", "--state-dir", c.srvDir, "-c", "list node").code == 0
	})
	c.waitUp("a")
	_ = c.qmgr("delete node v") // the server dies answering it
	if code := c.server.waitExit(t, 30*time.Second); code == 0 {
		t.Fatalf("the server survived its crash point:\n%s", c.server.out.String())
	}
	c.startServer()
	c.waitUp("a")
	if _, ok := c.node("v"); ok {
		t.Fatal("the delete did not commit before the crash point")
	}
	c.waitAdmin(a)
	waitRejectedWith(t, "a to refuse the deleted v", asVictim, proto.RejectRevoked)
	wantReject(t, "v once more", asVictim(), proto.RejectRevoked)
}

// TestDeleteCrashBeforeRegistryShown: the server killed between a delete
// node's deny commit and its registry commit (hook delete-denied). After
// the restart the node is still registered but denied: the start warns
// naming it, list node shows it as deleting with the command that
// finishes the delete, its sisters refuse it as revoked; running delete
// node again completes it.
func TestDeleteCrashBeforeRegistryShown(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.4")
	a := c.addMom("a", "127.0.0.2")
	v := c.addMom("v", "127.0.0.4")
	c.mustQmgr("set server key_distribution=manual")
	thief := stealKeys(t, v)
	v.stop()
	asVictim := func() error {
		return thief.deliver("127.0.0.4", a.imAddr(c.imPort), thief.seal("127.0.0.4", "127.0.0.2"))
	}
	c.server.stop()
	c.server = startEnv(t, "server", []string{"MOMGATE_TEST_CRASH_AT=delete-denied"},
		"momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr, "--log-level", "debug")
	waitFor(t, "server admin socket", 20*time.Second, func() bool {
		return run(t, "", "momgate-qmgr", "--state-dir", c.srvDir, "-c", "list node").code == 0
	})
	c.waitUp("a")
	if r := c.qmgr("delete node v"); r.code == 0 {
		t.Fatalf("delete node v succeeded through its crash point: %s", r.stdout)
	}
	if code := c.server.waitExit(t, 30*time.Second); code == 0 {
		t.Fatalf("the server survived its crash point:\n%s", c.server.out.String())
	}
	c.startServer()
	c.waitUp("a")
	warn := `node denied but still registered: a delete node did not complete; run momgate-qmgr -c \"delete node v\" to finish it`
	waitFor(t, "the start warning", 20*time.Second, func() bool { return strings.Contains(c.server.out.String(), warn) })
	n, ok := c.node("v")
	if !ok || n.State != "deleting" {
		t.Fatalf("v after the crash: %+v (registered %v), want state deleting", n, ok)
	}
	r := c.qmgr("list node v state,denied,comment")
	if r.code != 0 || !strings.Contains(r.stdout, "    state = deleting\n    denied = True\n    comment = denied, delete incomplete (delete node at ") ||
		!strings.Contains(r.stdout, `): run "delete node v" again`) {
		t.Fatalf("list node v: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("list node v:\n%s", r.stdout)
	r = run(t, "", "momgate-qmgr", "nodes", "--state-dir", c.srvDir)
	if r.code != 0 || !regexp.MustCompile(`(?m)^v +127\.0\.0\.4:\d+ +- +deleting `).MatchString(r.stdout) {
		t.Fatalf("momgate-qmgr nodes: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("nodes:\n%s", r.stdout)
	r = c.qmgr("--json", "-c", "list node v")
	if r.code != 0 || !strings.Contains(r.stdout, `"state": "deleting"`) || !strings.Contains(r.stdout, `"denied": true`) {
		t.Fatalf("list node v --json: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("list node v --json:\n%s", r.stdout)
	t.Logf("print node v:\n%s", c.qmgr("print node v").stdout)
	c.waitAdmin(a)
	waitRejectedWith(t, "a to refuse the half-deleted v", asVictim, proto.RejectRevoked)

	if r := c.qmgr("delete node v"); r.code != 0 {
		t.Fatalf("delete node v again: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, ok := c.node("v"); ok {
		t.Fatal("v still registered after the second delete")
	}
	if r := c.qmgr("list node v"); r.code == 0 || !strings.Contains(r.stdout+r.stderr, "unknown node v") {
		t.Fatalf("list node v after the second delete: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	wantReject(t, "v once more", asVictim(), proto.RejectRevoked)
}

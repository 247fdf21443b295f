package integration

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/proto"
)

// waitRejectedWith waits until send's PING is refused with code (a change
// that reaches the receiver asynchronously: a Deny, a retired key).
func waitRejectedWith(t *testing.T, what string, send func() error, code proto.RejectCode) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%s (Reject %s)", what, code), 30*time.Second, func() bool {
		var rj *handshake.RejectError
		return errors.As(send(), &rj) && rj.Code == code
	})
}

// distributeByHand is manual key distribution of the key being
// distributed now: export it, import it on every MOM (running), wait until
// the server has seen each acknowledge it, activate it, and wait for the
// rotation to complete. It returns the key.
func (c *cluster) distributeByHand(moms ...*momProc) string {
	c.t.Helper()
	var kl keyList
	waitFor(c.t, "a manual rotation to distribute a key, nothing queued", 30*time.Second, func() bool {
		kl, _ = c.keyList()
		return kl.Rotation.Phase == "distributing" && kl.Rotation.Queued == 0
	})
	key := kl.Rotation.NewKey
	file := filepath.Join(c.t.TempDir(), "k-"+key)
	c.mustQmgr(fmt.Sprintf("export key %s file=%s", key, file))
	for _, m := range moms {
		if r := run(c.t, "", "momgate-mom", "key", "import", "--state-dir", m.dir, file); r.code != 0 {
			c.t.Fatalf("import on %s: %s", m.name, r.stderr)
		}
	}
	waitFor(c.t, "every MOM to acknowledge the imported key", 30*time.Second, func() bool {
		kl, _ := c.keyList()
		for _, m := range moms {
			if st, _ := kl.nodeState(m.name); st != "acked" {
				return false
			}
		}
		return true
	})
	c.mustQmgr("activate key " + key)
	c.waitRotated(kl.Rotation.Seq)
	return key
}

// TestStateLossServerDeny: the server's deny list is lost (kill -9, then
// deny.json or deny.journal, which holds the delete's entries, deleted)
// while the key rotation of a delete node is still in progress.
// The restarted server starts a rotation at once and sends no DenySet,
// which would make every MOM lift the lost entry and admit the deleted
// node under the key it still holds: the MOMs keep their lists and refuse
// it as revoked. Once the rotation has completed the (empty) DenySet goes
// out, and the node is refused by key everywhere. Manual distribution
// holds the rotation still for as long as the test looks.
func TestStateLossServerDeny(t *testing.T) {
	for _, lost := range []string{"deny.json", "deny.journal"} {
		t.Run(lost, func(t *testing.T) { testStateLossServerDeny(t, lost) })
	}
}

func testStateLossServerDeny(t *testing.T, lost string) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	v := c.addMom("v", "127.0.0.4")
	c.mustQmgr("set server key_distribution=manual")
	thief := stealKeys(t, v)
	v.stop()
	asVictim := func(to *momProc) error {
		return thief.deliver("127.0.0.4", to.imAddr(c.imPort), thief.seal("127.0.0.4", to.ip))
	}
	c.mustQmgr("delete node v")
	for _, m := range []*momProc{a, b} {
		waitRejectedWith(t, m.name+" to deny v", func() error { return asVictim(m) }, proto.RejectRevoked)
	}
	c.server.kill()
	removeFile(t, filepath.Join(c.srvDir, lost))
	c.startServer()
	waitLogged(t, c.server, "level=error msg=\"state loss: "+lost)
	c.waitUp("a")
	c.waitUp("b")
	c.mutuallyAdmitted(a, b) // both sessions are up: a DenySet would have come first
	for _, m := range []*momProc{a, b} {
		wantReject(t, "the deleted node at "+m.name+" while the rotation runs", asVictim(m), proto.RejectRevoked)
	}
	if strings.Contains(c.server.out.String(), "deny list recovered") {
		t.Fatal("the server sent its deny list before the recovery rotation completed")
	}
	c.distributeByHand(a, b)
	waitLogged(t, c.server, "deny list recovered")
	for _, m := range []*momProc{a, b} {
		waitRejectedWith(t, m.name+" to refuse the deleted node by key", func() error { return asVictim(m) }, proto.RejectUnknownKey)
	}
	c.mutuallyAdmitted(a, b)
}

// TestStateLossMomDeny: a MOM loses its deny.json while the server is
// down, with the deleted node's key still accepted (the rotation is in
// its grace period). The MOM admits no peer until the server's DenySet
// has come; then its sisters again, and never the deleted node.
func TestStateLossMomDeny(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	c.mustQmgr("set server key_grace=1h")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	v := c.addMom("v", "127.0.0.4")
	thief := stealKeys(t, v)
	v.stop()
	asVictim := func() error {
		return thief.deliver("127.0.0.4", a.imAddr(c.imPort), thief.seal("127.0.0.4", "127.0.0.2"))
	}
	c.mustQmgr("delete node v")
	waitFor(t, "the rotation to reach its grace period", 30*time.Second, func() bool {
		kl, _ := c.keyList()
		return kl.Rotation.Phase == "grace"
	})
	waitRejectedWith(t, "a to deny v", asVictim, proto.RejectRevoked)
	c.server.stop()
	a.stop()
	removeFile(t, filepath.Join(a.dir, "deny.json"))
	a = c.startMom("a", "127.0.0.2", "")
	c.waitAdmin(a)
	waitLogged(t, a.proc, "level=error msg=\"state loss: deny.json")
	wantReject(t, "the deleted node while a's list is lost", asVictim(), proto.RejectRevoked)
	if pr, _ := c.ping(b, a.imAddr(c.imPort)); pr.Admitted {
		t.Fatal("a admitted b before the server's DenySet came")
	}
	c.startServer()
	c.waitUp("a")
	waitLogged(t, a.proc, "deny list recovered")
	if pr, r := c.ping(b, a.imAddr(c.imPort)); !pr.Admitted {
		t.Fatalf("b -> a after the DenySet: %+v %s", pr, r.stderr)
	}
	wantReject(t, "the deleted node after the DenySet", asVictim(), proto.RejectRevoked)
	if fileSize(t, filepath.Join(a.dir, "deny.json")) == 0 {
		t.Fatal("a did not save the server's deny list")
	}
}

// TestStateLossOtherFiles: the verdict of docs/SECURITY.md section 7.2 for
// the other files. A MOM's identity.json or mom.json lost: it refuses,
// changing nothing. Its keyring.json, ceiling, legacy.json, jobs.json,
// manifest.json or sessions.json lost: it recovers, loudly, and a PING it
// admitted before is still a replay. The server's rotation.json lost: a rotation starts;
// its ceiling damaged: it restarts from the clock.
func TestStateLossOtherFiles(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	thief := stealKeys(t, b)
	target := a.imAddr(c.imPort)
	r := run(t, "", "momgate-mom", "job", "start", "--state-dir", a.dir, "--name", "j1", "--sisters", "b")
	if r.code != 0 {
		t.Fatalf("job start: %s", r.stderr)
	}
	zero := func(path string) func() {
		return func() {
			n := fileSize(t, path)
			truncateFile(t, path, 0)
			truncateFile(t, path, n)
		}
	}
	momCases := []struct {
		name, file string
		damage     func()
		refuse     bool
	}{
		{"mom_identity_deleted", "identity.json", func() { removeFile(t, filepath.Join(a.dir, "identity.json")) }, true},
		{"mom_enrollment_deleted", "mom.json", func() { removeFile(t, filepath.Join(a.dir, "mom.json")) }, true},
		{"mom_keyring_deleted", "keyring.json", func() { removeFile(t, filepath.Join(a.dir, "keyring.json")) }, false},
		{"mom_ceiling_zeroed", "ceiling", zero(filepath.Join(a.dir, "ceiling")), false},
		{"mom_legacy_deleted", "legacy.json", func() { removeFile(t, filepath.Join(a.dir, "legacy.json")) }, false},
		{"mom_jobs_zeroed", "jobs.json", zero(filepath.Join(a.dir, "jobs.json")), false},
		{"mom_manifest_deleted", "manifest.json", func() { removeFile(t, filepath.Join(a.dir, "manifest.json")) }, false},
		{"mom_sessions_deleted", "sessions.json", func() { removeFile(t, filepath.Join(a.dir, "sessions.json")) }, false},
	}
	for _, tc := range momCases {
		t.Run(tc.name, func(t *testing.T) {
			cp := thief.seal("127.0.0.3", "127.0.0.2")
			if err := thief.deliver("127.0.0.3", target, cp); err != nil {
				t.Fatalf("capture: %v", err)
			}
			a.stop()
			whole := serverFiles(t, a.dir)
			tc.damage()
			if tc.refuse {
				before := fileSums(t, a.dir, "lock")
				p := c.startMom("a", "127.0.0.2", "")
				wantRefused(t, p.proc, tc.file, "docs/DEPLOYMENT.md section 5")
				requireSameFiles(t, "a refused start", a.dir, before, "lock")
				restoreFiles(t, a.dir, whole)
			}
			a = c.startMom("a", "127.0.0.2", "")
			c.waitUp("a")
			c.waitAdmin(a)
			if !tc.refuse {
				waitLogged(t, a.proc, "level=error msg=\"state loss: "+tc.file)
			}
			wantReject(t, "the capture after "+tc.name, thief.deliver("127.0.0.3", target, cp), proto.RejectReplay)
			waitFor(t, "a to admit b and b to admit a", 30*time.Second, func() bool {
				pa, _ := c.ping(a, b.imAddr(c.imPort))
				pb, _ := c.ping(b, target)
				return pa.Admitted && pb.Admitted
			})
			if tc.file == "sessions.json" {
				waitLogged(t, a.proc, "sealed-session state recovered")
				if fileSize(t, filepath.Join(a.dir, "sessions.json")) == 0 {
					t.Fatal("a did not save its sealed-session state once released")
				}
			}
			if tc.file == "jobs.json" {
				if r := run(t, "", "momgate-mom", "job", "list", "--json", "--state-dir", a.dir); r.code != 0 || strings.Contains(r.stdout, "j1") {
					t.Fatalf("job list after jobs.json was lost: exit %d %q", r.code, r.stdout)
				}
			}
		})
	}
	t.Run("server_rotation_deleted", func(t *testing.T) {
		kl, _ := c.keyList()
		c.server.stop()
		removeFile(t, filepath.Join(c.srvDir, "rotation.json"))
		c.startServer()
		waitLogged(t, c.server, "level=error msg=\"state loss: rotation.json")
		after := c.waitRotated(kl.Rotation.Seq + 1)
		if after.active() == kl.active() {
			t.Fatalf("no new key after the rotation record was lost: %+v", after.Rotation)
		}
		c.waitConverged(a, b)
		c.mutuallyAdmitted(a, b)
	})
	t.Run("server_ceiling_zeroed", func(t *testing.T) {
		c.server.stop()
		zero(filepath.Join(c.srvDir, "ceiling"))()
		c.startServer()
		waitLogged(t, c.server, "level=error msg=\"state loss: ceiling")
		c.waitUp("a")
		c.waitUp("b")
		c.mutuallyAdmitted(a, b)
	})
}

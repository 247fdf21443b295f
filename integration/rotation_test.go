package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// Key rotation end to end: delete node revokes at once and by key, a MOM
// offline during a rotation catches up, kill -9 of the server or a MOM at
// each rotation step converges, manual distribution, and set node Mom=.

func crashEnv(step string) []string { return []string{"MOMGATE_TEST_CRASH_AT=" + step} }

// startServerEnv starts the server with env and, unless it is meant to
// crash before, waits for its admin socket.
func (c *cluster) startServerEnv(env []string) {
	c.t.Helper()
	c.server = startEnv(c.t, "server", env, "momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr, "--log-level", "debug")
	waitFor(c.t, "server admin socket", 20*time.Second, func() bool {
		return run(c.t, "", "momgate-qmgr", "--state-dir", c.srvDir, "-c", "list node").code == 0
	})
}

// startMomEnv is startMom with extra environment variables.
func (c *cluster) startMomEnv(name, ip, token string, env []string) *momProc {
	c.t.Helper()
	dir := filepath.Join(c.dir, name)
	args := []string{"momgate-mom", "run", "--state-dir", dir, "--server", c.srvAddr,
		"--listen", fmt.Sprintf("%s:%d", ip, c.imPort), "--heartbeat", "200ms", "--log-level", "debug"}
	if token != "" {
		args = append(args, "--enroll", token)
	}
	m := &momProc{name: name, ip: ip, dir: dir, proc: startEnv(c.t, name, env, args...)}
	c.moms[name] = m
	return m
}

type keyList struct {
	Keys []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"keys"`
	Nodes []struct {
		Name     string `json:"name"`
		KeyID    string `json:"key_id"`
		KeyState string `json:"key_state"`
		AckedKey string `json:"acked_key"`
		Up       bool   `json:"up"`
	} `json:"nodes"`
	Rotation struct {
		Phase        string `json:"phase"`
		Seq          uint64 `json:"seq"`
		Reason       string `json:"reason"`
		Distribution string `json:"distribution"`
		OldKey       string `json:"old_key"`
		NewKey       string `json:"new_key"`
		Queued       int    `json:"queued"`
		Behind       int    `json:"behind"`
	} `json:"rotation"`
}

func (k keyList) active() string {
	for _, key := range k.Keys {
		if key.State == "active" {
			return key.ID
		}
	}
	return ""
}

func (k keyList) nodeState(name string) (state string, up bool) {
	for _, n := range k.Nodes {
		if n.Name == name {
			return n.KeyState, n.Up
		}
	}
	return "", false
}

func (k keyList) ring() string {
	var parts []string
	for _, key := range k.Keys {
		parts = append(parts, key.ID+":"+key.State)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func (c *cluster) keyList() (keyList, bool) {
	c.t.Helper()
	r := c.qmgr("--json", "-c", "list key")
	var kl keyList
	if r.code != 0 {
		return kl, false
	}
	if err := json.Unmarshal([]byte(r.stdout), &kl); err != nil {
		c.t.Fatalf("list key --json: %v in %q", err, r.stdout)
	}
	return kl, true
}

// waitRotated waits until rotation seq (or a later one) has completed and
// nothing is queued.
func (c *cluster) waitRotated(seq uint64) keyList {
	c.t.Helper()
	var kl keyList
	waitFor(c.t, fmt.Sprintf("key rotation %d to complete", seq), 90*time.Second, func() bool {
		var ok bool
		kl, ok = c.keyList()
		return ok && kl.Rotation.Seq >= seq && kl.Rotation.Phase == "idle" && kl.Rotation.Queued == 0
	})
	return kl
}

type momKeyStatus struct {
	Connected   bool   `json:"connected"`
	ServerError string `json:"server_error"`
	Keys        []struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"keys"`
	Audit struct {
		Rejected map[string]uint64 `json:"rejected"`
	} `json:"audit"`
}

func (c *cluster) momStatus(m *momProc) (momKeyStatus, bool) {
	c.t.Helper()
	r := run(c.t, "", "momgate-mom", "status", "--json", "--state-dir", m.dir)
	var st momKeyStatus
	if r.code != 0 {
		return st, false
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		c.t.Fatalf("status --json: %v in %q", err, r.stdout)
	}
	return st, true
}

func (st momKeyStatus) ring() string {
	var parts []string
	for _, key := range st.Keys {
		parts = append(parts, key.ID+":"+key.State)
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// waitConverged waits until the server holds exactly one key, the active
// one, and every MOM holds exactly that key and is connected; it returns
// the key.
func (c *cluster) waitConverged(moms ...*momProc) string {
	c.t.Helper()
	var kl keyList
	waitFor(c.t, "every MOM to hold exactly the server's single key", 60*time.Second, func() bool {
		var ok bool
		if kl, ok = c.keyList(); !ok || len(kl.Keys) != 1 || kl.active() == "" {
			return false
		}
		for _, m := range moms {
			st, ok := c.momStatus(m)
			if !ok || !st.Connected || st.ring() != kl.ring() {
				return false
			}
			if state, up := kl.nodeState(m.name); state != "current" || !up {
				return false
			}
		}
		return true
	})
	return kl.active()
}

func (c *cluster) mustQmgr(directive string) result {
	c.t.Helper()
	r := c.qmgr(directive)
	if r.code != 0 {
		c.t.Fatalf("%s: exit %d: %s", directive, r.code, r.stderr)
	}
	return r
}

func (c *cluster) mutuallyAdmitted(moms ...*momProc) {
	c.t.Helper()
	for _, from := range moms {
		for _, to := range moms {
			if from != to {
				if pr, r := c.ping(from, to.imAddr(c.imPort)); !pr.Admitted {
					c.t.Fatalf("%s -> %s not admitted: %+v %s", from.name, to.name, pr, r.stderr)
				}
			}
		}
	}
}

// refusedBy pings to from the removed MOM and checks that it is refused
// and that the receiver counted the refusal under reason.
func (c *cluster) refusedBy(from, to *momProc, reason string) {
	c.t.Helper()
	c.waitAdmin(to)
	before, _ := c.momStatus(to)
	pr, _ := c.ping(from, to.imAddr(c.imPort))
	if pr.Admitted {
		c.t.Fatalf("%s admitted the removed MOM %s", to.name, from.name)
	}
	waitFor(c.t, fmt.Sprintf("%s to count a %s rejection", to.name, reason), 20*time.Second, func() bool {
		st, ok := c.momStatus(to)
		return ok && st.Audit.Rejected[reason] > before.Audit.Rejected[reason]
	})
}

// TestDeleteNodeRevokesAtOnceThenByKey: with manual distribution the old
// key stays active until the administrator activates the new one, which
// makes the window between "denied" and "rotated" deterministic. The
// removed MOM, started from its own state directory, is refused by the
// server and, as revoked, by every remaining MOM; after the rotation it is
// refused by key.
func TestDeleteNodeRevokesAtOnceThenByKey(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	x := c.addMom("x", "127.0.0.4")
	kl, _ := c.keyList()
	initial := kl.active()
	c.mustQmgr("set server key_distribution=manual")
	x.stop()

	c.mustQmgr("delete node x")
	kl, _ = c.keyList()
	if kl.Rotation.Phase != "distributing" || kl.Rotation.Distribution != "manual" || kl.Rotation.Reason != "delete node x" ||
		kl.Rotation.OldKey != initial || kl.Rotation.NewKey == initial || kl.active() != initial {
		t.Fatalf("after delete node: rotation %+v, keys %s", kl.Rotation, kl.ring())
	}
	newKey := kl.Rotation.NewKey

	// The removed MOM comes back from its own state dir, still holding the
	// active key: denied by the server (it stops, exit 4) and by every MOM
	// (restarted where it cannot reach the server, it tries them).
	x = c.startMom("x", "127.0.0.4", "")
	if code := x.waitExit(t, 30*time.Second); code != 4 || !strings.Contains(x.out.String(), "deleted from the cluster") {
		t.Fatalf("removed MOM: exit %d, want 4:\n%s", code, x.out.String())
	}
	x = c.startMomCutOff("x", "127.0.0.4")
	c.refusedBy(x, a, "revoked")
	c.refusedBy(x, b, "revoked")
	c.mutuallyAdmitted(a, b)

	// Manual distribution of the new key to the remaining nodes.
	file := filepath.Join(t.TempDir(), "cluster.key")
	c.mustQmgr(fmt.Sprintf("export key %s file=%s", newKey, file))
	for _, m := range []*momProc{a, b} {
		if r := run(t, "", "momgate-mom", "key", "import", "--state-dir", m.dir, file); r.code != 0 {
			t.Fatalf("key import on %s: %s", m.name, r.stderr)
		}
	}
	waitFor(t, "a and b to acknowledge the imported key", 20*time.Second, func() bool {
		kl, _ := c.keyList()
		sa, _ := kl.nodeState("a")
		sb, _ := kl.nodeState("b")
		return sa == "acked" && sb == "acked"
	})
	if r := c.mustQmgr("activate key " + newKey); !strings.Contains(r.stdout, "is now active") {
		t.Fatalf("activate key: %q", r.stdout)
	}
	c.waitRotated(kl.Rotation.Seq)
	if got := c.waitConverged(a, b); got != newKey {
		t.Fatalf("active key %s, want %s", got, newKey)
	}

	// Now refused by key: the removed MOM never saw the new key.
	c.refusedBy(x, a, "key_mismatch")
	c.refusedBy(x, b, "key_mismatch")
	ring, err := keystore.LoadKeyring(filepath.Join(x.dir, "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	if ring.Lookup(mustKeyID(t, newKey)) != nil || len(ring.Keys()) != 1 || ring.Active().ID.String() != initial {
		t.Fatalf("removed MOM's keyring holds %v", ring.Keys())
	}
	c.mutuallyAdmitted(a, b)
}

// forgerAhead is forger with timestamps a minute ahead: a MOM restarted
// a moment ago stamps up to its ceiling reserve ahead of the wall clock,
// and the replay check runs before the revocation check.
func forgerAhead(t *testing.T, m *momProc) *ping.Sealer {
	t.Helper()
	s := forger(t, m, nil)
	st, err := ping.NewStamper(func() time.Time { return time.Now().Add(time.Minute) }, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	s.Stamper = st
	return s
}

func mustKeyID(t *testing.T, s string) keys.KeyID {
	t.Helper()
	id, err := keys.ParseKeyID(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestDeleteNodeAutomaticRotation: automatic distribution rotates as soon
// as the remaining MOMs acknowledge; the removed MOM is then refused by
// key by every MOM, and by the server, also after a server restart.
func TestDeleteNodeAutomaticRotation(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	x := c.addMom("x", "127.0.0.4")
	kl, _ := c.keyList()
	initial := kl.active()
	x.stop()
	c.mustQmgr("delete node x")
	kl = c.waitRotated(1)
	if kl.Rotation.Reason != "delete node x" || kl.active() == initial {
		t.Fatalf("rotation %+v keys %s", kl.Rotation, kl.ring())
	}
	active := c.waitConverged(a, b)
	c.mutuallyAdmitted(a, b)

	// Once the old key is retired the deny entries guard against nothing
	// and are dropped, at the server and at the MOMs: the key refuses x.
	waitFor(t, "deny entries of x dropped from the server's deny.json and deny.journal", 30*time.Second, func() bool {
		return !serverDeniesAddr(t, c.srvDir, "127.0.0.4")
	})
	for _, f := range []string{filepath.Join(a.dir, "deny.json"), filepath.Join(b.dir, "deny.json")} {
		waitFor(t, "deny entries of x dropped from "+f, 30*time.Second, func() bool {
			data, err := os.ReadFile(f)
			return err == nil && !strings.Contains(string(data), "127.0.0.4")
		})
	}

	// The server remembers x was deleted after its deny entry went: x's
	// MOM is refused as revoked and stops (exit 4); restarted where it
	// cannot reach the server, it tries its sisters.
	x = c.startMom("x", "127.0.0.4", "")
	if code := x.waitExit(t, 30*time.Second); code != 4 {
		t.Fatalf("removed MOM after the deny was pruned: exit %d, want 4:\n%s", code, x.out.String())
	}
	x = c.startMomCutOff("x", "127.0.0.4")
	c.refusedBy(x, a, "key_mismatch")
	c.refusedBy(x, b, "key_mismatch")
	// Raw PING from the removed node's address under its old key.
	if err := rawSwap(t, "127.0.0.4", a.imAddr(c.imPort), forger(t, x, nil), "127.0.0.4"); rejectCode(t, err) != proto.RejectUnknownKey {
		t.Fatalf("old key: %v", err)
	}
	ring, err := keystore.LoadKeyring(filepath.Join(x.dir, "keyring.json"))
	if err != nil || ring.Lookup(mustKeyID(t, active)) != nil {
		t.Fatalf("removed MOM holds the new key (%v)", err)
	}

	// After a server restart the deleted node is still refused as revoked.
	x.stop()
	c.server.kill()
	c.startServer()
	c.waitUp("a")
	c.waitUp("b")
	x = c.startMom("x", "127.0.0.4", "")
	if code := x.waitExit(t, 30*time.Second); code != 4 {
		t.Fatalf("removed MOM after a server restart: exit %d, want 4:\n%s", code, x.out.String())
	}
	c.mutuallyAdmitted(a, b)
}

// TestRotationCatchUpAfterOffline: a MOM stopped during a rotation is
// shown as needing sync, and catches up when it restarts, authenticated
// by its identity key (it no longer holds any key the cluster accepts).
func TestRotationCatchUpAfterOffline(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	b.stop()
	waitFor(t, "b down at the server", 20*time.Second, func() bool {
		n, ok := c.node("b")
		return ok && n.State == "down"
	})
	if r := c.mustQmgr("rotate key"); !strings.Contains(r.stdout, "key rotation 1 started") {
		t.Fatalf("rotate key: %q", r.stdout)
	}
	kl := c.waitRotated(1)
	if st, up := kl.nodeState("b"); st != "needs sync" || up {
		t.Fatalf("offline node: key state %q up %v, want needs sync", st, up)
	}
	if st, _ := kl.nodeState("a"); st != "current" {
		t.Fatalf("a: key state %q", st)
	}
	r := c.qmgr("list key")
	if !strings.Contains(r.stdout, "needs sync") || !strings.Contains(r.stdout, "Rotation 1") {
		t.Fatalf("list key:\n%s", r.stdout)
	}
	// b's keyring holds only the retired key now.
	ring, err := keystore.LoadKeyring(filepath.Join(b.dir, "keyring.json"))
	if err != nil || ring.Lookup(mustKeyID(t, kl.active())) != nil {
		t.Fatalf("b's keyring %v (%v)", ring, err)
	}
	b = c.startMom("b", "127.0.0.3", "")
	c.waitUp("b")
	c.waitConverged(a, b)
	c.mutuallyAdmitted(a, b)
}

// serverSteps are the rotation steps at which the server is killed: every
// record and keyring save, and the sends.
var serverSteps = []string{"distributing", "next-saved", "update", "activating", "activated", "grace", "activate",
	"retiring", "retired", "retire", "idle"}

// TestServerKilledAtEachRotationStep: kill -9 of the server at each step,
// then a restart, completes the rotation with every MOM on one key.
func TestServerKilledAtEachRotationStep(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	for i, step := range serverSteps {
		t0 := time.Now()
		kl, _ := c.keyList()
		before := kl.active()
		c.server.stop()
		c.startServerEnv(crashEnv(step))
		c.waitUp("a")
		c.waitUp("b")
		t1 := time.Now()
		c.qmgr("rotate key") // the server may die while answering
		if code := c.server.waitExit(t, 60*time.Second); code == 0 {
			t.Fatalf("step %s: server exited 0 instead of crashing", step)
		}
		if !strings.Contains(c.server.out.String(), "MOMGATE_TEST_CRASH_AT="+step+": killing myself") {
			t.Fatalf("step %s: the server died, but not at the hook:\n%s", step, c.server.out.String())
		}
		t2 := time.Now()
		c.startServer()
		c.waitRotated(uint64(i + 1))
		t3 := time.Now()
		after := c.waitConverged(a, b)
		if after == before {
			t.Fatalf("step %s: active key still %s after the rotation", step, before)
		}
		t4 := time.Now()
		c.mutuallyAdmitted(a, b)
		t.Logf("step %s: setup %s, crash %s, rotated %s, converged %s, admitted %s", step,
			t1.Sub(t0).Round(time.Millisecond), t2.Sub(t1).Round(time.Millisecond), t3.Sub(t2).Round(time.Millisecond),
			t4.Sub(t3).Round(time.Millisecond), time.Since(t4).Round(time.Millisecond))
	}
}

// momSteps are the rotation steps at which a MOM is killed.
var momSteps = []string{"mom-update-received", "mom-update-saved", "mom-activate-received", "mom-activated",
	"mom-retire-received", "mom-retired"}

// TestMomKilledAtEachRotationStep: kill -9 of a MOM at each step, then a
// restart, converges.
func TestMomKilledAtEachRotationStep(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	for i, step := range momSteps {
		b.stop()
		b = c.startMomEnv("b", "127.0.0.3", "", crashEnv(step))
		c.waitUp("b")
		c.mustQmgr("rotate key")
		if code := b.waitExit(t, 60*time.Second); code == 0 {
			t.Fatalf("step %s: MOM exited 0 instead of crashing", step)
		}
		if !strings.Contains(b.out.String(), "MOMGATE_TEST_CRASH_AT="+step+": killing myself") {
			t.Fatalf("step %s: the MOM died, but not at the hook:\n%s", step, b.out.String())
		}
		b = c.startMom("b", "127.0.0.3", "")
		c.waitUp("b")
		c.waitRotated(uint64(i + 1))
		c.waitConverged(a, b)
		c.mutuallyAdmitted(a, b)
	}
}

// TestManualKeyDistribution: nothing is pushed; the key file is written
// 0400 and never overwritten; import refuses a file others can read; a
// stopped MOM imports offline; activate key completes the rotation.
func TestManualKeyDistribution(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	c.mustQmgr("set server key_distribution=manual")
	r := c.mustQmgr("rotate key")
	if !strings.Contains(r.stdout, "manual distribution") {
		t.Fatalf("rotate key: %q", r.stdout)
	}
	kl, _ := c.keyList()
	newKey, oldKey := kl.Rotation.NewKey, kl.Rotation.OldKey
	if kl.Rotation.Phase != "distributing" || kl.active() != oldKey {
		t.Fatalf("rotation %+v", kl.Rotation)
	}
	// Nothing pushed: a still holds only the old key.
	if st, _ := c.momStatus(a); st.ring() != oldKey+":active" {
		t.Fatalf("manual mode pushed a key: a holds %s", st.ring())
	}

	dir := t.TempDir()
	file := filepath.Join(dir, "k")
	c.mustQmgr(fmt.Sprintf("export key %s file=%s", newKey, file))
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o400 {
		t.Fatalf("exported key file: %v %v", fi, err)
	}
	if r := c.qmgr(fmt.Sprintf("export key %s file=%s", newKey, file)); r.code == 0 || !strings.Contains(r.stderr, "already exists") {
		t.Fatalf("export over an existing file: exit %d %q", r.code, r.stderr)
	}

	// A copy readable by others is refused, with the path, mode and fix.
	loose := filepath.Join(dir, "loose")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(loose, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	r = run(t, "", "momgate-mom", "key", "import", "--state-dir", a.dir, loose)
	if r.code == 0 || !strings.Contains(r.stderr, loose) || !strings.Contains(r.stderr, "0644") || !strings.Contains(r.stderr, "chmod") {
		t.Fatalf("import of a 0644 key file: exit %d %q", r.code, r.stderr)
	}
	if st, _ := c.momStatus(a); st.ring() != oldKey+":active" {
		t.Fatalf("refused import changed the keyring: %s", st.ring())
	}

	// a imports while running (and tells the server); b while stopped.
	r = run(t, "", "momgate-mom", "key", "import", "--state-dir", a.dir, file)
	if r.code != 0 || !strings.Contains(r.stdout, "the server was told") {
		t.Fatalf("import on a: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	b.stop()
	r = run(t, "", "momgate-mom", "key", "import", "--state-dir", b.dir, file)
	if r.code != 0 || !strings.Contains(r.stdout, "not running") {
		t.Fatalf("offline import on b: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
	waitFor(t, "a's import to be acknowledged", 20*time.Second, func() bool {
		kl, _ := c.keyList()
		st, _ := kl.nodeState("a")
		return st == "acked"
	})
	b = c.startMom("b", "127.0.0.3", "")
	c.waitUp("b")
	waitFor(t, "b to be seen holding the imported key", 20*time.Second, func() bool {
		kl, _ := c.keyList()
		st, _ := kl.nodeState("b")
		return st == "acked"
	})

	if r := c.mustQmgr("activate key " + newKey); !strings.Contains(r.stdout, newKey+" is now active") {
		t.Fatalf("activate key: %q", r.stdout)
	}
	c.waitRotated(kl.Rotation.Seq)
	if got := c.waitConverged(a, b); got != newKey {
		t.Fatalf("active key %s, want %s", got, newKey)
	}
	c.mutuallyAdmitted(a, b)
	// Activating a key that is not being distributed is refused.
	if r := c.qmgr("activate key " + oldKey); r.code == 0 {
		t.Fatalf("activate of a retired key succeeded: %q", r.stdout)
	}
}

// TestManualModeRefusesNodeWithoutActiveKey: in manual mode a MOM that
// missed the manual install is told what to do, not given the key.
func TestManualModeRefusesNodeWithoutActiveKey(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	c.mustQmgr("set server key_distribution=manual")
	b.stop()
	c.mustQmgr("rotate key")
	kl, _ := c.keyList()
	file := filepath.Join(t.TempDir(), "k")
	c.mustQmgr(fmt.Sprintf("export key %s file=%s", kl.Rotation.NewKey, file))
	if r := run(t, "", "momgate-mom", "key", "import", "--state-dir", a.dir, file); r.code != 0 {
		t.Fatalf("import on a: %s", r.stderr)
	}
	// b, down, does not hold the key: activating it is refused, naming b,
	// until forced (TestActivateKeyRefusesPending).
	if r := c.qmgr("activate key " + kl.Rotation.NewKey); r.code == 0 || !strings.Contains(r.stderr, "b (needs sync)") {
		t.Fatalf("activate key with b lacking it: exit %d %q", r.code, r.stderr)
	}
	if r := c.mustQmgr("activate key " + kl.Rotation.NewKey + " force"); !strings.Contains(r.stdout, "cut off") || !strings.Contains(r.stdout, "b (needs sync)") {
		t.Fatalf("activate key force: %q", r.stdout)
	}
	c.waitRotated(kl.Rotation.Seq)
	b = c.startMom("b", "127.0.0.3", "")
	waitFor(t, "the server to refuse b with instructions", 30*time.Second, func() bool {
		st, ok := c.momStatus(b)
		return ok && !st.Connected && strings.Contains(st.ServerError, "momgate-mom key import")
	})
	if st, _ := c.momStatus(b); strings.Contains(st.ring(), kl.Rotation.NewKey) {
		t.Fatalf("manual mode gave b the key: %s", st.ring())
	}
	// Importing the key (offline) lets it back in.
	b.stop()
	if r := run(t, "", "momgate-mom", "key", "import", "--state-dir", b.dir, file); r.code != 0 {
		t.Fatalf("import on b: %s", r.stderr)
	}
	b = c.startMom("b", "127.0.0.3", "")
	c.waitUp("b")
	c.waitConverged(a, b)
	c.mutuallyAdmitted(a, b)
}

// TestSetNodeMomDeniesOldAddress: after set node Mom=NEWADDR, PINGs naming
// the old address are refused, the node works from its new address, and
// the key has been rotated.
func TestSetNodeMomDeniesOldAddress(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.5")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	kl, _ := c.keyList()
	initial := kl.active()
	b.stop()
	c.mustQmgr("set node b Mom=127.0.0.5")
	n, _ := c.node("b")
	if n.Mom != "127.0.0.5" {
		t.Fatalf("node b at %s after set node", n.Mom)
	}
	kl = c.waitRotated(1)
	if !strings.Contains(kl.Rotation.Reason, "Mom=127.0.0.5") || kl.active() == initial {
		t.Fatalf("rotation %+v", kl.Rotation)
	}
	// The MOM restarts on its new address and catches up.
	b = c.startMom("b", "127.0.0.5", "")
	c.waitUp("b")
	c.waitConverged(a, b)
	c.mutuallyAdmitted(a, b)

	// A PING naming the old address, under the current key, is refused.
	err := rawSwap(t, "127.0.0.3", a.imAddr(c.imPort), forgerAhead(t, b), "127.0.0.3")
	if code := rejectCode(t, err); code != proto.RejectRevoked {
		t.Fatalf("old address: reject code %d, want %d (%v)", code, proto.RejectRevoked, err)
	}
	// From the new address it is admitted.
	if err := rawSwap(t, "127.0.0.5", a.imAddr(c.imPort), forgerAhead(t, b), "127.0.0.5"); err != nil {
		t.Fatalf("new address refused: %v", err)
	}
	// The server refuses the node's control connection from the old address.
	b.stop()
	old := c.startMom("b", "127.0.0.3", "")
	waitFor(t, "the server to refuse the old address", 30*time.Second, func() bool {
		st, ok := c.momStatus(old)
		return ok && !st.Connected && strings.Contains(st.ServerError, "127.0.0.5")
	})
	// The deny survives a restart of the receiving MOM.
	a.stop()
	a = c.startMom("a", "127.0.0.2", "")
	c.waitUp("a")
	err = rawSwap(t, "127.0.0.3", a.imAddr(c.imPort), forgerAhead(t, old), "127.0.0.3")
	if code := rejectCode(t, err); code != proto.RejectRevoked {
		t.Fatalf("old address after restart: reject code %d (%v)", code, err)
	}
	// Moving to an address another node has is refused.
	if r := c.qmgr("set node b Mom=127.0.0.2"); r.code == 0 || !strings.Contains(r.stderr, "already belongs to node a") {
		t.Fatalf("duplicate address: exit %d %q", r.code, r.stderr)
	}
}

// TestDenyReachesOfflineMomAndAddressReuse: a MOM that was offline when a
// node was deleted learns the deny when it reconnects (DenySet), and the
// deleted node's address, given to a new node, is admitted again: by the
// connected MOMs at once (DenyLift, no reconnect), and by one that was
// offline at its next Welcome (DenySet).
func TestDenyReachesOfflineMomAndAddressReuse(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	x := c.addMom("x", "127.0.0.4")
	// Manual distribution keeps the old key active: only the deny stands
	// between the removed node and its sisters.
	c.mustQmgr("set server key_distribution=manual")
	b.stop()
	x.stop()
	c.mustQmgr("delete node x")
	b = c.startMom("b", "127.0.0.3", "")
	c.waitUp("b")
	x = c.startMomCutOff("x", "127.0.0.4") // its server would stop it (exit 4)
	c.refusedBy(x, b, "revoked")
	c.refusedBy(x, a, "revoked")

	// The address is given to a new node: admitted by every MOM. The
	// connected ones are told by a DenyLift and do not reconnect for it.
	x.stop()
	connects := func(m *momProc) int { return strings.Count(m.out.String(), "connected to server") }
	aConnects, bConnects := connects(a), connects(b)
	y := c.addMom("y", "127.0.0.4")
	for _, m := range []*momProc{a, b} {
		waitFor(t, m.name+" to apply the DenyLift of 127.0.0.4", 20*time.Second, func() bool {
			for _, line := range strings.Split(m.out.String(), "\n") {
				if strings.Contains(line, "deny lifted by server (DenyLift)") && strings.Contains(line, "addr=127.0.0.4") {
					return true
				}
			}
			return false
		})
	}
	c.mutuallyAdmitted(a, b, y)
	if connects(a) != aConnects || connects(b) != bConnects {
		t.Fatalf("a connected %d more times, b %d: the lift must not need a reconnect",
			connects(a)-aConnects, connects(b)-bConnects)
	}
	// Also by a MOM that was offline when the address was reused.
	b.stop()
	b = c.startMom("b", "127.0.0.3", "")
	c.waitUp("b")
	c.mutuallyAdmitted(a, b, y)
}

// serverDeniesAddr reports whether the server's persisted deny list
// (deny.json, then the records of deny.journal over it) denies ip.
func serverDeniesAddr(t *testing.T, dir, ip string) bool {
	t.Helper()
	js, err := store.ReadStateJournal(filepath.Join(dir, "deny.journal"), store.JournalOptions{Snapshot: filepath.Join(dir, "deny.json"), Expect: true})
	if err != nil || len(js.Findings) > 0 {
		t.Fatalf("server deny journal: %v %+v", err, js)
	}
	data, err := os.ReadFile(filepath.Join(dir, "deny.json"))
	if err != nil {
		t.Fatal(err)
	}
	var snap struct {
		Entries []struct {
			Addr string `json:"addr"`
		} `json:"entries"`
	}
	if err := json.Unmarshal(data, &snap); err != nil {
		t.Fatal(err)
	}
	denied := false
	for _, e := range snap.Entries {
		denied = denied || e.Addr == ip
	}
	for _, r := range js.Records {
		if r.Kind == "deny" && r.Key == "addr:"+ip {
			denied = !r.Deleted
		}
	}
	return denied
}

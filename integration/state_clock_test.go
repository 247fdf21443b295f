package integration

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/proto"
)

// stampAt is the stamp of the last PING of the sister at addr that m
// admitted (peers --json), and whether there is one.
func (c *cluster) stampAt(m *momProc, addr string) (uint64, bool) {
	c.t.Helper()
	for _, p := range c.peers(m) {
		if p.Addr == addr && p.Direction == "in" {
			return p.Stamp, p.Stamp != 0
		}
	}
	return 0, false
}

// lastSeen is when the server last heard from node (list node).
func (c *cluster) lastSeen(name string) time.Time {
	c.t.Helper()
	r := c.qmgr("--json", "-c", "list node "+name)
	var ns []struct {
		LastSeen *time.Time `json:"last_seen"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &ns); err != nil || len(ns) != 1 {
		c.t.Fatalf("list node %s: %v in %q", name, err, r.stdout)
	}
	if ns[0].LastSeen == nil {
		return time.Time{}
	}
	return *ns[0].LastSeen
}

// TestCeilingRestartLoop (issue 16, item 5): a MOM killed with -9 and
// restarted 100 times in quick succession, issuing timestamps in every
// life (the swap with the server, which refuses a reused one). Its
// timestamps then run at most the reserve (10 s) plus 1 ms per restart
// ahead of the wall clock, and within 1 s of it once the clock has caught
// up; a new sister admits it.
func TestCeilingRestartLoop(t *testing.T) {
	c := newClusterWith(t, []string{"--accept-rate-per-source", "-1"}, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	b := c.addMom("b", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	const restarts = 100
	for i := 0; i < restarts; i++ {
		a.kill()
		a = c.startMom("a", "127.0.0.2", "")
		waitFor(t, fmt.Sprintf("life %d of a to swap PINGs with the server", i+2), 30*time.Second, func() bool {
			return strings.Contains(a.out.String(), "connected to server")
		})
	}
	c.waitUp("a")
	bAddr := b.imAddr(c.imPort)
	stampNow := func() (stamp uint64, lo, hi time.Time) {
		lo = time.Now()
		if pr, r := c.ping(a, bAddr); !pr.Admitted {
			t.Fatalf("a -> b after the restarts: %+v %s", pr, r.stderr)
		}
		hi = time.Now()
		stamp, ok := c.stampAt(b, "127.0.0.2")
		if !ok {
			t.Fatal("b shows no stamp of a")
		}
		return stamp, lo, hi
	}
	stamp, lo, _ := stampNow()
	if bound := uint64(lo.Add(10*time.Second + restarts*time.Millisecond + time.Second).UnixNano()); stamp > bound {
		t.Fatalf("after %d restarts a's timestamps run %s ahead of the clock, more than the reserve plus 1 ms per restart",
			restarts, time.Duration(stamp-uint64(lo.UnixNano())))
	}
	waitFor(t, "a's timestamps within 1 s of the wall clock", 30*time.Second, func() bool {
		stamp, lo, hi := stampNow()
		return stamp >= uint64(lo.Add(-time.Second).UnixNano()) && stamp <= uint64(hi.Add(time.Second).UnixNano())
	})
	n := c.addMom("n", "127.0.0.4")
	if pr, r := c.ping(a, n.imAddr(c.imPort)); !pr.Admitted {
		t.Fatalf("a -> new sister n: %+v %s", pr, r.stderr)
	}
}

// TestClockRanAheadCorrected (issue 16, item 5): a node whose clock ran an
// hour ahead (--test-clock-offset=1h) is admitted by a sister on the
// server's attested floor; its clock corrected, it says at start how far
// its timestamps run ahead, and it is admitted at once by the known
// sister (by its mark) and by a new one (by the attested floor). A PING
// it sealed while ahead is a replay at the known sister and below the
// floor at the new one.
func TestClockRanAheadCorrected(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4")
	b := c.addMom("b", "127.0.0.3")
	a := c.addMomWith("a", "127.0.0.2", "--test-clock-offset", "1h")
	bAddr := b.imAddr(c.imPort)
	waitFor(t, "b to admit a, an hour ahead, on the server's word", 30*time.Second, func() bool {
		pr, _ := c.ping(a, bAddr)
		return pr.Admitted
	})
	// Captures of a's PINGs while ahead: one b admitted (captured off the
	// wire), one for a sister that does not exist yet.
	thief := stealKeys(t, a)
	capB := thief.sealAged("127.0.0.2", "127.0.0.3", -time.Hour)
	if err := thief.deliver("127.0.0.2", bAddr, capB); err != nil {
		t.Fatalf("a's PING while ahead, at b: %v", err)
	}
	capN := thief.sealAged("127.0.0.2", "127.0.0.4", -time.Hour)
	if pr, r := c.ping(a, bAddr); !pr.Admitted { // a stamps after the captures
		t.Fatalf("a -> b: %+v %s", pr, r.stderr)
	}
	a.stop()
	a = c.startMom("a", "127.0.0.2", "")
	c.waitUp("a")
	waitLogged(t, a.proc, "timestamps run ahead of the wall clock")
	// Two heartbeats of the corrected a reach the server: its attested
	// floor is above everything a sealed before.
	up := time.Now()
	var first time.Time
	waitFor(t, "a heartbeat of a after its restart", 30*time.Second, func() bool {
		first = c.lastSeen("a")
		return first.After(up)
	})
	waitFor(t, "a second heartbeat of a", 30*time.Second, func() bool { return c.lastSeen("a").After(first) })
	if pr, r := c.ping(a, bAddr); !pr.Admitted {
		t.Fatalf("known sister b refused the corrected a: %+v %s", pr, r.stderr)
	}
	wantReject(t, "a PING sealed while ahead, at the known sister", thief.deliver("127.0.0.2", bAddr, capB), proto.RejectReplay)
	n := c.addMom("n", "127.0.0.4")
	nAddr := n.imAddr(c.imPort)
	mark := auditMark(t, n.auditPath())
	wantReject(t, "a PING sealed while ahead, at a new sister", thief.deliver("127.0.0.2", nAddr, capN), proto.RejectStale)
	waitAudit(t, n.auditPath(), mark, "floor", "127.0.0.2", "floor")
	if pr, r := c.ping(a, nAddr); !pr.Admitted {
		t.Fatalf("new sister n refused the corrected a: %+v %s", pr, r.stderr)
	}
}

// TestCreateNodeRefusesNonNodeAddrs (issue 16, item 7): Mom= and a MOM's
// --listen refuse every address a node cannot hold, with a clear error,
// and change nothing.
func TestCreateNodeRefusesNonNodeAddrs(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	c.addMom("a", "127.0.0.2")
	bad := []string{"255.255.255.255", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.250", "240.0.0.1", "::", "ff02::1", "::1.2.3.4"}
	for _, addr := range bad {
		for _, d := range []string{"create node x Mom=" + addr, "set node a Mom=" + addr} {
			if r := c.qmgr(d); r.code == 0 || !strings.Contains(r.stderr, "not an address a node can hold") {
				t.Errorf("%s: exit %d %q", d, r.code, r.stderr)
			}
		}
		dir := filepath.Join(t.TempDir(), "m")
		listen := addr + ":15003"
		if strings.Contains(addr, ":") {
			listen = "[" + addr + "]:15003"
		}
		r := run(t, "", "momgate-mom", "run", "--state-dir", dir, "--server", c.srvAddr, "--listen", listen, "--protocol", "legacy")
		if r.code == 0 || !strings.Contains(r.stderr, "not an address a node can hold") {
			t.Errorf("momgate-mom run --listen %s: exit %d %q", addr, r.code, r.stderr)
		}
	}
	c.requireOnlyNode(t, "a", "127.0.0.2")
}

// TestActivateKeyRefusesPending (issue 16, item 6): in manual distribution
// `activate key` refuses while a node has not imported the key, naming it;
// `force` activates and names the nodes cut off, which their sisters then
// refuse by key.
func TestActivateKeyRefusesPending(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	c.mustQmgr("set server key_distribution=manual")
	c.mustQmgr("rotate key")
	kl, _ := c.keyList()
	key := kl.Rotation.NewKey
	file := filepath.Join(t.TempDir(), "k")
	c.mustQmgr(fmt.Sprintf("export key %s file=%s", key, file))
	if r := run(t, "", "momgate-mom", "key", "import", "--state-dir", a.dir, file); r.code != 0 {
		t.Fatalf("import on a: %s", r.stderr)
	}
	waitFor(t, "a to acknowledge the key", 20*time.Second, func() bool {
		kl, _ := c.keyList()
		st, _ := kl.nodeState("a")
		return st == "acked"
	})
	r := c.qmgr("activate key " + key)
	if r.code != 2 || !strings.Contains(r.stderr, "b (pending)") || !strings.Contains(r.stderr, "activate key "+key+" force") ||
		strings.Contains(r.stderr, "a (") {
		t.Fatalf("activate key with b pending: exit %d %q", r.code, r.stderr)
	}
	if kl, _ := c.keyList(); kl.active() == key {
		t.Fatal("the refused activation activated the key")
	}
	r = c.mustQmgr("activate key " + key + " force")
	if !strings.Contains(r.stdout, key+" is now active") || !strings.Contains(r.stdout, "cut off") || !strings.Contains(r.stdout, "b (pending)") {
		t.Fatalf("activate key force: %q", r.stdout)
	}
	c.waitRotated(kl.Rotation.Seq)
	waitFor(t, "a to refuse b, which lacks the key", 30*time.Second, func() bool {
		pr, _ := c.ping(b, a.imAddr(c.imPort))
		return !pr.Admitted && pr.Reason == "refused_by_peer"
	})
}

// downgradeMarks rewrites a stopped daemon's mark store in format 1, as the
// previous version left it: a snapshot of every mark but one, and a log
// holding that one.
func downgradeMarks(t *testing.T, dir string) {
	t.Helper()
	st, err := store.ReadMarkStore(dir, store.MarkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var lastNode proto.NodeID
	var lastTS uint64
	for n, ts := range st.Marks {
		lastNode, lastTS = n, ts
		delete(st.Marks, n)
		break
	}
	snap, err := store.EncodeSnapshot(st.Marks)
	if err != nil {
		t.Fatal(err)
	}
	rec := append(lastNode[:], binary.BigEndian.AppendUint64(nil, lastTS)...)
	rec = binary.BigEndian.AppendUint32(rec, crc32.Checksum(rec, crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(filepath.Join(dir, store.MarkSnapName), snap, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, store.MarkLogName), rec, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestUpgradeStateDirInPlace: state directories of the previous version
// (format 1 mark stores and journal, no manifest, no file the previous
// version had not written yet) start, say what they upgrade, lose no node
// or key, and are in the current format afterwards, which `state check`
// finds whole. The upgrade is fail-closed (docs/SECURITY.md 7.1): nothing
// proves a format 1 mark store whole, nor tells the directory from one
// whose manifest was deleted with its marks, so each daemon recovers its
// marks with the recovery floor, and a PING admitted before is refused.
func TestUpgradeStateDirInPlace(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	c.createNode("d", "127.0.0.5")
	thief := stealKeys(t, a)
	target := b.imAddr(c.imPort)
	cp := thief.seal("127.0.0.2", "127.0.0.3")
	if err := thief.deliver("127.0.0.2", target, cp); err != nil {
		t.Fatalf("capture: %v", err)
	}
	a.stop()
	b.stop()
	c.server.stop()
	for _, dir := range []string{c.srvDir, a.dir, b.dir} {
		downgradeMarks(t, dir)
		for _, f := range []string{store.ManifestName, "rotation.json", "deny.json", "deny.journal", "legacy.json", "jobs.json"} {
			_ = os.Remove(filepath.Join(dir, f))
		}
	}
	journal := filepath.Join(c.srvDir, "state.journal")
	data, err := os.ReadFile(journal)
	if err != nil || !strings.HasPrefix(string(data), store.JournalMagic) {
		t.Fatalf("journal %q (%v)", data, err)
	}
	if err := os.WriteFile(journal, data[store.JournalHeaderSize:], 0o600); err != nil {
		t.Fatal(err)
	}
	// The previous version's state.json did not say that a version with a
	// manifest wrote it.
	snapPath := filepath.Join(c.srvDir, "state.json")
	var snap map[string]json.RawMessage
	if data, err := os.ReadFile(snapPath); err != nil || json.Unmarshal(data, &snap) != nil || snap["manifest"] == nil {
		t.Fatalf("state.json %q (%v)", data, err)
	}
	delete(snap, "manifest")
	if data, err := json.Marshal(snap); err != nil || os.WriteFile(snapPath, data, 0o600) != nil {
		t.Fatal(err)
	}
	for _, p := range []struct{ bin, dir string }{{"momgate-server", c.srvDir}, {"momgate-mom", b.dir}} {
		r := run(t, "", p.bin, "state", "check", "--state-dir", p.dir)
		if r.code != 2 || !strings.Contains(r.stdout, "upgrade: ") || !strings.Contains(r.stdout, "recover: "+store.MarkLogName) {
			t.Fatalf("%s state check of a directory of the previous version: exit %d %q %q", p.bin, r.code, r.stdout, r.stderr)
		}
	}
	c.startServer()
	a = c.startMom("a", "127.0.0.2", "")
	b = c.startMom("b", "127.0.0.3", "")
	c.waitUp("a")
	c.waitUp("b")
	for _, p := range []*proc{c.server, a.proc, b.proc} {
		waitLogged(t, p, "state upgrade: ")
		waitLogged(t, p, "level=error msg=\"state loss: "+store.MarkLogName)
	}
	c.requireNodes("a", "b", "d")
	c.waitAdmin(b)
	wantCaptureRefused(t, "the capture after the upgrade", thief.deliver("127.0.0.2", target, cp))
	// A first contact after the recovery needs the server's attestation
	// (two heartbeats of the sender's new control session) or a wait of
	// one freshness window.
	c.waitMutuallyAdmitted(a, b)
	a.stop()
	b.stop()
	c.server.stop()
	for _, p := range []struct{ bin, dir string }{{"momgate-server", c.srvDir}, {"momgate-mom", a.dir}, {"momgate-mom", b.dir}} {
		r := run(t, "", p.bin, "state", "check", "--state-dir", p.dir)
		if r.code != 0 || strings.Contains(r.stdout, "upgrade: ") || !strings.Contains(r.stdout, "nothing lost") {
			t.Fatalf("%s state check after the upgrade: exit %d %q %q", p.bin, r.code, r.stdout, r.stderr)
		}
	}
}

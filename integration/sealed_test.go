package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// The sealed sessions of issue 12, against the real binaries: an on-path
// attacker (tamperProxy) between a MOM and the server and between two MOMs
// flips bits, injects forged frames, replays and drops records, and tries
// to downgrade the sessions; every attack is refused with its reason,
// audited, and nothing the injected frames asked for happens. Then rekeys
// with jobs polling, revocation of live sessions, and a mixed cluster.

// startMomVia starts the MOM of node name at ip whose control connection
// dials server (a proxy), with extra flags.
func (c *cluster) startMomVia(name, ip, token, server string, extra ...string) *momProc {
	c.t.Helper()
	dir := filepath.Join(c.dir, name)
	args := []string{"momgate-mom", "run", "--state-dir", dir, "--server", server,
		"--listen", fmt.Sprintf("%s:%d", ip, c.imPort), "--heartbeat", "200ms", "--log-level", "debug"}
	if token != "" {
		args = append(args, "--enroll", token)
	}
	args = append(args, extra...)
	m := &momProc{name: name, ip: ip, dir: dir, proc: start(c.t, name, args...)}
	c.moms[name] = m
	return m
}

// createNodeAt creates node name at ip with IM port port (a proxy's) and
// returns its token.
func (c *cluster) createNodeAt(name, ip string, port int) string {
	c.t.Helper()
	r := c.qmgr("--json", "-c", fmt.Sprintf("create node %s Mom=%s,Port=%d", name, ip, port))
	if r.code != 0 {
		c.t.Fatalf("create node %s: %s", name, r.stderr)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Token == "" {
		c.t.Fatalf("create node %s: no token in %q", name, r.stdout)
	}
	return out.Token
}

// fullStatus is `momgate-mom status --json` as admin.MomStatus.
func (c *cluster) fullStatus(m *momProc) (admin.MomStatus, bool) {
	c.t.Helper()
	r := run(c.t, "", "momgate-mom", "status", "--json", "--state-dir", m.dir)
	var st admin.MomStatus
	if r.code != 0 {
		return st, false
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		c.t.Fatalf("status --json: %v in %q", err, r.stdout)
	}
	return st, true
}

// waitSealedControl waits until m's control session is up and encrypt.
func (c *cluster) waitSealedControl(m *momProc) admin.MomStatus {
	c.t.Helper()
	var st admin.MomStatus
	waitFor(c.t, m.name+"'s control session sealed (encrypt)", 30*time.Second, func() bool {
		var ok bool
		st, ok = c.fullStatus(m)
		return ok && st.Connected && st.Sessions != nil && st.Sessions.Control == "encrypt"
	})
	return st
}

// jobList is `momgate-mom job list --json`.
func (c *cluster) jobList(m *momProc) []admin.JobInfo {
	c.t.Helper()
	r := run(c.t, "", "momgate-mom", "job", "list", "--json", "--state-dir", m.dir)
	if r.code != 0 {
		c.t.Fatalf("job list on %s: %s", m.name, r.stderr)
	}
	var js []admin.JobInfo
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil {
		c.t.Fatalf("job list --json: %v in %q", err, r.stdout)
	}
	return js
}

// startJob starts job name on m polling sisters every interval.
func (c *cluster) startJob(m *momProc, name, interval string, sisters ...string) {
	c.t.Helper()
	r := run(c.t, "", "momgate-mom", "job", "start", "--state-dir", m.dir, "--name", name,
		"--sisters", strings.Join(sisters, ","), "--interval", interval, "--budget", "60s")
	if r.code != 0 {
		c.t.Fatalf("job start %s on %s: %s", name, m.name, r.stderr)
	}
}

// sister returns job's row for sister on m.
func (c *cluster) sister(m *momProc, job, sister string) admin.SisterInfo {
	c.t.Helper()
	for _, j := range c.jobList(m) {
		if j.Name != job {
			continue
		}
		for _, s := range j.Sisters {
			if s.Name == sister {
				return s
			}
		}
	}
	c.t.Fatalf("no sister %s in job %s on %s", sister, job, m.name)
	return admin.SisterInfo{}
}

// waitPolls waits until job's polls of sister on m have grown by n.
func (c *cluster) waitPolls(m *momProc, job, sister string, n uint64) admin.SisterInfo {
	c.t.Helper()
	base := c.sister(m, job, sister).PollsOK
	var s admin.SisterInfo
	waitFor(c.t, fmt.Sprintf("%d more polls of %s by %s", n, sister, job), 60*time.Second, func() bool {
		s = c.sister(m, job, sister)
		return s.PollsOK >= base+n
	})
	return s
}

// denied reads the MOM's persisted deny list (deny.json).
func denied(t *testing.T, m *momProc) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(m.dir, "deny.json"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// record is a forged frame that looks like a sealed record: the right
// header, random bytes where the payload and tag go.
func forgedRecord(n int) []byte {
	b := proto.AppendHeader(nil, proto.Header{Version: proto.V2, Type: session.RecordType, Length: uint32(n)})
	for i := 0; i < n; i++ {
		b = append(b, byte(i*131+7))
	}
	return b
}

// TestSealedControlTampering: between a MOM and the server, every frame
// after the swap is a sealed record; a flipped bit (both directions), a
// plain DenySet that would lift every deny, a plain Mode that would switch
// the MOM to legacy, a forged record, a replayed record and a dropped one
// each close the session at the receiver with its reason in the audit log
// and the counters, the MOM reconnects sealed, and nothing the injected
// frames asked for happened.
func TestSealedControlTampering(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	px := newTamperProxy(t, "127.0.0.1", c.srvAddr)
	a := c.startMomVia("a", "127.0.0.2", c.createNode("a", "127.0.0.2"), px.addr())
	c.waitUp("a")
	c.waitSealedControl(a)
	// A deny for a (never enrolled) deleted node: what a forged DenySet
	// would lift.
	c.createNode("gone", "127.0.0.77")
	if r := c.qmgr("delete node gone"); r.code != 0 {
		t.Fatalf("delete node gone: %s", r.stderr)
	}
	waitFor(t, "a denies the deleted node", 30*time.Second, func() bool { return strings.Contains(denied(t, a), "127.0.0.77") })
	denyBefore := denied(t, a)

	momSide := func(t *testing.T, name, reason string, d tamperDir, typ proto.Type, attack func([]byte, [][]byte, func([]byte)) [][]byte) {
		t.Helper()
		base, mark := c.momCounters(a), auditMark(t, a.auditPath())
		waitFired(t, name, px.arm(d, typ, attack))
		waitRejected(t, name, func() counters { return c.momCounters(a) }, base, reason, 1)
		waitAudit(t, a.auditPath(), mark, reason, "127.0.0.1", "sealed session closed")
		c.waitSealedControl(a)
	}
	t.Run("bit_flipped_server_to_mom", func(t *testing.T) {
		momSide(t, "bit flip", "session_auth", fromTarget, session.RecordType, flipBit)
	})
	t.Run("bit_flipped_mom_to_server", func(t *testing.T) {
		base, mark := c.serverCounters(), auditMark(t, c.serverAudit())
		waitFired(t, "bit flip", px.arm(toTarget, session.RecordType, flipBit))
		waitRejected(t, "server", c.serverCounters, base, "session_auth", 1)
		waitAudit(t, c.serverAudit(), mark, "session_auth", "127.0.0.2", "sealed session closed")
		c.waitSealedControl(a)
	})
	t.Run("forged_deny_set_injected", func(t *testing.T) {
		momSide(t, "plain DenySet", "session_auth", fromTarget, session.RecordType, injectBefore(proto.Marshal(&proto.DenySet{})))
		if got := denied(t, a); got != denyBefore {
			t.Fatalf("the forged DenySet changed a's deny list:\n%s\nwas\n%s", got, denyBefore)
		}
	})
	t.Run("forged_mode_injected", func(t *testing.T) {
		momSide(t, "plain Mode", "session_auth", fromTarget, session.RecordType, injectBefore(proto.Marshal(&proto.ModeMsg{Mode: proto.ModeLegacy})))
		st, _ := c.fullStatus(a)
		if st.Legacy.Protocol != "ping" || st.Legacy.ServerMode != "ping" {
			t.Fatalf("the forged Mode changed a's protocol: %+v", st.Legacy)
		}
	})
	t.Run("forged_record_injected", func(t *testing.T) {
		momSide(t, "forged record", "session_auth", fromTarget, session.RecordType, injectBefore(forgedRecord(48)))
	})
	t.Run("record_replayed", func(t *testing.T) {
		momSide(t, "replay", "session_replay", fromTarget, session.RecordType, replayPrevious)
	})
	t.Run("record_dropped", func(t *testing.T) {
		momSide(t, "drop", "session_replay", fromTarget, session.RecordType, dropFrame)
	})
	if got := denied(t, a); got != denyBefore {
		t.Fatalf("a's deny list changed:\n%s\nwas\n%s", got, denyBefore)
	}
	if n, _ := c.node("a"); n.State != "up" {
		t.Fatalf("a is %s at the server", n.State)
	}
}

// TestSealedControlNoDowngrade: the attacks of the security review's first
// finding. The Welcome's session trailer cut in flight, at a MOM's first
// login (its enrollment) and at a later one, and a forged Reject answering
// the MOM's SessionPing: no unsealed control session results, whatever
// the attacker does; the server or the MOM refuses with session_downgrade
// and the MOM logs in sealed as soon as the attacker stops.
func TestSealedControlNoDowngrade(t *testing.T) {
	c := newCluster(t, "127.0.0.2")
	px := newTamperProxy(t, "127.0.0.1", c.srvAddr)
	// The first login ever: the MOM knows nothing of the server yet, so it
	// takes the cut Welcome for an old server's and sends a plain Ping;
	// the server, which read the capability in the MOM's sealed Enroll,
	// refuses it.
	base, mark := c.serverCounters(), auditMark(t, c.serverAudit())
	fired := px.arm(fromTarget, proto.TypeWelcome, stripWelcomeTrailer)
	a := c.startMomVia("a", "127.0.0.2", c.createNode("a", "127.0.0.2"), px.addr())
	waitFired(t, "strip the trailer at enrollment", fired)
	waitRejected(t, "server", c.serverCounters, base, "session_downgrade", 1)
	waitAudit(t, c.serverAudit(), mark, "session_downgrade", "127.0.0.2", "not a SessionPing")
	c.waitSealedControl(a)

	t.Run("trailer_cut_later", func(t *testing.T) {
		// Now the MOM knows the server seals: it refuses by itself.
		base, mark := c.momCounters(a), auditMark(t, a.auditPath())
		fired := px.arm(fromTarget, proto.TypeWelcome, stripWelcomeTrailer)
		a.stop()
		a = c.startMomVia("a", "127.0.0.2", "", px.addr())
		waitFired(t, "strip the trailer", fired)
		waitRejected(t, "a", func() counters { return c.momCounters(a) }, base, "session_downgrade", 1)
		waitAudit(t, a.auditPath(), mark, "session_downgrade", "127.0.0.1", "no session trailer")
		c.waitSealedControl(a)
	})
	t.Run("forged_reject_to_session_ping", func(t *testing.T) {
		srvBase := c.serverCounters()
		fired := px.arm(toTarget, proto.TypeSessionPing, answerUnknownFrame)
		a.stop()
		a = c.startMomVia("a", "127.0.0.2", "", px.addr())
		waitFired(t, "forged reject", fired)
		c.waitSealedControl(a)
		if got := c.serverCounters(); got.Rejected["session_downgrade"] != srvBase.Rejected["session_downgrade"] {
			t.Fatalf("the MOM fell back to a plain swap after a forged Reject: server counters %v", got.Rejected)
		}
	})
	waitFor(t, "list node a: session encrypt, sealed", 30*time.Second, func() bool {
		n, _ := c.node("a")
		return n.Session == "encrypt" && n.Sealed
	})
}

// imPair is a mother superior a whose IM connections to sister b go
// through a proxy on b's IP: b is registered with the proxy's port, which
// is what a's node lookup returns.
func imPair(t *testing.T, extra ...string) (*cluster, *tamperProxy, *momProc, *momProc) {
	t.Helper()
	c := newClusterWith(t, extra, "127.0.0.2", "127.0.0.3")
	a := c.addMomWith("a", "127.0.0.2", extra...)
	px := newTamperProxy(t, "127.0.0.3", atPort("127.0.0.3", c.imPort))
	b := c.startMomWith("b", "127.0.0.3", c.createNodeAt("b", "127.0.0.3", px.port()), extra...)
	c.waitUp("b")
	c.waitSealedControl(a)
	c.waitSealedControl(b)
	return c, px, a, b
}

// TestSealedIMTampering: between two MOMs, with a job polling, a flipped
// bit, a forged plain IMJoin, a replayed record and a dropped one are each
// refused by the receiving MOM with its reason; the job reconnects (a new
// session) and is never disrupted. A forged Reject of a SessionPing to a
// sister known to speak sealed sessions does not make the mother fall back.
// IM is request and response: a dropped request is followed by nothing
// but the mother's next rekey, so the sessions rekey every 300 ms here
// (test-only --test-session-rekey) and that record is the one refused.
func TestSealedIMTampering(t *testing.T) {
	c, px, a, b := imPair(t, "--test-session-rekey", "300ms")
	c.startJob(a, "j", "50ms", "b")
	if s := c.waitPolls(a, "j", "b", 5); s.Session != "encrypt" {
		t.Fatalf("the job's session is %q, want encrypt (im_security of a new cluster)", s.Session)
	}
	// attack arms do on the proxy and waits for at to refuse it with one of
	// reasons (the first is the usual one).
	attack := func(t *testing.T, name string, at *momProc, peerIP string, reasons []string, d tamperDir, do func([]byte, [][]byte, func([]byte)) [][]byte) {
		t.Helper()
		base, mark := c.momCounters(at), auditMark(t, at.auditPath())
		readmitted := c.sister(a, "j", "b").Readmissions
		waitFired(t, name, px.arm(d, session.RecordType, do))
		var reason string
		waitFor(t, fmt.Sprintf("%s: a %v rejection", at.name, reasons), 30*time.Second, func() bool {
			now := c.momCounters(at)
			for _, r := range reasons {
				if now.Rejected[r] > base.Rejected[r] {
					reason = r
					return true
				}
			}
			return false
		})
		waitRejected(t, at.name, func() counters { return c.momCounters(at) }, base, reason, 1)
		waitAudit(t, at.auditPath(), mark, reason, peerIP, "sealed session closed")
		waitFor(t, "the job reconnected", 30*time.Second, func() bool { return c.sister(a, "j", "b").Readmissions > readmitted })
		if s := c.waitPolls(a, "j", "b", 3); s.Disruptions != 0 || s.Session != "encrypt" {
			t.Fatalf("after %s: %+v", name, s)
		}
	}
	t.Run("bit_flipped", func(t *testing.T) { attack(t, "bit flip", b, "127.0.0.2", []string{"session_auth"}, toTarget, flipBit) })
	t.Run("forged_join_injected", func(t *testing.T) {
		attack(t, "plain IMJoin", b, "127.0.0.2", []string{"session_auth"}, toTarget, injectBefore(proto.Marshal(&proto.IMJoin{Job: "forged", Mother: "a"})))
	})
	t.Run("record_replayed", func(t *testing.T) {
		attack(t, "replay", a, "127.0.0.3", []string{"session_replay"}, fromTarget, replayPrevious)
	})
	// A dropped record makes the next one open under a later counter:
	// session_replay; unless the dropped one was the rekey that ended its
	// generation, when the next record is of a generation b never got the
	// keys of: session_auth.
	t.Run("record_dropped", func(t *testing.T) {
		attack(t, "drop", b, "127.0.0.2", []string{"session_replay", "session_auth"}, toTarget, dropFrame)
	})
	t.Run("forged_reject_no_fallback", func(t *testing.T) {
		base, bBase, mark := c.momCounters(a), c.momCounters(b), auditMark(t, a.auditPath())
		fired := px.arm(toTarget, proto.TypeSessionPing, answerUnknownFrame)
		pr, _ := c.ping(a, atPort("127.0.0.3", px.port()))
		waitFired(t, "forged reject", fired)
		if pr.Admitted || pr.Reason != "session_downgrade" {
			t.Fatalf("a's ping of b answered with a forged Reject: %+v", pr)
		}
		waitRejected(t, "a", func() counters { return c.momCounters(a) }, base, "session_downgrade", 1)
		waitAudit(t, a.auditPath(), mark, "session_downgrade", "127.0.0.3", "no fallback")
		if got := c.momCounters(b); got.Accepted != bBase.Accepted {
			t.Fatalf("b admitted something (a plain swap after the forged Reject?): %+v -> %+v", bBase, got)
		}
	})
}

// TestSealedSessionsRekeyWithJobsPolling: with rekeys every 300 ms (the
// test-only --test-session-rekey), a busy job and an idle one (polling
// every 2 s, so its session rekeys between polls, driven by the ticker
// and answered by the mother's reader) keep their connections through
// many rekeys: no re-admission, no failed poll; the control sessions
// rekey too.
func TestSealedSessionsRekeyWithJobsPolling(t *testing.T) {
	rekey := []string{"--test-session-rekey", "300ms"}
	c := newClusterWith(t, rekey, "127.0.0.2", "127.0.0.3")
	a := c.addMomWith("a", "127.0.0.2", rekey...)
	b := c.addMomWith("b", "127.0.0.3", rekey...)
	c.startJob(a, "busy", "50ms", "b")
	c.startJob(a, "idle", "2s", "b")
	c.waitPolls(a, "busy", "b", 3)
	c.waitPolls(a, "idle", "b", 1)
	waitFor(t, "both jobs' sessions rekeyed 5 times", 60*time.Second, func() bool {
		return c.sister(a, "busy", "b").Rekeys >= 5 && c.sister(a, "idle", "b").Rekeys >= 5
	})
	c.waitPolls(a, "idle", "b", 2)
	for _, job := range []string{"busy", "idle"} {
		s := c.sister(a, job, "b")
		if s.Readmissions != 0 || s.PollsFailed != 0 || s.Disruptions != 0 || s.Session != "encrypt" {
			t.Fatalf("job %s across rekeys: %+v", job, s)
		}
	}
	for _, m := range []*momProc{a, b} {
		waitFor(t, m.name+"'s control session rekeyed", 30*time.Second, func() bool {
			st, ok := c.fullStatus(m)
			return ok && st.Sessions.Control == "encrypt" && st.Sessions.Rekeys >= 3
		})
	}
	for _, m := range []*momProc{a, b} {
		if n := c.momCounters(m).Rejected; n["session_expired"]+n["session_auth"]+n["session_replay"]+n["session_protocol"] != 0 {
			t.Fatalf("%s refused records while rekeying: %v", m.name, n)
		}
	}
}

// TestDeletedNodeSessionsClosed: `delete node a` closes a's open IM
// session at its sister at once (within a second: the proxy sees the
// sister close it), and a's control session at the server; a cannot open
// another: its swap is refused as revoked.
func TestDeletedNodeSessionsClosed(t *testing.T) {
	c, px, a, b := imPair(t)
	c.startJob(a, "j", "200ms", "b")
	c.waitPolls(a, "j", "b", 2)
	for len(px.closed) > 0 { // closes of earlier connections (node lookups' swaps)
		<-px.closed
	}
	mark := auditMark(t, b.auditPath())
	if r := c.qmgr("delete node a"); r.code != 0 {
		t.Fatalf("delete node a: %s", r.stderr)
	}
	deadline := time.After(time.Second)
	for closed := false; !closed; {
		select {
		case d := <-px.closed:
			closed = d == fromTarget // the sister b closed it
		case <-deadline:
			t.Fatal("b did not close the deleted node's IM session within a second")
		}
	}
	// The server refuses the deleted node's next hello and its MOM stops
	// for good (exit 4); started again cut off from the server, it cannot
	// open a new session with its sister.
	if code := a.waitExit(t, 30*time.Second); code != 4 {
		t.Fatalf("the deleted MOM exited with %d, want 4", code)
	}
	a = c.startMomCutOff("a", "127.0.0.2")
	if pr, _ := c.ping(a, b.imAddr(c.imPort)); pr.Admitted {
		t.Fatal("b admitted the deleted node again")
	}
	waitAudit(t, b.auditPath(), mark, "revoked", "127.0.0.2", "")
}

// TestMixedClusterSealed: a server and MOMs that speak sealed sessions,
// one MOM of before them (the test-only --test-without-sessions) and a
// legacy (v1) MOM, in compat mode: everyone keeps admitting and running
// jobs; the pairs that both speak sealed sessions are sealed (encrypt),
// the others plain; `set server im_security=auth` changes live: running
// sessions keep their protection, new ones follow it.
func TestMixedClusterSealed(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
	if r := c.qmgr("set server mode=compat"); r.code != 0 {
		t.Fatalf("set mode: %s", r.stderr)
	}
	n1 := c.addMom("n1", "127.0.0.2")
	old := c.addMomWith("old", "127.0.0.3", "--test-without-sessions")
	c.createNode("v1", "127.0.0.4")
	v1 := c.startMomWith("v1", "127.0.0.4", "", "--protocol", "legacy")
	c.waitUp("v1")
	n4 := c.addMom("n4", "127.0.0.5")
	c.startJob(n1, "j1", "100ms", "old", "v1", "n4")
	c.startJob(old, "j2", "100ms", "n1", "n4")
	c.startJob(n4, "j4", "100ms", "n1", "old")
	for _, p := range []struct {
		m            *momProc
		job, sister  string
		protocol, pr string
	}{
		{n1, "j1", "old", "v2", "none"}, {n1, "j1", "v1", "v1", "none"}, {n1, "j1", "n4", "v2", "encrypt"},
		{old, "j2", "n1", "v2", "none"}, {old, "j2", "n4", "v2", "none"},
		{n4, "j4", "n1", "v2", "encrypt"}, {n4, "j4", "old", "v2", "none"},
	} {
		if s := c.waitPolls(p.m, p.job, p.sister, 3); s.Protocol != p.protocol || s.Session != p.pr {
			t.Fatalf("%s -> %s: %s session %q, want %s %s", p.m.name, p.sister, s.Protocol, s.Session, p.protocol, p.pr)
		}
	}
	want := map[string]string{"n1": "encrypt", "old": "none", "v1": "none", "n4": "encrypt"}
	for name, sess := range want {
		if n, _ := c.node(name); n.Session != sess {
			t.Fatalf("list node %s: session %q, want %s", name, n.Session, sess)
		}
	}
	// Live change: running sessions keep encrypt, a new one gets auth.
	if r := c.qmgr("set server im_security=auth"); r.code != 0 {
		t.Fatalf("set im_security: %s", r.stderr)
	}
	for _, m := range []*momProc{n1, n4} {
		waitFor(t, m.name+" hears im_security=auth", 30*time.Second, func() bool {
			st, ok := c.fullStatus(m)
			return ok && st.Sessions.IMSecurity == "auth"
		})
	}
	before := c.sister(n1, "j1", "n4")
	c.startJob(n1, "j5", "100ms", "n4")
	if s := c.waitPolls(n1, "j5", "n4", 3); s.Session != "auth" {
		t.Fatalf("a new session after im_security=auth: %q", s.Session)
	}
	if s := c.waitPolls(n1, "j1", "n4", 3); s.Session != "encrypt" || s.Readmissions != before.Readmissions {
		t.Fatalf("the running session changed: %+v (was %+v)", s, before)
	}
	for _, p := range []*momProc{n1, old, n4} {
		for _, j := range c.jobList(p) {
			for _, s := range j.Sisters {
				if s.Disruptions != 0 {
					t.Fatalf("%s job %s sister %s disrupted: %+v", p.name, j.Name, s.Name, s)
				}
			}
		}
	}
	_ = v1
}

package integration

// Fault injection (issue 5): kill -9 of the server and of MOMs during
// enrollment and during a rolling migration, then a restart, and a check
// that the cluster converged: one active key on the server and every MOM,
// every node listed, up and admitted by PING, and no replay mark lost (a
// PING admitted before the crash is refused as a replay after it).
//
// Kill -9 during key rotation is in rotation_test.go
// (TestServerKilledAtEachRotationStep, TestMomKilledAtEachRotationStep):
// it is not repeated here. The crash points are the test-only hook
// MOMGATE_TEST_CRASH_AT (internal/daemon/crash.go, docs/KEYS.md).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// crashedAt waits for p to die by the crash hook at step.
func crashedAt(t *testing.T, p *proc, step string) {
	t.Helper()
	if code := p.waitExit(t, 60*time.Second); code == 0 {
		t.Fatalf("%s exited 0 instead of crashing at %s", p.name, step)
	}
	if !strings.Contains(p.out.String(), "MOMGATE_TEST_CRASH_AT="+step+": killing myself") {
		t.Fatalf("%s died, but not at the hook %s:\n%s", p.name, step, p.out.String())
	}
}

// loginAndSwap logs in to the server as the node whose identity and
// cluster keys the insider stole (its own MOM stopped), from local, and
// offers cp as the handshake's PING: nil if the server admitted it, a
// *handshake.RejectError if it refused it.
func (in *insider) loginAndSwap(local, server string, ident *keys.Identity, cp capture) error {
	t := in.t
	t.Helper()
	c := sendHello(t, local, server, in.sealer.Node, ident)
	defer c.Close()
	frame, err := proto.ReadFrameLimit(c, nil, 1<<16)
	if err != nil {
		t.Fatalf("read welcome: %v", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := msg.(*proto.Welcome); !ok {
		t.Fatalf("login as node %x: got %+v, want a Welcome", in.sealer.Node, msg)
	}
	if _, err := c.Write(cp.frame); err != nil {
		t.Fatalf("send ping: %v", err)
	}
	v := &ping.Verifier{Keys: keys.NewHolder(in.ring), Guard: ping.NewGuard(ping.GuardConfig{Freshness: 0}, nil), Now: time.Now}
	return readSessionReply(c, v, cp.rnd)
}

// asFreshSender is the insider sealing under a node id of its own that
// no genuine MOM uses: a receiver's mark for it moves only with the
// insider's PINGs, so no later genuine PING (a restarted MOM stamps up to
// its ceiling reserve ahead of the clock) can hide a lost mark or make the
// capture stale before it is delivered.
func (in *insider) asFreshSender() *insider {
	s := *in.sealer
	s.Node = proto.NodeID(uuid.New())
	return &insider{t: in.t, ring: in.ring, sealer: &s}
}

// markProbe is a PING admitted before a crash, kept to be replayed after
// it: one from sister `from`'s address and key (under a fresh sender id)
// to MOM `to`, and one to the server from the
// stopped MOM idle, sent by an insider with idle's stolen identity (idle's
// genuine MOM is stopped, so no later PING of it raises the server's mark
// past the capture and hides a lost mark).
type markProbe struct {
	c                *cluster
	mom, srv         *insider
	momCp, srvCp     capture
	from, to, idle   *momProc
	srvIdent         *keys.Identity
	srvHost, srvAddr string
}

// newMarkProbe captures and delivers both PINGs; both must be admitted.
// Nothing may ping to from from until check has run.
func (c *cluster) newMarkProbe(from, to, idle *momProc) *markProbe {
	t := c.t
	t.Helper()
	if !idle.exited() {
		t.Fatalf("mark probe: %s must be stopped", idle.name)
	}
	ident, err := keystore.LoadIdentity(filepath.Join(idle.dir, "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	p := &markProbe{c: c, mom: stealKeys(t, from).asFreshSender(), srv: stealKeys(t, idle), from: from, to: to, idle: idle, srvIdent: ident,
		srvHost: "127.0.0.1", srvAddr: c.srvAddr}
	p.momCp = p.mom.seal(from.ip, to.ip)
	if err := p.mom.deliver(from.ip, to.imAddr(c.imPort), p.momCp); err != nil {
		t.Fatalf("mark probe %s -> %s refused before the crash: %v", from.name, to.name, err)
	}
	p.srvCp = p.srv.sealControl(idle.ip, p.srvHost)
	if err := p.srv.loginAndSwap(idle.ip, p.srvAddr, ident, p.srvCp); err != nil {
		t.Fatalf("mark probe %s -> server refused before the crash: %v", idle.name, err)
	}
	return p
}

// check replays both captures: each must be refused as a replay.
func (p *markProbe) check() {
	t := p.c.t
	t.Helper()
	wantReject(t, fmt.Sprintf("replay of %s's pre-crash PING to %s", p.from.name, p.to.name),
		p.mom.deliver(p.from.ip, p.to.imAddr(p.c.imPort), p.momCp), proto.RejectReplay)
	wantReject(t, fmt.Sprintf("replay of %s's pre-crash PING to the server", p.idle.name),
		p.srv.loginAndSwap(p.idle.ip, p.srvAddr, p.srvIdent, p.srvCp), proto.RejectReplay)
}

// requireNodes fails unless the server lists exactly names.
func (c *cluster) requireNodes(names ...string) {
	c.t.Helper()
	var got []string
	for _, n := range c.nodes() {
		got = append(got, n.Name)
	}
	sort.Strings(got)
	want := slices.Clone(names)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		c.t.Fatalf("server lists nodes %v, want %v", got, want)
	}
}

// enrolledLines counts the "node enrolled" log lines of node name in p's
// output: the server logs one per new enrollment, none for a retry.
func enrolledLines(p *proc, name string) int {
	n := 0
	for _, l := range strings.Split(p.out.String(), "\n") {
		f := map[string]string{}
		for _, m := range logfmtField.FindAllStringSubmatch(l, -1) {
			f[m[1]] = strings.Trim(m[2], `"`)
		}
		if f["msg"] == "node enrolled" && f["node"] == name {
			n++
		}
	}
	return n
}

// requireEnrolledAs fails unless the server has node name enrolled with
// the identity key in m's state directory.
func (c *cluster) requireEnrolledAs(name string, m *momProc) {
	c.t.Helper()
	ident, err := keystore.LoadIdentity(filepath.Join(m.dir, "identity.json"))
	if err != nil {
		c.t.Fatal(err)
	}
	if _, fp := c.nodeFingerprint(name); fp != keys.FingerprintText(ident.Public) {
		c.t.Fatalf("server has %s enrolled as %q, the MOM's identity is %s", name, fp, keys.FingerprintText(ident.Public))
	}
}

// TestFaultKilledDuringEnrollment: the server killed right after it saved
// an enrollment, before the Welcome reached the MOM; a MOM killed right
// after it received its Welcome, before saving anything of it; a MOM killed
// after saving the keyring but not the enrollment. A sister is killed at
// the same moment as each enrolling MOM. After restarts (a MOM with the
// same token, as its service would) every node is enrolled once, with the
// identity it generated, up and admitted, on one key, with marks intact.
func TestFaultKilledDuringEnrollment(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	x := c.addMom("x", "127.0.0.7")
	x.stop()
	all := []string{"a", "b", "x"}

	t.Run("server_after_saving_enrollment", func(t *testing.T) {
		probe := c.newMarkProbe(a, b, x)
		c.server.stop()
		c.startServerEnv(crashEnv("enroll-saved"))
		tok := c.createNode("c", "127.0.0.4")
		m := c.startMom("c", "127.0.0.4", tok)
		crashedAt(t, c.server, "enroll-saved")
		if n := enrolledLines(c.server, "c"); n != 1 {
			t.Fatalf("the crashed server logged %d enrollments of c, want 1", n)
		}
		c.startServer()
		c.waitUp("c")
		// The MOM's retry with the same token and identity was accepted as
		// the enrollment the crashed server had saved, not a new one.
		if n := enrolledLines(c.server, "c"); n != 0 {
			t.Fatalf("the restarted server enrolled c again (the first enrollment was lost)")
		}
		c.requireEnrolledAs("c", m)
		probe.check()
		all = append(all, "c")
		c.requireNodes(all...)
		c.waitConverged(a, b, m)
		c.mutuallyAdmitted(a, b, m)
	})

	for _, tc := range []struct{ step, name, ip string }{
		{"mom-welcome-received", "d", "127.0.0.5"},
		{"mom-enroll-keyring-saved", "e", "127.0.0.6"},
	} {
		t.Run("mom_at_"+tc.step, func(t *testing.T) {
			probe := c.newMarkProbe(a, b, x)
			tok := c.createNode(tc.name, tc.ip)
			m := c.startMomEnv(tc.name, tc.ip, tok, crashEnv(tc.step))
			crashedAt(t, m.proc, tc.step)
			b.kill()
			// The server saved the enrollment before sending the Welcome.
			c.requireEnrolledAs(tc.name, m)
			if _, err := os.Stat(filepath.Join(m.dir, "mom.json")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the MOM saved its enrollment before the hook: %v", err)
			}
			m = c.startMom(tc.name, tc.ip, tok)
			b = c.startMom("b", "127.0.0.3", "")
			c.waitUp(tc.name)
			c.waitUp("b")
			c.requireEnrolledAs(tc.name, m)
			if n := enrolledLines(c.server, tc.name); n != 1 {
				t.Fatalf("the server logged %d enrollments of %s, want 1 (the restart is a retry)", n, tc.name)
			}
			probe.check()
			all = append(all, tc.name)
			c.requireNodes(all...)
			c.waitConverged(a, b, m)
			c.mutuallyAdmitted(a, b, m)
		})
	}

	// The idle node comes back too: every node up on one key.
	x = c.startMom("x", "127.0.0.7", "")
	c.waitUp("x")
	var moms []*momProc
	for _, n := range all {
		moms = append(moms, c.moms[n])
	}
	c.requireNodes(all...)
	c.waitConverged(moms...)
	c.mutuallyAdmitted(a, x, c.moms["e"])
}

// migrateCrash runs rolling-migrate.sh like migrate until the restart hook
// asks for a MOM's restart; then it calls crash and kills the script and
// its hook with SIGKILL, as if the host running it went down. It returns
// the name of the node whose restart was asked for and the script's output.
func (f *fleet) migrateCrash(crash func(), args ...string) (string, string) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := f.scriptCmd(ctx, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var node string
	waitFor(f.t, "the migration to restart a MOM", 2*time.Minute, func() bool {
		select {
		case err := <-done:
			f.t.Fatalf("rolling-migrate.sh ended (%v) before restarting a MOM:\n%s", err, out.String())
		default:
		}
		next, _ := filepath.Glob(filepath.Join(f.hookDir, "*.next"))
		if len(next) == 0 {
			return false
		}
		node = strings.TrimSuffix(filepath.Base(next[0]), ".next")
		return true
	})
	crash()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	f.t.Logf("rolling-migrate.sh %s, killed at the restart of %s:\n%s", strings.Join(args, " "), node, out.String())
	return node, out.String()
}

// TestFaultKilledDuringMigration: rolling-migrate.sh pauses after its
// first batch; the next run is cut down in the middle of the second
// batch's restart step: the server, the script (and its restart hook) and
// an upgraded MOM are killed with SIGKILL. After the restarts, a re-run of
// the same command resumes at the interrupted step and finishes; the
// cluster is in ping mode with every node upgraded, up, admitted by PING,
// on one key, and the upgraded MOM's replay marks survived.
func TestFaultKilledDuringMigration(t *testing.T) {
	f := newFleet(t, 4)
	waitFor(t, "every MOM up speaking v1", 30*time.Second, func() bool {
		return f.allNodes(func(n admin.NodeInfo) bool { return n.State == admin.NodeUp && n.Protocol == "v1" })
	})
	if out, code := f.migrate("--batch", "2", "--max-batches", "1"); code != 0 || !strings.Contains(out, "paused after 1 batch") {
		t.Fatalf("first batch: exit %d", code)
	}
	n01, n02 := f.procs["n01"], f.procs["n02"]
	if st := f.report().Nodes; !slices.ContainsFunc(st, func(n admin.NodeInfo) bool { return n.Name == "n01" && n.Upgraded }) {
		t.Fatalf("n01 not upgraded by the first batch: %+v", st)
	}
	// A PING from n02's address and key admitted by the upgraded n01, to
	// replay after n01's crash.
	thief := stealKeys(t, n02).asFreshSender()
	cp := thief.seal(n02.ip, n01.ip)
	if err := thief.deliver(n02.ip, n01.imAddr(f.imPort), cp); err != nil {
		t.Fatalf("n02 -> n01 refused before the crash: %v", err)
	}

	node, _ := f.migrateCrash(func() {
		f.server.kill()
		f.procs["n01"].kill()
	}, "--batch", "2")
	if node != "n03" && node != "n04" {
		t.Fatalf("the crash came at the restart of %s, want one of the second batch", node)
	}
	// What the site's service manager does: start the daemons again, each
	// as configured (n01 upgraded; n03 and n04 not yet, the interrupted
	// restart may or may not have stopped one).
	f.startServer()
	f.startMOM("n01", "", "ping")
	for _, n := range []string{"n03", "n04"} {
		if err := os.Remove(filepath.Join(f.hookDir, n+".next")); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if m := f.procs[n]; m.exited() || n == node {
			m.stop()
			f.startMOM(n, "", "follow")
		}
	}
	for _, n := range []string{"n01", "n02", "n03", "n04"} {
		f.waitUp(n)
	}
	wantReject(t, "replay of n02's pre-crash PING to the restarted n01", thief.deliver(n02.ip, n01.imAddr(f.imPort), cp), proto.RejectReplay)

	out, code := f.migrate("--batch", "2")
	if code != 0 || !strings.Contains(out, "resuming the migrate") || !strings.Contains(out, "migration complete") {
		t.Fatalf("re-run after the crash: exit %d", code)
	}
	rep := f.report()
	if rep.Server.Mode != "ping" || len(rep.Nodes) != 4 ||
		!f.allNodes(func(n admin.NodeInfo) bool { return n.Upgraded && n.Versions == "v2" && n.State == admin.NodeUp }) {
		t.Fatalf("after the resumed migration: mode %s nodes %+v", rep.Server.Mode, rep.Nodes)
	}
	var moms []*momProc
	for _, n := range []string{"n01", "n02", "n03", "n04"} {
		moms = append(moms, f.procs[n])
	}
	f.requireNodes("n01", "n02", "n03", "n04")
	f.waitConverged(moms...)
	wantReject(t, "replay of n02's pre-crash PING after the migration", thief.deliver(n02.ip, f.procs["n01"].imAddr(f.imPort), cp), proto.RejectReplay)
	f.mutuallyAdmitted(moms...)
	// A re-run changes nothing.
	if out, code := f.migrate("--batch", "2"); code != 0 || !strings.Contains(out, "migration complete") || strings.Contains(out, "restart n") {
		t.Fatalf("re-run of the finished migration: exit %d", code)
	}
}

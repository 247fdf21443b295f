package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/proto"
)

// MOMs with a list of servers (docs/HA.md section 7): two momgate-server
// processes that hold the same identity (one initialized, enrolled state
// directory, stopped cleanly and copied), on 127.0.0.1 and 127.0.0.2, and
// MOMs given both. The replication between real members is the server
// side of issue 14; here the two servers are the same state at the moment
// of the copy, which is all a failover of the MOM's control session
// needs: the group identity the MOMs pinned.

// serverPair is a cluster whose MOMs were enrolled at server A and then
// given the list A,B, where B runs on a copy of A's state directory.
type serverPair struct {
	*cluster
	addrA, addrB string
	dirB         string
	serverB      *proc
}

// newServerPair starts server A (newCluster), enrolls the MOMs named in
// moms (name -> IP) at it with the list A,B, stops A, copies its state
// directory for B, checks the copy with `state check`, starts A, waits for
// every MOM on it, and starts B.
func newServerPair(t *testing.T, moms map[string]string, momFlags ...string) *serverPair {
	t.Helper()
	var ips []string
	for _, ip := range moms {
		ips = append(ips, ip)
	}
	c := newCluster(t, ips...)
	p := &serverPair{cluster: c, addrA: c.srvAddr, dirB: filepath.Join(c.dir, "server-b")}
	p.addrB = fmt.Sprintf("127.0.0.2:%d", freePort(t, "127.0.0.2"))
	for name, ip := range moms {
		p.startMomVia(name, ip, c.createNode(name, ip), p.addrA+","+p.addrB, momFlags...)
	}
	for name := range moms {
		c.waitUp(name)
	}
	c.server.stop() // a cleanly stopped directory: every file closed and synced
	copyStateDir(t, c.srvDir, p.dirB)
	if r := run(t, "", "momgate-server", "state", "check", "--state-dir", p.dirB); r.code != 0 {
		t.Fatalf("state check of the copied directory: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	c.startServer()
	for name := range moms {
		p.waitOn(name, p.addrA) // on A before B is up: nobody lands on B by chance
	}
	p.startB()
	return p
}

// startB starts server B on its copy of the state directory.
func (p *serverPair) startB() {
	p.t.Helper()
	p.serverB = start(p.t, "server-b", "momgate-server", "run", "--state-dir", p.dirB, "--listen", p.addrB, "--log-level", "debug")
	waitFor(p.t, "server B admin socket", 20*time.Second, func() bool {
		return run(p.t, "", "momgate-qmgr", "--state-dir", p.dirB, "-c", "list node").code == 0
	})
}

// copyStateDir copies a server state directory: directories and regular
// files with their modes, the lock file included (flock is per open
// file, so the copy's lock is its own); the admin socket is not copied
// (the server makes its own).
func copyStateDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, fi.Mode().Perm())
		case !fi.Mode().IsRegular():
			return nil // admin.sock
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, src); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s to %s: %v", from, to, err)
	}
}

// waitOn waits until MOM name has an established control session with
// server addr.
func (c *cluster) waitOn(name, addr string) {
	c.t.Helper()
	waitFor(c.t, name+" connected to "+addr, 30*time.Second, func() bool {
		st, ok := c.fullStatus(c.moms[name])
		return ok && st.Connected && st.Server == addr
	})
}

// jobNamed is job name's row on m.
func (c *cluster) jobNamed(m *momProc, name string) admin.JobInfo {
	c.t.Helper()
	for _, j := range c.jobList(m) {
		if j.Name == name {
			return j
		}
	}
	c.t.Fatalf("no job %s on %s", name, m.name)
	return admin.JobInfo{}
}

// requireNoDisruption fails the test if job name on m had a disruption.
func (c *cluster) requireNoDisruption(m *momProc, name, when string) {
	c.t.Helper()
	j := c.jobNamed(m, name)
	for _, s := range j.Sisters {
		if s.Disruptions != 0 {
			c.t.Errorf("%s: job %s sister %s: %d disruptions (last error %s)", when, name, s.Name, s.Disruptions, s.LastError)
		}
	}
	c.t.Logf("%s: job %s on %s: polls ok %d, failed %d, re-admissions %d", when, name, m.name, j.PollsOK, j.PollsFailed, j.Readmissions)
}

// TestMomFailsOverToTheNextServer: kill -9 of the server the MOMs are on
// moves every MOM to the other server of its list within the deadline,
// while the sisters keep admitting each other (a fresh PING swap on every
// poll of the wait, and a job's polls without a disruption); status and
// metrics show the switch.
func TestMomFailsOverToTheNextServer(t *testing.T) {
	metricsPort := freePort(t, "127.0.0.11")
	p := newServerPair(t, map[string]string{"a": "127.0.0.11", "b": "127.0.0.12"})
	a, b := p.moms["a"], p.moms["b"]
	// Restart a with metrics (its enrollment is done; the list is the same).
	a.stop()
	a = p.startMomVia("a", a.ip, "", p.addrA+","+p.addrB, "--metrics-listen", fmt.Sprintf("127.0.0.11:%d", metricsPort))
	p.waitOn("a", p.addrA)
	metricsURL := fmt.Sprintf("http://127.0.0.11:%d/metrics", metricsPort)
	if mm := scrapeMetrics(t, metricsURL); mm[`momgate_control_server{server="`+p.addrA+`"}`] != 1 || mm[`momgate_control_server{server="`+p.addrB+`"}`] != 0 {
		t.Fatalf("control_server before the failover: %v", mm)
	}
	st, _ := p.fullStatus(a)
	if strings.Join(st.Servers, ",") != p.addrA+","+p.addrB || st.Server != p.addrA {
		t.Fatalf("status before the failover: server %s, servers %v", st.Server, st.Servers)
	}
	text := run(t, "", "momgate-mom", "status", "--state-dir", a.dir)
	if !strings.Contains(text.stdout, "server = "+p.addrA+": connected") || !strings.Contains(text.stdout, "servers = "+p.addrA+","+p.addrB+" (0 switches") {
		t.Fatalf("status text:\n%s", text.stdout)
	}
	before, _ := p.fullStatus(b)
	p.startJob(a, "j1", "100ms", "b")
	p.waitPolls(a, "j1", "b", 3)
	p.mutuallyAdmitted(b, a)

	p.server.kill() // kill -9 of the server both MOMs are on
	killed := time.Now()
	admitted := 0
	waitFor(t, "every MOM on server B", 15*time.Second, func() bool {
		p.mutuallyAdmitted(b, a) // sisters admit each other throughout
		admitted++
		sa, okA := p.fullStatus(a)
		sb, okB := p.fullStatus(b)
		return okA && okB && sa.Connected && sa.Server == p.addrB && sb.Connected && sb.Server == p.addrB
	})
	t.Logf("kill -9 of server A to both MOMs on B: %s (draft, loaded machine); %d fresh PING admissions meanwhile", time.Since(killed).Round(time.Millisecond), admitted)
	p.waitPolls(a, "j1", "b", 3)
	p.requireNoDisruption(a, "j1", "after the failover")
	p.mutuallyAdmitted(a, b)

	after, _ := p.fullStatus(b)
	if after.ServerSwitches != before.ServerSwitches+1 {
		t.Errorf("b: server switches %d -> %d, want one more", before.ServerSwitches, after.ServerSwitches)
	}
	mm := scrapeMetrics(t, metricsURL)
	if mm["momgate_server_switches_total"] != 1 || mm[`momgate_control_server{server="`+p.addrB+`"}`] != 1 || mm[`momgate_control_server{server="`+p.addrA+`"}`] != 0 {
		t.Errorf("a's metrics after the failover: switches %v, control_server A %v B %v", mm["momgate_server_switches_total"],
			mm[`momgate_control_server{server="`+p.addrA+`"}`], mm[`momgate_control_server{server="`+p.addrB+`"}`])
	}
	// B knows both MOMs as up: they proved the identity B holds.
	waitFor(t, "both nodes up at server B", 20*time.Second, func() bool {
		r := run(t, "", "momgate-qmgr", "--state-dir", p.dirB, "--json", "-c", "list node")
		var ns []nodeInfo
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ns) != nil {
			return false
		}
		up := 0
		for _, n := range ns {
			if n.State == "up" {
				up++
			}
		}
		return up == 2
	})

	// A comes back; the MOMs stay on B (a MOM stays on the server it
	// reached) until B fails, then return to A.
	p.startServer()
	p.serverB.kill()
	p.waitOn("a", p.addrA)
	p.waitOn("b", p.addrA)
	p.requireNoDisruption(a, "j1", "after failing back")
}

// TestSistersAdmitWithNoServer: with every server of the list killed,
// two MOMs still admit each other by PING (fresh swaps both ways), a
// job's polls go on without a disruption, and a sister restarted while no
// server is up is admitted again by the job (a new admission from
// keyrings alone). The MOMs keep trying the list, with backoff.
func TestSistersAdmitWithNoServer(t *testing.T) {
	p := newServerPair(t, map[string]string{"a": "127.0.0.13", "b": "127.0.0.14"})
	a, b := p.moms["a"], p.moms["b"]
	p.startJob(a, "j1", "100ms", "b")
	p.waitPolls(a, "j1", "b", 3)
	p.server.kill()
	p.serverB.kill()
	waitFor(t, "both MOMs without a server", 20*time.Second, func() bool {
		sa, okA := p.fullStatus(a)
		sb, okB := p.fullStatus(b)
		return okA && okB && !sa.Connected && !sb.Connected
	})
	p.mutuallyAdmitted(a, b)
	p.waitPolls(a, "j1", "b", 5)

	// b restarts (clean stop, same state) while no server is up: a's job
	// re-admits it by PING.
	readmitBefore := p.jobNamed(a, "j1").Readmissions
	b.stop()
	b = p.startMomVia("b", b.ip, "", p.addrA+","+p.addrB)
	p.waitAdmin(b)
	waitFor(t, "a's job re-admits the restarted b", 30*time.Second, func() bool {
		return p.jobNamed(a, "j1").Readmissions > readmitBefore
	})
	p.waitPolls(a, "j1", "b", 5)
	p.mutuallyAdmitted(b, a)
	p.requireNoDisruption(a, "j1", "no server")
	for _, m := range []*momProc{a, b} {
		if st, _ := p.fullStatus(m); st.Connected || st.ServerError == "" {
			t.Errorf("%s: connected %v, server error %q: want not connected, with the last error", m.name, st.Connected, st.ServerError)
		}
	}
	// The servers come back: the MOMs reconnect by themselves.
	p.startServer()
	p.waitOn("a", p.addrA)
	p.waitOn("b", p.addrA)
}

// fakeFollower listens on addr and answers every connection with one
// NotLeader naming leader (zero: none known), then closes; it counts the
// connections it got.
type fakeFollower struct {
	ln    net.Listener
	conns atomic.Int64
}

func startFakeFollower(t *testing.T, addr string, leader string) *fakeFollower {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFollower{ln: ln}
	nl := &proto.NotLeader{}
	if leader != "" {
		ap, err := net.ResolveTCPAddr("tcp", leader)
		if err != nil {
			t.Fatal(err)
		}
		nl.Addr, nl.Port, nl.Leader = proto.AddrFrom(ap.AddrPort().Addr()), ap.AddrPort().Port(), "s1"
	}
	frame := proto.AppendFrame(nil, nl)
	go func() { // owned by the listener: ends when Cleanup closes it
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			c.Write(frame)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return f
}

// TestMomFollowsNotLeaderOnlyWithinItsList: a MOM whose first server
// answers NotLeader naming the real server (in its list) goes there at
// once, skipping the server listed between; a MOM whose first server
// names an address outside its list (an attacker's) never dials that
// address and reaches the real server by walking its list. Both count
// the redirect by outcome.
func TestMomFollowsNotLeaderOnlyWithinItsList(t *testing.T) {
	c := newCluster(t, "127.0.0.15", "127.0.0.16")
	a := c.addMom("a", "127.0.0.15")
	b := c.addMom("b", "127.0.0.16")
	port := freePort(t, "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6")
	attacker := startFakeFollower(t, fmt.Sprintf("127.0.0.6:%d", port), "") // counts who dials it
	toServer := startFakeFollower(t, fmt.Sprintf("127.0.0.3:%d", port), c.srvAddr)
	skipped := startFakeFollower(t, fmt.Sprintf("127.0.0.4:%d", port), "")
	toAttacker := startFakeFollower(t, fmt.Sprintf("127.0.0.5:%d", port), attacker.ln.Addr().String())

	a.stop()
	a = c.startMomVia("a", a.ip, "", strings.Join([]string{toServer.ln.Addr().String(), skipped.ln.Addr().String(), c.srvAddr}, ","))
	b.stop()
	b = c.startMomVia("b", b.ip, "", strings.Join([]string{toAttacker.ln.Addr().String(), c.srvAddr}, ","))
	c.waitOn("a", c.srvAddr)
	c.waitOn("b", c.srvAddr)

	sa, _ := c.fullStatus(a)
	if sa.ServerRedirects["followed"] < 1 || skipped.conns.Load() != 0 {
		t.Errorf("a: redirects %v, the server between got %d connections: want followed and none", sa.ServerRedirects, skipped.conns.Load())
	}
	sb, _ := c.fullStatus(b)
	if sb.ServerRedirects["outside_list"] < 1 || sb.ServerRedirects["followed"] != 0 {
		t.Errorf("b: redirects %v: want outside_list and none followed", sb.ServerRedirects)
	}
	if n := attacker.conns.Load(); n != 0 {
		t.Errorf("the address outside the list got %d connections", n)
	}
	if !strings.Contains(b.out.String(), "not in this MOM's --server list: not followed") {
		t.Errorf("b logged no refusal of the redirect")
	}
	c.mutuallyAdmitted(a, b)
}

// TestNoDowngradeOnAnotherServer: the no-downgrade rule belongs to the
// pinned identity, not to one address. A MOM that had a sealed session
// with server A fails over to server B through an attacker who cuts the
// Welcome's session trailer: the MOM refuses the unsealed session
// (session_downgrade, audited), walks its list on, and logs in to B
// sealed once the attacker stops.
func TestNoDowngradeOnAnotherServer(t *testing.T) {
	p := newServerPair(t, map[string]string{"a": "127.0.0.17"})
	px := newTamperProxy(t, "127.0.0.2", p.addrB) // on B's IP: the PINGs name it
	a := p.moms["a"]
	a.stop()
	a = p.startMomVia("a", a.ip, "", p.addrA+","+px.addr())
	p.waitOn("a", p.addrA)
	p.waitSealedControl(a)

	base, mark := p.momCounters(a), auditMark(t, a.auditPath())
	fired := px.arm(fromTarget, proto.TypeWelcome, stripWelcomeTrailer)
	p.server.kill()
	waitFired(t, "strip the trailer of B's Welcome", fired)
	waitRejected(t, "a", func() counters { return p.momCounters(a) }, base, "session_downgrade", 1)
	waitAudit(t, a.auditPath(), mark, "session_downgrade", "127.0.0.2", "no session trailer")
	p.waitOn("a", px.addr())
	if st := p.waitSealedControl(a); st.Server != px.addr() {
		t.Fatalf("sealed control session with %s, want B (%s)", st.Server, px.addr())
	}
}

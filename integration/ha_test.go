package integration

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/proto"
)

// Tests of a replicated server group (docs/HA.md) with the real binaries.

// startGroupServer runs c's server as a member of a group replicating on
// repl (the state directory upgrades in place on the first such start).
func (c *cluster) startGroupServer(name, repl string) {
	c.t.Helper()
	c.server = start(c.t, "server-"+name, "momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr,
		"--replication-listen", repl, "--member-name", name, "--raft-heartbeat", "1s", "--log-level", "debug")
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
	if r := run(t, "", "momgate-qmgr", "--state-dir", c.srvDir, "-c", "delete server s1"); r.code == 0 || !strings.Contains(r.stderr, "only voter") {
		t.Fatalf("delete server of a group's only member: code %d, %q", r.code, r.stderr)
	}
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

// member is one server of a test group.
type member struct {
	name, ip      string
	dir           string
	control, repl string
	proc          *proc
}

// haGroup is a group of servers on 127.0.0.1, .2, .3 (distinct ports).
type haGroup struct {
	t       *testing.T
	c       *cluster // s1's cluster: MOMs and helpers
	members map[string]*member
	env     []string // every member's extra environment (a crash hook)
}

func (g *haGroup) qmgr(m *member, directive string, json bool) result {
	g.t.Helper()
	args := []string{"momgate-qmgr", "--state-dir", m.dir}
	if json {
		args = append(args, "--json")
	}
	return run(g.t, "", append(args, "-c", directive)...)
}

// newHAGroup upgrades a fresh single server into s1 and joins s2 and s3.
func newHAGroup(t *testing.T, momIPs ...string) *haGroup {
	t.Helper()
	return newHAGroupEnv(t, nil, nil, momIPs...)
}

// newHAGroupEnv is newHAGroup whose members run with env, every one
// (started, joined or restarted); before, if not nil, runs on the single
// server first, so that what it does (MOMs it enrolls) is done before
// env arms a crash hook.
func newHAGroupEnv(t *testing.T, env []string, before func(*cluster), momIPs ...string) *haGroup {
	t.Helper()
	c := newCluster(t, momIPs...)
	if before != nil {
		before(c)
	}
	c.server.stop()
	g := &haGroup{t: t, c: c, members: map[string]*member{}, env: env}
	s1 := &member{name: "s1", ip: "127.0.0.1", dir: c.srvDir, control: c.srvAddr,
		repl: fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))}
	g.members["s1"] = s1
	g.runMember(s1)
	g.waitLeader(s1)
	for i, name := range []string{"s2", "s3"} {
		ip := fmt.Sprintf("127.0.0.%d", i+2)
		g.join(name, ip, false)
	}
	return g
}

func (g *haGroup) runMember(m *member) {
	g.t.Helper()
	m.proc = startEnv(g.t, m.name, g.env, "momgate-server", "run", "--state-dir", m.dir, "--listen", m.control,
		"--replication-listen", m.repl, "--member-name", m.name, "--raft-heartbeat", "1s", "--log-level", "debug")
}

// join creates member name on the leader and joins it from a new
// directory.
func (g *haGroup) join(name, ip string, standby bool) *member {
	g.t.Helper()
	m := &member{name: name, ip: ip, dir: filepath.Join(g.c.dir, name),
		control: fmt.Sprintf("%s:%d", ip, freePort(g.t, ip)), repl: fmt.Sprintf("%s:%d", ip, freePort(g.t, ip))}
	tok := g.createServer(name, m.repl, standby)
	m.proc = startEnv(g.t, name, g.env, "momgate-server", "join", "--token", tok, "--state-dir", m.dir, "--listen", m.control,
		"--raft-heartbeat", "1s", "--log-level", "debug")
	g.members[name] = m
	g.waitState(name, "alive")
	return m
}

func (g *haGroup) createServer(name, repl string, standby bool) string {
	g.t.Helper()
	d := fmt.Sprintf("create server %s Address=%s", name, repl)
	if standby {
		d += ",standby=true"
	}
	r := g.qmgr(g.leader(), d, true)
	if r.code != 0 {
		g.t.Fatalf("%s: %s", d, r.stderr)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Token == "" {
		g.t.Fatalf("%s: no token in %q", d, r.stdout)
	}
	return out.Token
}

type groupView struct {
	Server struct {
		Group *struct {
			Member  string `json:"member"`
			Leader  string `json:"leader"`
			Members []struct {
				Name   string `json:"name"`
				Role   string `json:"role"`
				State  string `json:"state"`
				Behind uint64 `json:"behind"`
			} `json:"members"`
		} `json:"group"`
	} `json:"server"`
}

// view is list server as member m answers it (ok false if it does not).
func (g *haGroup) view(m *member) (groupView, bool) {
	var v groupView
	r := g.qmgr(m, "list server", true)
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.Server.Group == nil {
		return v, false
	}
	return v, true
}

// leader waits for a live member that says it leads, and returns it.
func (g *haGroup) leader() *member {
	g.t.Helper()
	var found *member
	waitFor(g.t, "a leader", 60*time.Second, func() bool {
		for _, m := range g.members {
			if m.proc == nil || m.proc.exited() {
				continue
			}
			if v, ok := g.view(m); ok && v.Server.Group.Leader == m.name {
				if r := g.qmgr(m, "list node", true); r.code == 0 {
					found = m
					return true
				}
			}
		}
		return false
	})
	return found
}

func (g *haGroup) waitLeader(m *member) {
	g.t.Helper()
	if l := g.leader(); l != m {
		g.t.Fatalf("leader %s, want %s", l.name, m.name)
	}
}

// state is member name's state and role in the leader's list server.
func (g *haGroup) state(name string) (state, role string) {
	v, ok := g.view(g.leader())
	if !ok {
		return "", ""
	}
	for _, m := range v.Server.Group.Members {
		if m.Name == name {
			return m.State, m.Role
		}
	}
	return "", ""
}

func (g *haGroup) waitState(name, prefix string) {
	g.t.Helper()
	if prefix == "alive" {
		g.waitAlive(name)
		return
	}
	waitFor(g.t, fmt.Sprintf("%s %s in list server", name, prefix), 60*time.Second, func() bool {
		st, _ := g.state(name)
		return strings.Contains(st, prefix)
	})
}

// waitAlive waits until member name is alive and in sync.
func (g *haGroup) waitAlive(name string) {
	g.t.Helper()
	waitFor(g.t, name+" alive in list server", 60*time.Second, func() bool {
		st, _ := g.state(name)
		return st == "alive"
	})
}

// write runs a directive on the leader until it succeeds (an election
// under load may move the leadership between two calls); a directive whose
// earlier outcome was unknown may find its own effect ("already exists").
func (g *haGroup) write(directive string) {
	g.t.Helper()
	var last result
	waitFor(g.t, directive+" committed", 60*time.Second, func() bool {
		last = g.qmgr(g.leader(), directive, false)
		return last.code == 0 || strings.Contains(last.stderr, "already exists")
	})
}

// nodes lists the nodes as member m has them (the leader, if m no longer
// leads).
func (g *haGroup) nodes(m *member) map[string]bool {
	g.t.Helper()
	var r result
	waitFor(g.t, "list node on the leader", 30*time.Second, func() bool {
		if r = g.qmgr(m, "list node", true); r.code != 0 {
			m = g.leader()
		}
		return r.code == 0
	})
	var ns []nodeInfo
	if err := json.Unmarshal([]byte(r.stdout), &ns); err != nil {
		g.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, n := range ns {
		out[n.Name] = true
	}
	return out
}

// notLeader dials m's control address and reads the one frame it sends.
func (g *haGroup) notLeader(m *member) *proto.NotLeader {
	g.t.Helper()
	c, err := net.DialTimeout("tcp", m.control, 5*time.Second)
	if err != nil {
		g.t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		g.t.Fatalf("read from %s: %v", m.name, err)
	}
	msg, err := proto.Unmarshal(b)
	if err != nil {
		g.t.Fatalf("frame from %s: %v (%x)", m.name, err, b)
	}
	nl, ok := msg.(*proto.NotLeader)
	if !ok {
		g.t.Fatalf("%s sent %T, want NotLeader", m.name, msg)
	}
	return nl
}

// TestHAGroupFailover: three members; kill -9 of the leader while create
// node runs: every acknowledged create is on the new leader, a token
// created before the kill enrolls at the new leader once and only once;
// a follower names the leader; a minority cannot commit.
func TestHAGroupFailover(t *testing.T) {
	g := newHAGroup(t, "127.0.0.41", "127.0.0.42")
	s1 := g.leader()
	if r := g.qmgr(g.members["s2"], "create node x Mom=127.0.0.99", false); r.code == 0 || !strings.Contains(r.stderr, "s1 leads") {
		t.Fatalf("create node on a follower: code %d, %q", r.code, r.stderr)
	}
	// A follower answers a MOM's control connection with NotLeader, naming
	// s1 and its control address (docs/PROTOCOL.md 4.11).
	nl := g.notLeader(g.members["s2"])
	if !nl.Known() || nl.Leader != "s1" || netip.AddrPortFrom(nl.Addr.Netip(), nl.Port).String() != s1.control {
		t.Fatalf("NotLeader from s2: %+v, want s1 at %s", nl, s1.control)
	}
	acked := map[string]string{} // node -> token
	stop := make(chan struct{})
	done := make(chan struct{})
	var mu sync.Mutex
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("c%03d", i)
			r := g.qmgr(s1, fmt.Sprintf("create node %s Mom=127.0.1.%d,Port=%d", name, i+1, g.c.imPort), true)
			if r.code != 0 {
				return // the leader died
			}
			var out struct {
				Token string `json:"token"`
			}
			if json.Unmarshal([]byte(r.stdout), &out) == nil {
				mu.Lock()
				acked[name] = out.Token
				mu.Unlock()
			}
			if i > 200 {
				return
			}
		}
	}()
	waitFor(t, "a few creates acknowledged", 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 3
	})
	s1.proc.kill()
	<-done
	close(stop)
	s1.proc = nil
	l := g.leader()
	if l == s1 {
		t.Fatal("s1 still leads after kill -9")
	}
	have := g.nodes(l)
	mu.Lock()
	for n := range acked {
		if !have[n] {
			t.Errorf("acknowledged create node %s lost at the failover", n)
		}
	}
	mu.Unlock()

	// A node created at the old leader enrolls at the new one; its token
	// is refused a second time.
	g.write(fmt.Sprintf("create node a Mom=127.0.0.41,Port=%d", g.c.imPort))
	l = g.leader()

	// A minority cannot commit: stop the other survivor.
	var other *member
	for _, m := range g.members {
		if m != l && m.proc != nil {
			other = m
		}
	}
	other.proc.kill()
	other.proc = nil
	r := g.qmgr(l, "create node minority Mom=127.0.0.98", false)
	if r.code == 0 {
		t.Fatal("a member without a quorum committed create node")
	}
	// Not acknowledged; raft may still commit the entry once a quorum is
	// back (its outcome is unknown, and qmgr says so), never before.
	if !strings.Contains(r.stderr, "outcome is unknown") && !strings.Contains(r.stderr, "not_leader") {
		t.Fatalf("create node without a quorum: %q", r.stderr)
	}
	// s1 comes back: a quorum again, and s1 catches up.
	g.runMember(s1)
	g.write("create node back Mom=127.0.0.97")
}

// TestHAGroupMembers: a member stopped (SIGSTOP) shows "needs sync" while
// the group writes on, and catches up once resumed; a standby replicates
// but never leads, even when the leader dies; join refuses a directory
// with state unless --force, which backs it up first.
func TestHAGroupMembers(t *testing.T) {
	g := newHAGroup(t)
	l := g.leader()
	var f *member
	for _, m := range g.members {
		if m != l {
			f = m
			break
		}
	}
	if err := f.proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		g.write(fmt.Sprintf("create node w%d Mom=127.0.2.%d", i, i+1))
	}
	g.waitState(f.name, "needs sync")
	// Asked of whoever leads now: under load the leadership may have moved
	// to the other voter while the writes went on, and only the leader
	// knows the followers' lag.
	waitFor(t, "list server text with "+f.name+" stopped to say needs sync", 60*time.Second, func() bool {
		return strings.Contains(g.qmgr(g.leader(), "list server", false).stdout, "needs sync")
	})
	if err := f.proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	g.waitState(f.name, "alive")

	// A standby: it replicates, and never leads.
	sb := g.join("s4", "127.0.0.4", true)
	if st, role := g.state("s4"); role != "standby" || st != "alive" {
		t.Fatalf("s4: role %q state %q", role, st)
	}
	l.proc.kill()
	l.proc = nil
	nl := g.leader()
	if nl == sb {
		t.Fatal("the standby leads")
	}
	if v, ok := g.view(sb); ok && v.Server.Group.Leader == "s4" {
		t.Fatal("the standby says it leads")
	}
	have := g.nodes(nl)
	for i := 0; i < 5; i++ {
		if !have[fmt.Sprintf("w%d", i)] {
			t.Fatalf("w%d lost", i)
		}
	}

	// join on a directory with state: refused, then forced with a backup.
	dir := filepath.Join(g.c.dir, "s5")
	if r := run(t, "", "momgate-server", "init", "--state-dir", dir); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	repl := fmt.Sprintf("127.0.0.5:%d", freePort(t, "127.0.0.5"))
	tok := g.createServer("s5", repl, true)
	ctl := fmt.Sprintf("127.0.0.5:%d", freePort(t, "127.0.0.5"))
	r := run(t, "", "momgate-server", "join", "--token", tok, "--state-dir", dir, "--listen", ctl)
	if r.code == 0 || !strings.Contains(r.stderr, "holds") || !strings.Contains(r.stderr, "--force") {
		t.Fatalf("join on a directory with state: code %d, %q", r.code, r.stderr)
	}
	p := start(t, "s5", "momgate-server", "join", "--force", "--token", tok, "--state-dir", dir, "--listen", ctl,
		"--raft-heartbeat", "1s")
	g.members["s5"] = &member{name: "s5", ip: "127.0.0.5", dir: dir, control: ctl, repl: repl, proc: p}
	g.waitState("s5", "alive")
	backups, _ := filepath.Glob(filepath.Join(dir, "backup-*", "identity.json"))
	if len(backups) != 1 {
		t.Fatalf("join --force made no backup of the old identity (%v)", backups)
	}

	// delete server: the member leaves list server, and a certificate of
	// the group in its name no longer opens the replication port; one in
	// a current member's name still does (the control).
	if r := g.qmgr(nl, "delete server s5", false); r.code != 0 {
		t.Fatalf("delete server s5: %s", r.stderr)
	}
	waitFor(t, "s5 gone from list server", 60*time.Second, func() bool {
		v, ok := g.view(g.leader())
		if !ok {
			return false
		}
		for _, m := range v.Server.Group.Members {
			if m.Name == "s5" {
				return false
			}
		}
		return true
	})
	g.members["s5"].proc.stop()
	g.members["s5"].proc = nil
	if err := dialReplication(t, nl, "s5"); err == nil {
		t.Fatal("the replication port took a certificate of the deleted member s5")
	}
	waitLogged(t, nl.proc, "s5 was removed with delete server")
	var current *member
	for _, m := range g.members {
		if m != nl && m.proc != nil && m.name != "s5" {
			current = m
		}
	}
	if err := dialReplication(t, nl, current.name); err != nil {
		t.Fatalf("a certificate of current member %s refused: %v", current.name, err)
	}

	// delete server of the leader itself (replacing the leader's host):
	// with the old leader back there are voters enough; the leader leaves,
	// steps down, and the others elect one of themselves.
	g.runMember(l)
	g.waitAlive(l.name)
	if r := g.qmgr(nl, "delete server "+nl.name, false); r.code != 0 {
		t.Fatalf("delete server %s on itself: %s", nl.name, r.stderr)
	}
	waitLogged(t, nl.proc, "this member deleted itself from the group")
	nl.proc.stop()
	nl.proc = nil
	next := g.leader()
	if next == nl || next == sb {
		t.Fatalf("after deleting the leader %s, %s leads", nl.name, next.name)
	}
	g.write("create node after-leader-deleted Mom=127.0.2.99")
	if v, ok := g.view(next); !ok || len(v.Server.Group.Members) == 0 {
		t.Fatalf("list server on %s: %+v", next.name, v)
	} else {
		for _, m := range v.Server.Group.Members {
			if m.Name == nl.name {
				t.Fatalf("the deleted leader %s is still listed: %+v", nl.name, v.Server.Group.Members)
			}
		}
	}
}

// dialReplication opens a raft connection to m's replication port with a
// member certificate for name, minted from the group CA in m's state
// directory (what a member, or a host that kept a member's files, holds),
// and returns the handshake's error.
func dialReplication(t *testing.T, m *member, name string) error {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(m.dir, "group-ca.json"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := group.DecodeCA(data)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := group.NewCredentials(group.CredentialsConfig{CA: ca, Member: name, Now: time.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", m.repl, creds.ClientConfig())
	if err != nil {
		return err
	}
	defer c.Close()
	// TLS 1.3: the server checks the client's certificate after the
	// client's handshake ends; its refusal arrives as an alert on the
	// first read.
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return nil // accepted: raft waits for an RPC
	}
	return err
}

// follow points the cluster helpers (qmgr, MOMs started from now on) at
// member m.
func (g *haGroup) follow(m *member) {
	g.c.srvDir, g.c.srvAddr = m.dir, m.control
}

// TestHAGroupFailoverMoms: kill -9 of the leader right after delete node
// was acknowledged, with the rotation it started under way: on the new
// leader the node stays deleted (its MOM is refused and stops), the
// rotation completes, the surviving MOM catches up by its identity; a
// token issued by the old leader enrolls at the new one once, and its
// second use is refused.
func TestHAGroupFailoverMoms(t *testing.T) {
	g := newHAGroup(t, "127.0.0.51", "127.0.0.52", "127.0.0.53")
	s1 := g.leader()
	g.c.mustQmgr("set server key_grace=1s")
	a := g.c.addMom("a", "127.0.0.51")
	b := g.c.addMom("b", "127.0.0.52")
	tokC := g.c.createNode("c", "127.0.0.53")
	g.c.mutuallyAdmitted(a, b)
	g.c.mustQmgr("delete node b")
	s1.proc.kill()
	s1.proc = nil
	l := g.leader()
	g.follow(l)
	if _, ok := g.c.node("b"); ok {
		t.Fatal("deleted node b is back at the new leader")
	}
	if _, ok := g.c.node("c"); !ok {
		t.Fatal("node c, created at the old leader, missing at the new one")
	}
	a.stop()
	b.stop()
	a = g.c.startMom("a", "127.0.0.51", "")
	b = g.c.startMom("b", "127.0.0.52", "")
	if code := b.waitExit(t, 30*time.Second); code != 4 {
		t.Fatalf("deleted b's MOM at the new leader: exit %d, want 4 (deleted)", code)
	}
	c := g.c.startMom("c", "127.0.0.53", tokC)
	g.c.waitUp("a")
	g.c.waitUp("c")
	g.c.waitRotated(1)
	g.c.waitConverged(a, c)
	g.c.mutuallyAdmitted(a, c)

	// The same token again, from c's address: refused as used.
	dir := filepath.Join(g.c.dir, "c-again")
	again := start(t, "c-again", "momgate-mom", "run", "--state-dir", dir, "--server", g.c.srvAddr,
		"--listen", fmt.Sprintf("127.0.0.53:%d", freePort(t, "127.0.0.53")), "--enroll", tokC, "--log-level", "debug")
	waitFor(t, "the second use of c's token refused", 30*time.Second, func() bool {
		r := g.c.qmgr("--json", "-c", "list server")
		return strings.Contains(r.stdout, `"token_used"`)
	})
	again.stop()
	if n, _ := g.c.node("c"); n.State != "up" {
		t.Fatalf("c after its token was used again: %+v", n)
	}
}

// TestHAGroupRotationFailover: kill -9 of the leader in the middle of a
// rotate key (the new key active, the old one in its grace): the new
// leader resumes the rotation where the old one stopped and completes it;
// the MOMs, reconnected to it, converge on the new key and admit each
// other; the key the old leader activated is the key the new one keeps.
func TestHAGroupRotationFailover(t *testing.T) {
	g := newHAGroup(t, "127.0.0.61", "127.0.0.62")
	s1 := g.leader()
	g.c.mustQmgr("set server key_grace=3s")
	a := g.c.addMom("a", "127.0.0.61")
	b := g.c.addMom("b", "127.0.0.62")
	g.c.mustQmgr("rotate key")
	var activated string
	waitFor(t, "the rotation in its grace period", 30*time.Second, func() bool {
		kl, ok := g.c.keyList()
		if ok && kl.Rotation.Phase == "grace" {
			activated = kl.Rotation.NewKey
			return true
		}
		return false
	})
	s1.proc.kill()
	s1.proc = nil
	g.follow(g.leader())
	a.stop()
	b.stop()
	a = g.c.startMom("a", "127.0.0.61", "")
	b = g.c.startMom("b", "127.0.0.62", "")
	kl := g.c.waitRotated(1)
	if kl.active() != activated {
		t.Fatalf("active key %s after the failover, the old leader activated %s", kl.active(), activated)
	}
	g.c.waitUp("a")
	g.c.waitUp("b")
	g.c.waitConverged(a, b)
	g.c.mutuallyAdmitted(a, b)
}

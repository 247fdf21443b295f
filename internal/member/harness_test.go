package member

import (
	"context"
	"crypto/rand"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/internal/raftnet"
	"github.com/momgate/momgate/replica"
)

// testTiming is fast enough for tests and slow enough for a loaded
// 2-core machine under the race detector: no test depends on it beyond
// "eventually".
// (300 ms with a 150 ms lease lost leadership mid-change under a load of
// 14.)
var testTiming = Timing{HeartbeatTimeout: 500 * time.Millisecond, ElectionTimeout: 500 * time.Millisecond,
	LeaderLeaseTimeout: 400 * time.Millisecond, CommitTimeout: 5 * time.Millisecond}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second) // an election under the race detector and a full make test took over 30 s once
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not synchronisation
	}
}

// testGroup is an in-process HA group on loopback: one 127.0.0.x per member,
// each with its own state directory, killed and restarted at will.
type testGroup struct {
	t     *testing.T
	ca    *group.CA
	tweak func(*Config)
	mu    sync.Mutex
	nodes map[string]*testNode
}

type testNode struct {
	name, ip string
	addr     string // replication address, kept across restarts
	dir      string
	m        *Member
	reg      *testState
	everLed  atomic.Bool
	leading  atomic.Bool
}

func newGroup(t *testing.T) *testGroup {
	ca, err := group.NewCA(rand.Reader, time.Now(), "test")
	if err != nil {
		t.Fatal(err)
	}
	g := &testGroup{t: t, ca: ca, nodes: map[string]*testNode{}}
	t.Cleanup(func() {
		for _, n := range g.nodes {
			if n.m != nil {
				n.m.Close()
			}
		}
	})
	return g
}

// start starts (or restarts, with its state directory) member name on ip.
func (g *testGroup) start(name, ip string) *testNode {
	g.t.Helper()
	g.mu.Lock()
	n := g.nodes[name]
	if n == nil {
		n = &testNode{name: name, ip: ip, addr: ip + ":0", dir: g.t.TempDir()}
		g.nodes[name] = n
	}
	g.mu.Unlock()
	creds, err := group.NewCredentials(group.CredentialsConfig{CA: g.ca, Member: name, Now: time.Now, Rand: rand.Reader})
	if err != nil {
		g.t.Fatal(err)
	}
	var layer *raftnet.Layer
	// A restart binds the port it had; the old socket may take a moment to go.
	waitFor(g.t, "the replication port of "+name, func() bool {
		layer, err = raftnet.Listen(raftnet.Config{Listen: n.addr, Credentials: creds, HandshakeTimeout: 5 * time.Second})
		return err == nil
	})
	n.addr = layer.Addr().String()
	n.reg = newTestState()
	cfg := Config{Name: name, Dir: n.dir, Transport: raftnet.NewTransport(layer, raftnet.TransportConfig{Timeout: 5 * time.Second}),
		State: n.reg, Timing: testTiming,
		OnLeadership: func(leading bool) {
			n.leading.Store(leading)
			if leading {
				n.everLed.Store(true)
			}
		}}
	if g.tweak != nil {
		g.tweak(&cfg)
	}
	m, err := Open(cfg)
	if err != nil {
		g.t.Fatal(err)
	}
	n.m = m
	return n
}

// kill stops a member as kill -9 would: its sockets close, what it
// committed stays on disk.
func (g *testGroup) kill(n *testNode) {
	g.t.Helper()
	if err := n.m.Close(); err != nil {
		g.t.Logf("close %s: %v", n.name, err)
	}
	n.m = nil
	n.leading.Store(false)
}

// leader waits for one live member to lead and returns it.
func (g *testGroup) leader() *testNode {
	g.t.Helper()
	var found *testNode
	waitFor(g.t, "a leader", func() bool {
		found = nil
		for _, n := range g.nodes {
			if n.m != nil && n.leading.Load() {
				if st, err := n.m.Status(); err == nil && st.Leader == n.name {
					found = n
				}
			}
		}
		return found != nil
	})
	return found
}

// apply proposes cmd to the current leader, following leadership changes
// (as the server will); it returns the result of the commit.
func (g *testGroup) apply(cmd replica.Command) replica.Result {
	g.t.Helper()
	for i := 0; ; i++ {
		l := g.leader()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := l.m.Apply(ctx, cmd)
		cancel()
		if err == nil {
			return res
		}
		if !errors.Is(err, ErrNotLeader) || i > 20 {
			g.t.Fatalf("apply %s on %s: %v", cmd.Op(), l.name, err)
		}
	}
}

// freePort finds a port free on ip now.
func freePort(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// hasNodes reports whether the member's state holds every name.
func hasNodes(n *testNode, names ...string) bool {
	for _, name := range names {
		if !n.reg.Node(name) {
			return false
		}
	}
	return true
}

// mustAdd adds n to the group through leader, or through whoever leads
// once leader lost its leadership on the way (a load spike): adding a
// member that is already there changes nothing, so a change whose outcome
// is unknown is simply made again, at most five times.
func (g *testGroup) mustAdd(leader *testNode, n *testNode, standby bool) {
	g.t.Helper()
	var err error
	for try := 0; try < 5; try++ {
		if try > 0 {
			leader = g.leader()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		add := leader.m.AddVoter
		if standby {
			add = leader.m.AddStandby
		}
		err = add(ctx, n.name, n.addr)
		cancel()
		if err == nil {
			return
		}
		if !errors.Is(err, ErrNotLeader) && !errors.Is(err, ErrOutcomeUnknown) {
			break
		}
	}
	g.t.Fatalf("add %s: %v", n.name, err)
}

// three starts s1 (bootstrapped) and adds s2 and s3 as voters.
func (g *testGroup) three() (*testNode, *testNode, *testNode) {
	g.t.Helper()
	s1 := g.start("s1", "127.0.0.1")
	if err := s1.m.Bootstrap(s1.addr); err != nil {
		g.t.Fatal(err)
	}
	s2, s3 := g.start("s2", "127.0.0.2"), g.start("s3", "127.0.0.3")
	l := g.leader()
	g.mustAdd(l, s2, false)
	g.mustAdd(l, s3, false)
	return s1, s2, s3
}

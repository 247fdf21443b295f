package raftnet

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/momgate/momgate/group"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testCA(t testing.TB) *group.CA {
	t.Helper()
	ca, err := group.NewCA(rand.Reader, time.Now(), "test")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func creds(t testing.TB, ca *group.CA, member string) *group.Credentials {
	t.Helper()
	c, err := group.NewCredentials(group.CredentialsConfig{CA: ca, Member: member, Now: time.Now, Rand: rand.Reader})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func listen(t testing.TB, ca *group.CA, member, addr string) *Layer {
	t.Helper()
	l, err := Listen(Config{Listen: addr, Credentials: creds(t, ca, member), HandshakeTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not synchronisation
	}
}

// logFSM is a raft.FSM that keeps every applied command.
type logFSM struct {
	mu   sync.Mutex
	cmds [][]byte
}

func (f *logFSM) Apply(l *raft.Log) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, bytes.Clone(l.Data))
	return nil
}

func (f *logFSM) has(b []byte) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.cmds {
		if bytes.Equal(c, b) {
			return true
		}
	}
	return false
}

func (f *logFSM) Snapshot() (raft.FSMSnapshot, error) {
	return nil, errors.New("no snapshots in this test")
}
func (f *logFSM) Restore(io.ReadCloser) error { return errors.New("no snapshots in this test") }

func raftConfig(id string) *raft.Config {
	c := raft.DefaultConfig()
	c.LocalID = raft.ServerID(id)
	c.HeartbeatTimeout = 300 * time.Millisecond
	c.ElectionTimeout = 300 * time.Millisecond
	c.LeaderLeaseTimeout = 150 * time.Millisecond
	c.CommitTimeout = 5 * time.Millisecond
	c.SnapshotThreshold = 1 << 30
	c.Logger = hclog.NewNullLogger()
	return c
}

// startRaft runs a raft node on trans with in-memory stores; bootstrap
// makes it the group's only voter.
func startRaft(t testing.TB, id string, trans raft.Transport, bootstrap bool) (*raft.Raft, *logFSM) {
	t.Helper()
	fsm := &logFSM{}
	store := raft.NewInmemStore()
	snaps := raft.NewInmemSnapshotStore()
	if bootstrap {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: raft.ServerID(id), Address: trans.LocalAddr()}}}
		if err := raft.BootstrapCluster(raftConfig(id), store, store, snaps, trans, cfg); err != nil {
			t.Fatal(err)
		}
	}
	r, err := raft.NewRaft(raftConfig(id), fsm, store, store, snaps, trans)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Shutdown().Error() })
	return r, fsm
}

// tap is a TCP proxy on its own loopback address that records every byte
// it forwards, both ways.
type tap struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	seen   bytes.Buffer
	conns  []net.Conn
	closed bool
}

func newTap(t testing.TB, addr, target string) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &tap{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tap) accept() {
	defer p.wg.Done()
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			in.Close()
			continue
		}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			in.Close()
			out.Close()
			return
		}
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.copy(out, in)
		go p.copy(in, out)
	}
}

func (p *tap) copy(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			p.seen.Write(buf[:n])
			p.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

func (p *tap) captured() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.seen.Bytes())
}

func (p *tap) close() {
	p.mu.Lock()
	p.closed = true
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
	p.wg.Wait()
}

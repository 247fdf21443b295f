package pbsauth

import (
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// clock is a settable wall clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// cluster is a key source: one AEAD per key id, seed bytes per cluster.
type cluster struct {
	active uint32
	aeads  map[uint32]cipher.AEAD
}

func newCluster(t testing.TB, seed byte, active uint32) *cluster {
	t.Helper()
	var secret [32]byte
	for i := range secret {
		secret[i] = seed + byte(i)
	}
	a, err := chacha20poly1305.NewX(secret[:])
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{active: active, aeads: map[uint32]cipher.AEAD{active: a}}
}

func (c *cluster) Open(id uint32) cipher.AEAD  { return c.aeads[id] }
func (c *cluster) Seal() (uint32, cipher.AEAD) { return c.active, c.aeads[c.active] }

// directory is a registry: node id -> name and address, and a deny set.
type directory struct {
	mu     sync.Mutex
	nodes  map[proto.NodeID]dirEntry
	denied map[proto.NodeID]bool
}

type dirEntry struct {
	name string
	addr proto.Addr
}

func newDirectory() *directory {
	return &directory{nodes: map[proto.NodeID]dirEntry{}, denied: map[proto.NodeID]bool{}}
}

func (d *directory) add(id proto.NodeID, name string, addr proto.Addr) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nodes[id] = dirEntry{name, addr}
}

// remove deletes a node and denies it, as `delete node` does.
func (d *directory) remove(id proto.NodeID) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.nodes, id)
	d.denied[id] = true
}

func (d *directory) Admit(id proto.NodeID, addr proto.Addr, _ uint32) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.denied[id] {
		return "", ping.ErrRevoked
	}
	n, ok := d.nodes[id]
	if !ok {
		return "", ErrUnknownNode
	}
	if n.addr != addr {
		return "", ping.ErrAddrMismatch
	}
	return n.name, nil
}

// host is one daemon's engine.
type host struct {
	name   string
	addr   proto.Addr
	node   proto.NodeID
	keys   *cluster
	clock  *clock
	self   *Self
	engine *Engine
}

func addr(s string) proto.Addr { return proto.AddrFrom(netip.MustParseAddr(s)) }

func newHost(t testing.TB, name, ip string, node byte, keys *cluster, dir Directory, c *clock) *host {
	t.Helper()
	h := &host{name: name, addr: addr(ip), node: proto.NodeID{15: node}, keys: keys, clock: c}
	st, err := ping.NewStamper(c.Now, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.self = &Self{Sealer: &ping.Sealer{Keys: keys, Stamper: st, Rand: rand.Reader, Node: h.node}, Name: name}
	h.engine, err = NewEngine(Config{
		Keys: keys, Self: func() *Self { return h.self }, Addr: h.addr, Directory: dir,
		Now: c.Now, Rand: rand.Reader, Freshness: 5 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var (
	root    = Caller{UID: 0, GID: 0, User: "root", Group: "root"}
	jobUser = Caller{UID: 5001, GID: 5001, User: "pbsuser", Group: "pbsuser"}
)

// world is a server host and two execution hosts of one cluster, and a
// host of another cluster.
type world struct {
	clock          *clock
	dir            *directory
	server, n1, n2 *host
	other          *host
}

func newWorld(t testing.TB) *world {
	w := &world{clock: &clock{t: epoch}, dir: newDirectory()}
	keys := newCluster(t, 1, 7)
	w.server = newHost(t, "pbssrv", "127.0.0.1", 1, keys, w.dir, w.clock)
	w.n1 = newHost(t, "pbsn1", "127.0.0.11", 11, keys, w.dir, w.clock)
	w.n2 = newHost(t, "pbsn2", "127.0.0.12", 12, keys, w.dir, w.clock)
	w.other = newHost(t, "pbsn1", "127.0.0.11", 11, newCluster(t, 99, 7), newDirectory(), w.clock)
	for _, h := range []*host{w.server, w.n1, w.n2} {
		w.dir.add(h.node, h.name, h.addr)
	}
	return w
}

// transcript is the three tokens of one handshake.
type transcript struct {
	step1, step2, step3 []byte
}

// handshake runs a whole handshake from ini (for caller c) to resp, with
// resp seeing the connection come from source; it returns what the
// responder learned and the first refusal.
func handshake(ini, resp *host, c Caller, kind Kind, source proto.Addr) (Result, transcript, error) {
	_, res, tr, err := handshakeEnc(ini, resp, c, kind, source, false)
	return res, tr, err
}

// handshakeEnc is handshake, asking for encryption or not; it returns what
// the initiator's Continue and the responder's Confirm returned.
func handshakeEnc(ini, resp *host, c Caller, kind Kind, source proto.Addr, encrypt bool) (Result, Result, transcript, error) {
	var tr transcript
	var r3 Result
	r1, err := ini.engine.Initiate(c, kind, resp.addr, encrypt)
	if err != nil {
		return r3, r1, tr, err
	}
	tr.step1 = r1.Token
	r2, err := resp.engine.Accept(root, kind, []proto.Addr{source}, tr.step1)
	if err != nil {
		return r3, r2, tr, err
	}
	if r2.Keys != nil {
		return r3, r2, tr, errors.New("accept returned keys before the vouch was checked")
	}
	tr.step2 = r2.Token
	if r3, err = ini.engine.Continue(c, r1.ID, tr.step2); err != nil {
		return r3, r3, tr, err
	}
	tr.step3 = r3.Token
	r4, err := resp.engine.Confirm(root, r2.ID, tr.step3)
	return r3, r4, tr, err
}

func wantErr(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
}

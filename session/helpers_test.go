package session

import (
	"crypto/cipher"
	"encoding/hex"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// testKeys is a ping.KeySource over a fixed set of cluster keys.
type testKeys struct {
	active uint32
	aeads  map[uint32]cipher.AEAD
}

func newTestKeys(t testing.TB, active uint32, secret []byte) *testKeys {
	t.Helper()
	a, err := chacha20poly1305.NewX(secret)
	if err != nil {
		t.Fatal(err)
	}
	return &testKeys{active: active, aeads: map[uint32]cipher.AEAD{active: a}}
}

func (k *testKeys) Open(id uint32) cipher.AEAD  { return k.aeads[id] }
func (k *testKeys) Seal() (uint32, cipher.AEAD) { return k.active, k.aeads[k.active] }

// fakeClock is a settable clock, safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var epoch = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// countingRand is a deterministic byte stream (splitmix64 from seed n):
// distinct seeds give unrelated streams.
type countingRand struct {
	mu sync.Mutex
	n  uint64
}

func (r *countingRand) Read(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range b {
		r.n += 0x9e3779b97f4a7c15
		z := r.n
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		b[i] = byte(z ^ z>>31)
	}
	return len(b), nil
}

// fixedRand returns its bytes in order, then fails.
type fixedRand struct{ b []byte }

func (r *fixedRand) Read(p []byte) (int, error) {
	if len(r.b) < len(p) {
		return 0, errShortRand
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

type randError string

func (e randError) Error() string { return string(e) }

const errShortRand = randError("fixed randomness exhausted")

func addr(s string) proto.Addr { return proto.AddrFrom(netip.MustParseAddr(s)) }

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hex32(t testing.TB, s string) [32]byte {
	t.Helper()
	var out [32]byte
	if b := mustHex(t, s); len(b) != 32 || copy(out[:], b) != 32 {
		t.Fatalf("want 32 bytes: %s", s)
	}
	return out
}

// peer is one side of a test swap: a cluster key, a PING sealer and
// verifier, an address, a node id.
type peer struct {
	addr   proto.Addr
	node   proto.NodeID
	sealer *ping.Sealer
	verif  *ping.Verifier
	clock  *fakeClock
}

func newPeer(t testing.TB, keys ping.KeySource, a string, node byte, clock *fakeClock) *peer {
	t.Helper()
	st, err := ping.NewStamper(clock.Now, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var id proto.NodeID
	for i := range id {
		id[i] = node
	}
	return &peer{
		addr:   addr(a),
		node:   id,
		sealer: &ping.Sealer{Keys: keys, Stamper: st, Rand: &countingRand{n: uint64(node) << 40}, Node: id},
		verif:  &ping.Verifier{Keys: keys, Guard: ping.NewGuard(ping.GuardConfig{}, nil), Now: clock.Now},
		clock:  clock,
	}
}

var testClusterKey = []byte("momgate session test cluster key")

// newPair returns an initiator at 127.0.0.2 and a responder at 127.0.0.3
// that share a cluster key and a clock.
func newPair(t testing.TB) (a, b *peer) {
	t.Helper()
	keys := newTestKeys(t, 7, testClusterKey)
	clock := &fakeClock{t: epoch}
	return newPeer(t, keys, "127.0.0.2", 2, clock), newPeer(t, keys, "127.0.0.3", 3, clock)
}

// sessionPing starts a swap: an initiator with cfg and its SessionPing
// from a to b.
func sessionPing(t testing.TB, a, b *peer, cfg Config) (*Initiator, []byte) {
	t.Helper()
	in, err := NewInitiator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := in.AppendPing(nil, a.sealer, a.addr, b.addr)
	if err != nil {
		t.Fatal(err)
	}
	return in, frame
}

// swap runs a whole session swap in memory between a (initiator) and b.
func swap(t testing.TB, a, b *peer, ca, cb Config) (*Session, *Session) {
	t.Helper()
	in, frame := sessionPing(t, a, b, ca)
	var res ping.Result
	reply, sb, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr, cb, b.clock.Now(), &res)
	if err != nil {
		t.Fatalf("respond: %v", err)
	}
	sa, err := in.Finish(reply, a.verif, b.addr, a.addr, a.clock.Now(), &res)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	return sa, sb
}

// frameOf returns a whole v2 frame of type typ with body.
func frameOf(typ proto.Type, body []byte) []byte {
	f := proto.AppendHeader(nil, proto.Header{Version: proto.V2, Type: typ, Length: uint32(len(body))})
	return append(f, body...)
}

// imFrame is an application frame of n bytes in all (an IMPoll-typed frame
// with a filler body; the session layer does not decode it).
func imFrame(n int, fill byte) []byte {
	body := make([]byte, n-proto.HeaderSize)
	for i := range body {
		body[i] = fill + byte(i)
	}
	return frameOf(proto.TypeIMPoll, body)
}

// privOf returns a copy of an ephemeral's private key bytes.
func privOf(t testing.TB, e *ephemeral) *[32]byte {
	t.Helper()
	var p [32]byte
	if copy(p[:], e.key.Bytes()) != 32 {
		t.Fatal("ephemeral private key is not 32 bytes")
	}
	return &p
}

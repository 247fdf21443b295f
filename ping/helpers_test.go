package ping

import (
	"crypto/cipher"
	cryptorand "crypto/rand"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/momgate/momgate/proto"
)

// testKeys is a KeySource over a fixed set of keys.
type testKeys struct {
	active uint32
	aeads  map[uint32]cipher.AEAD
}

func newTestKeys(t testing.TB, active uint32, ids ...uint32) *testKeys {
	t.Helper()
	k := &testKeys{active: active, aeads: map[uint32]cipher.AEAD{}}
	for _, id := range append([]uint32{active}, ids...) {
		var secret [32]byte
		for i := range secret {
			secret[i] = byte(id) + byte(i)
		}
		a, err := chacha20poly1305.NewX(secret[:])
		if err != nil {
			t.Fatal(err)
		}
		k.aeads[id] = a
	}
	return k
}

func (k *testKeys) Open(id uint32) cipher.AEAD { return k.aeads[id] }
func (k *testKeys) Seal() (uint32, cipher.AEAD) {
	return k.active, k.aeads[k.active]
}

// fakeClock is a settable wall clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingRand is a deterministic, non-repeating byte stream for tests.
type countingRand struct {
	mu sync.Mutex
	n  byte
}

func (r *countingRand) Read(b []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range b {
		r.n++
		b[i] = r.n
	}
	return len(b), nil
}

func addr(s string) proto.Addr { return proto.AddrFrom(netip.MustParseAddr(s)) }

func nodeID(b byte) proto.NodeID {
	var n proto.NodeID
	for i := range n {
		n[i] = b
	}
	return n
}

var epoch = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// endpoint is one side of a test conversation.
type endpoint struct {
	addr   proto.Addr
	clock  *fakeClock
	ceil   *MemCeiling
	sealer *Sealer
	verif  *Verifier
	deny   *DenyList
}

func newEndpoint(t testing.TB, keys KeySource, a string, node byte, clock *fakeClock) *endpoint {
	t.Helper()
	ceil := &MemCeiling{}
	st, err := NewStamper(clock.Now, ceil, 0)
	if err != nil {
		t.Fatal(err)
	}
	deny := &DenyList{}
	return &endpoint{
		addr:   addr(a),
		clock:  clock,
		ceil:   ceil,
		sealer: &Sealer{Keys: keys, Stamper: st, Rand: &countingRand{n: node}, Node: nodeID(node)},
		verif:  &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{Freshness: -1}, nil), Revoker: deny, Now: clock.Now},
		deny:   deny,
	}
}

var cryptoRand = cryptorand.Reader

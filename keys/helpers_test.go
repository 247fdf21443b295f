package keys

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// countingRand is a deterministic byte stream: start, start+1, ...
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

// zeroRand reads zeros.
type zeroRand struct{}

func (zeroRand) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// failRand gives n bytes, then fails.
type failRand struct{ n int }

var errRand = errors.New("entropy source failed")

func (r *failRand) Read(b []byte) (int, error) {
	if r.n <= 0 {
		return 0, errRand
	}
	k := min(len(b), r.n)
	clear(b[:k])
	for i := range b[:k] {
		b[i] = 0x5a
	}
	r.n -= k
	return k, nil
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testKey makes a key with a fixed id and a secret derived from it.
func testKey(id KeyID, state State, created time.Time) *Key {
	k := &Key{ID: id, State: state, Created: created}
	for i := range k.Secret {
		k.Secret[i] = byte(id) ^ byte(i*7)
	}
	return k
}

// states returns the ring as id -> state.
func states(r *Keyring) map[KeyID]State {
	m := map[KeyID]State{}
	for _, k := range r.Keys() {
		m[k.ID] = k.State
	}
	return m
}

// ringMust returns a function that fails t on a keyring error.
func ringMust(t *testing.T) func(*Keyring, error) *Keyring {
	return func(r *Keyring, err error) *Keyring {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
}

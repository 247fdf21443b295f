package group

import (
	"sync"
	"testing"
	"time"
)

// countingRand is a deterministic byte stream; seed picks where it starts.
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

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testCA makes a CA from a deterministic stream starting at seed.
func testCA(t testing.TB, seed byte) *CA {
	t.Helper()
	ca, err := NewCA(&countingRand{n: seed}, t0, "group-test")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

package pbsauth

import (
	"testing"
	"time"
)

func TestExpiring(t *testing.T) {
	e := newExpiring[int, string](time.Second, 3)
	now := epoch
	if e.add(now, 1, "a") {
		t.Fatal("new key reported as present")
	}
	if !e.add(now, 1, "b") {
		t.Fatal("live key reported as new")
	}
	if v, ok := e.take(now, 1); !ok || v != "a" {
		t.Fatalf("take: %q %v", v, ok)
	}
	if _, ok := e.take(now, 1); ok {
		t.Fatal("taken twice")
	}
	// Expiry.
	e.add(now, 2, "c")
	if _, ok := e.take(now.Add(time.Second), 2); ok {
		t.Fatal("expired entry taken")
	}
	// Capacity: the oldest go first.
	for i := 10; i < 15; i++ {
		e.add(now, i, "x")
	}
	if e.len() != 3 {
		t.Fatalf("%d entries, want 3", e.len())
	}
	for i, want := range map[int]bool{10: false, 11: false, 12: true, 13: true, 14: true} {
		if _, ok := e.take(now, i); ok != want {
			t.Fatalf("key %d present %v, want %v", i, ok, want)
		}
	}
	// The FIFO does not grow under repeats (a replay flood) or churn.
	for i := 0; i < 10000; i++ {
		e.add(now, 1, "y")
	}
	for i := 0; i < 10000; i++ {
		e.add(now, i%5, "y")
		e.take(now, (i+2)%5)
	}
	if len(e.order) > 2*e.max+1 {
		t.Fatalf("FIFO of %d entries for %d live", len(e.order), e.len())
	}
}

package session

import (
	"bytes"
	"testing"
)

// TestConnHotPathAllocations: once its buffers have grown, a Conn seals,
// writes, reads and opens a frame without allocating.
func TestConnHotPathAllocations(t *testing.T) {
	for _, p := range []Protection{Auth, Encrypt} {
		t.Run(p.String(), func(t *testing.T) {
			a, b, clock := sessionPair(t, p, Limits{})
			var wire bytes.Buffer
			ca := NewConn(&wire, &wire, a, clock.Now)
			cb := NewConn(&wire, &wire, b, clock.Now)
			f := imFrame(256, 1)
			step := func() {
				if err := ca.WriteFrame(f); err != nil {
					t.Fatal(err)
				}
				got, err := cb.ReadFrame()
				if err != nil || len(got) != len(f) {
					t.Fatalf("read: %v", err)
				}
			}
			step() // grow the buffers
			wire.Grow(4096)
			if n := testing.AllocsPerRun(100, step); n != 0 {
				t.Fatalf("%v allocations per frame, want 0", n)
			}
		})
	}
}

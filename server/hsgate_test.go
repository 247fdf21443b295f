package server

import (
	"net"
	"testing"
	"time"

	"github.com/momgate/momgate/reasons"
)

// The handshake gate: a free slot is taken at once; with every slot held
// a handshake waits, gets the slot a release frees, and is refused as a
// handshake timeout when none frees within the handshake timeout.
func TestHandshakeGate(t *testing.T) {
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	s := &Server{hsSlots: make(chan struct{}, 1), cfg: Config{HandshakeTimeout: 200 * time.Millisecond}}
	a := &admission{s: s, conn: c1}
	release, rej := a.AfterHello()
	if rej != nil {
		t.Fatalf("free slot: %v", rej)
	}
	if _, rej := a.AfterHello(); rej == nil || rej.Reason != reasons.HandshakeTimeout {
		t.Fatalf("every slot held: %v, want a handshake_timeout refusal", rej)
	}
	s.cfg.HandshakeTimeout = time.Minute
	got := make(chan func(), 1)
	go func() {
		r, rej := a.AfterHello()
		if rej != nil {
			t.Errorf("waiting for a slot: %v", rej)
			close(got)
			return
		}
		got <- r
	}()
	release()
	select {
	case r, ok := <-got:
		if ok {
			r()
		}
	case <-time.After(time.Minute):
		t.Fatal("a released slot was not taken by the waiting handshake")
	}
	if len(s.hsSlots) != 0 {
		t.Fatalf("%d slots still held after every release", len(s.hsSlots))
	}
}

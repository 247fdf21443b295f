package loopbench

import (
	"context"
	"crypto/rand"
	"net"
	"testing"
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// TestRawAndSwapOps runs both operations against in-process responders and
// checks that they succeed and are counted.
func TestRawAndSwapOps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srcs := Sources(77, 2, 2)

	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- Echo(ctx, echo) }()
	r := Measure(ctx, "raw", 2, 10*time.Millisecond, 100*time.Millisecond, RawOp(echo.Addr().String(), srcs))
	if r.Ops == 0 || r.Errors != 0 {
		t.Fatalf("raw: %+v", r)
	}

	// A one-shot PING responder with the same key.
	k, err := keys.NewKey(rand.Reader, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	holder := keys.NewHolder(ring)
	st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	sealer := &ping.Sealer{Keys: holder, Stamper: st, Rand: rand.Reader, Node: proto.NodeID{1}}
	verifier := &ping.Verifier{Keys: holder, Now: time.Now, Guard: ping.NewGuard(ping.GuardConfig{}, nil)}
	mom, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := mom.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				frame, err := proto.ReadFrameLimit(c, nil, 4096)
				if err != nil {
					return
				}
				remote, local, err := daemon.Endpoints(c)
				if err != nil {
					return
				}
				var res ping.Result
				_ = handshake.Respond(c, frame, remote, local, sealer, verifier, &res)
			}()
		}
	}()
	op, err := SwapOp(mom.Addr().String(), srcs, holder)
	if err != nil {
		t.Fatal(err)
	}
	r = Measure(ctx, "swap", 2, 10*time.Millisecond, 100*time.Millisecond, op)
	if r.Ops == 0 || r.Errors != 0 {
		t.Fatalf("swap: %+v", r)
	}
	mom.Close()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

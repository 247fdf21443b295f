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
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
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
	holder := testHolder(t)
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

// testHolder is a keyring of one fresh active cluster key.
func testHolder(t *testing.T) *keys.Holder {
	t.Helper()
	k, err := keys.NewKey(rand.Reader, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewHolder(ring)
}

// TestSealedOps runs the session swap and the IM request/response against
// an in-process responder that speaks sealed sessions and answers IM
// requests as a MOM does, under each protection.
func TestSealedOps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	holder := testHolder(t)
	st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := handshake.IMResponder{
		Sealer:   &ping.Sealer{Keys: holder, Stamper: st, Rand: rand.Reader, Node: proto.NodeID{1}},
		Verifier: &ping.Verifier{Keys: holder, Now: time.Now, Guard: ping.NewGuard(ping.GuardConfig{}, nil)},
		Sessions: &handshake.IMSessions{SessionParams: handshake.SessionParams{Now: time.Now}, Min: session.None},
	}
	mom, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mom.Close()
	go func() {
		for {
			c, err := mom.Accept()
			if err != nil {
				return
			}
			go serveSealed(c, r)
		}
	}()
	srcs := Sources(78, 2, 2)
	op, err := SessionSwapOp(ctx, mom.Addr().String(), srcs, holder, true)
	if err != nil {
		t.Fatal(err)
	}
	if res := Measure(ctx, "session swap", 2, 10*time.Millisecond, 100*time.Millisecond, op); res.Ops == 0 || res.Errors != 0 {
		t.Fatalf("session swap: %+v", res)
	}
	for _, p := range []session.Protection{session.None, session.Auth, session.Encrypt} {
		op, closeIM, err := IMOp(mom.Addr().String(), Sources(79+byte(p), 2, 1), holder, p)
		if err != nil {
			t.Fatal(err)
		}
		res := Measure(ctx, "im "+p.String(), 2, 10*time.Millisecond, 100*time.Millisecond, op)
		closeIM()
		if res.Ops == 0 || res.Errors != 0 {
			t.Fatalf("IM %s: %+v", p, res)
		}
	}
}

// serveSealed admits one IM connection and answers IMJoin and IMPoll with
// IMReply, as a MOM's serveAdmitted does.
func serveSealed(c net.Conn, r handshake.IMResponder) {
	defer c.Close()
	frame, err := handshake.ReadFirstFrame(c)
	if err != nil {
		return
	}
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		return
	}
	adm, err := handshake.AdmitIM(c, frame, remote, local, migration.Inbound{Protocol: proto.ModePing}, r)
	if err != nil {
		return
	}
	l := daemon.NewLink(c, adm.Session, daemon.LinkConfig{Limit: 64 << 10, WriteTimeout: 5 * time.Second})
	defer l.Close()
	for {
		f, err := l.ReadFrame()
		if err != nil {
			return
		}
		m, err := proto.Unmarshal(f)
		if err != nil {
			return
		}
		var reply *proto.IMReply
		switch v := m.(type) {
		case *proto.IMJoin:
			reply = &proto.IMReply{Job: v.Job}
		case *proto.IMPoll:
			reply = &proto.IMReply{Job: v.Job, Seq: v.Seq}
		default:
			return
		}
		if err := l.Send(reply); err != nil {
			return
		}
	}
}

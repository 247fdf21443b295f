package daemon

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// Conns tracks the connections a daemon accepts on one listener, from
// accept to close, so that they can all be closed when the daemon stops.
// The daemon serves its listener with
//
//	base.TrackConns(ctx, ln, &gauge).Serve(serve)
//
// which accepts until ctx ends and runs serve(c) for each connection on a
// worker goroutine; or runs the accept loop itself:
//
//	conns := base.TrackConns(ctx, ln, &gauge)
//	for {
//		c, ok := conns.Accept()
//		if !ok {
//			break
//		}
//		go func() { defer conns.Done(c); serve(c) }()
//	}
//	conns.Wait()
type Conns struct {
	ln   net.Listener
	log  logrus.FieldLogger
	ctx  context.Context
	open *atomic.Int64
	stop func() bool
	wg   sync.WaitGroup
	mu   sync.Mutex
	set  map[net.Conn]struct{}
}

// TrackConns starts tracking ln's connections, counting the open ones in
// open. When ctx ends it closes ln and every connection still open.
func (b *Base) TrackConns(ctx context.Context, ln net.Listener, open *atomic.Int64) *Conns {
	t := &Conns{ln: ln, log: b.Log, ctx: ctx, open: open, set: map[net.Conn]struct{}{}}
	t.stop = context.AfterFunc(ctx, func() {
		ln.Close()
		t.mu.Lock()
		defer t.mu.Unlock()
		for c := range t.set {
			c.Close()
		}
	})
	return t
}

// Accept accepts the next connection and tracks it until Done; ok is
// false once ctx has ended and the listener is closed. Other accept
// errors are logged and accepting goes on.
func (t *Conns) Accept() (c net.Conn, ok bool) {
	for {
		c, err := t.ln.Accept()
		if err == nil {
			t.mu.Lock()
			t.set[c] = struct{}{}
			t.mu.Unlock()
			t.open.Add(1)
			t.wg.Add(1)
			return c, true
		}
		if t.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
			return nil, false
		}
		t.log.WithError(err).Warn("accept")
	}
}

// Done closes c and stops tracking it.
func (t *Conns) Done(c net.Conn) {
	c.Close()
	t.mu.Lock()
	delete(t.set, c)
	t.mu.Unlock()
	t.open.Add(-1)
	t.wg.Done()
}

// Wait waits until every accepted connection is Done.
func (t *Conns) Wait() {
	t.wg.Wait()
	t.stop()
}

// maxIdleWorkers bounds the worker goroutines Serve keeps waiting for a
// connection.
const maxIdleWorkers = 64

// Serve accepts connections until ctx ends, runs serve(c) for each and
// closes it (Done) when serve is done with it; then it waits for every
// connection served. A connection is handed to a worker goroutine that is
// waiting for one, or to a new worker when none is; a worker that finishes
// stays for the next connection unless maxIdleWorkers already wait. A new
// goroutine per connection grew its stack on every connection's handshake
// (the PING's cryptography), 7-8% of a MOM's CPU in the swap benchmark; a
// worker keeps its grown stack, and a handoff costs no goroutine creation.
//
// serve may return rest, the remainder of a long-lived connection (a
// control session): rest then runs on a goroutine of its own, and the
// worker goes back to the pool. The session's goroutine needs only the
// stack of its read loop, not the one the handshake grew, which a waiting
// goroutine keeps until collections shrink it (by half each, and never
// below four times what it uses).
func (t *Conns) Serve(serve func(net.Conn) (rest func())) {
	work := make(chan net.Conn)
	var idle atomic.Int32
	var workers sync.WaitGroup
	worker := func(c net.Conn) {
		defer workers.Done()
		for {
			if rest := serve(c); rest != nil {
				go func(c net.Conn) {
					defer t.Done(c)
					rest()
				}(c)
			} else {
				t.Done(c)
			}
			if idle.Add(1) > maxIdleWorkers {
				idle.Add(-1)
				return
			}
			select {
			case c = <-work:
				// idle was decremented by the dispatcher
			case <-t.ctx.Done():
				idle.Add(-1)
				return
			}
		}
	}
	for {
		c, ok := t.Accept()
		if !ok {
			break
		}
		select {
		case work <- c:
			idle.Add(-1)
		default:
			workers.Add(1)
			go worker(c)
		}
	}
	t.Wait()
	workers.Wait()
}

// AdmitSource applies the per-source limits to a new connection from peer
// on channel: the excess is answered with Reject (rate limited), closed,
// logged and counted under reasons.RateLimited, and ok is false. Admitted,
// slot holds the connection's place; the caller releases it when the
// connection has authenticated or ended.
func (b *Base) AdmitSource(c net.Conn, peer netip.AddrPort, channel string, slot *connlimit.Slot) (ok bool) {
	err := b.Limiter.Take(peer.Addr(), slot)
	if err == nil {
		return true
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_ = proto.WriteFrame(c, &proto.Reject{Code: reasons.RateLimited.Code(), Reason: err.Error()})
	b.Record(audit.Entry{Channel: channel, Outcome: audit.Rejected, Reason: reasons.RateLimited, Peer: peer, Detail: err.Error()})
	return false
}

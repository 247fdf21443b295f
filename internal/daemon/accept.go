package daemon

import (
	"context"
	"errors"
	"net"
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
// The daemon's accept loop runs over it:
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

// AdmitSource applies the per-source limits to a new connection on
// channel: the excess is answered with Reject (rate limited), closed,
// logged and counted under reasons.RateLimited, and ok is false. The
// caller calls release when the connection has authenticated or ended.
func (b *Base) AdmitSource(c net.Conn, channel string) (release connlimit.Release, ok bool) {
	peer := PeerAddrPort(c)
	release, err := b.Limiter.Admit(peer.Addr())
	if err == nil {
		return release, true
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_ = proto.WriteFrame(c, &proto.Reject{Code: reasons.RateLimited.Code(), Reason: err.Error()})
	b.Record(audit.Entry{Channel: channel, Outcome: audit.Rejected, Reason: reasons.RateLimited, Peer: peer, Detail: err.Error()})
	return nil, false
}

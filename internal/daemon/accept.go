package daemon

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// Accept accepts connections on ln until ctx ends and serves each with
// serve in its own goroutine; open counts the connections from accept to
// close. When ctx ends it closes the listener and every connection still
// open, and returns once every serve has returned.
func (b *Base) Accept(ctx context.Context, ln net.Listener, open *atomic.Int64, serve func(net.Conn)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	stop := context.AfterFunc(ctx, func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			b.Log.WithError(err).Warn("accept")
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		open.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer open.Add(-1)
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			}()
			serve(c)
		}()
	}
	wg.Wait()
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

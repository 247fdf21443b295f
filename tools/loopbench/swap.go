package loopbench

import (
	"context"
	"crypto/rand"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// SwapOp returns the PING swap operation against a MOM's IM listener at
// target: connect from one of worker w's sources, seal and send a Ping,
// read and verify the PingReply (echo included), close. Each worker is its
// own sender node with its own timestamps, so workers never replay each
// other's marks. keys must hold the cluster's active key.
func SwapOp(target string, sources [][]netip.Addr, keys ping.KeySource) (Op, error) {
	type worker struct {
		sealer   *ping.Sealer
		verifier *ping.Verifier
		next     atomic.Uint64
	}
	dialers := dialersFor(sources)
	ws := make([]*worker, len(sources))
	for w := range ws {
		st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
		if err != nil {
			return nil, err
		}
		var node proto.NodeID
		if _, err := rand.Read(node[:]); err != nil {
			return nil, fmt.Errorf("node id: %w", err)
		}
		ws[w] = &worker{
			sealer: &ping.Sealer{Keys: keys, Stamper: st, Rand: rand.Reader, Node: node},
			verifier: &ping.Verifier{Keys: keys, Now: time.Now,
				Guard: ping.NewGuard(ping.GuardConfig{Freshness: ping.DefaultFreshness}, nil)},
		}
	}
	return func(ctx context.Context, w int) error {
		wk := ws[w]
		ds := dialers[w]
		c, err := ds[wk.next.Add(1)%uint64(len(ds))].DialContext(ctx, "tcp", target)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer c.Close()
		var res ping.Result
		if err := daemon.InitiateSwap(c, wk.sealer, wk.verifier, time.Now().Add(5*time.Second), &res); err != nil {
			return fmt.Errorf("swap: %w", err)
		}
		return nil
	}, nil
}

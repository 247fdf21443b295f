package loopbench

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/ping"
)

// SwapOp returns the PING swap operation against a MOM's IM listener at
// target: connect from one of worker w's sources, seal and send a Ping,
// read and verify the PingReply (echo included), close. Each worker is its
// own sender node with its own timestamps, so workers never replay each
// other's marks. keys must hold the cluster's active key.
func SwapOp(target string, sources [][]netip.Addr, keys ping.KeySource) (Op, error) {
	dialers := dialersFor(sources)
	ws, err := newBenchWorkers(len(sources), keys)
	if err != nil {
		return nil, err
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

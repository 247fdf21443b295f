package server

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// BenchmarkBecomeLeaderState: the part of a new leader's start that
// grows with the registry (issue 14): the replica written out as the
// state files (materialize) and the server opened on them (New), at N
// enrolled nodes, every one behind after a rotation. No sockets, no
// election: those are in BenchmarkFailover and momgate-scale --group.
//
//	go test -run '^$' -bench BecomeLeaderState -benchtime 10x ./server
//
// MOMGATE_BENCH_DELETE_N overrides the sizes, as for BenchmarkDeleteNodeOffline.
func BenchmarkBecomeLeaderState(b *testing.B) {
	for _, n := range deleteBenchSizes() {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			dir := offlineDir(b, n)
			srv := openServer(b, dir, nil)
			primeBehind(b, srv, n)
			srv.closeUnstarted()
			snap, _, err := adoptSnapshot(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
			if err != nil {
				b.Fatal(err)
			}
			g := newGroupState()
			if err := g.Restore(bytes.NewReader(snap)); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			var inMaterialize time.Duration
			for range b.N {
				t0 := time.Now()
				if err := g.materialize(dir, quietLog()); err != nil {
					b.Fatal(err)
				}
				inMaterialize += time.Since(t0)
				s := openServer(b, dir, nil)
				if got := len(s.reg.byName); got != n {
					b.Fatalf("opened with %d nodes, want %d", got, n)
				}
				s.closeUnstarted()
			}
			b.ReportMetric(float64(inMaterialize.Milliseconds())/float64(b.N), "ms-materialize")
		})
	}
}

package server

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/member"
)

// benchTiming is the timing of the group benchmarks and tests in this
// package: the daemon's defaults (--raft-heartbeat 1s), so the figures are
// the ones a site gets; 300 ms lost leadership under a 10,000-node burst.
var benchTiming = member.Timing{HeartbeatTimeout: time.Second, ElectionTimeout: time.Second,
	LeaderLeaseTimeout: 500 * time.Millisecond, CommitTimeout: 5 * time.Millisecond}

// inProcGroup is a group of n members in this process, on 127.0.0.1..n.
type inProcGroup struct {
	tb      testing.TB
	dirs    []string
	cancels []context.CancelFunc
	done    []chan error
}

func freeAddr(tb testing.TB, ip string) string {
	tb.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func call(tb testing.TB, dir, op string, args, out any) error {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := admin.Dial(ctx, admin.SocketPath(dir))
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, op, args, out)
}

// waitCall retries op on dir until it succeeds or 30 s pass.
func waitCall(tb testing.TB, dir, op string, args, out any) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := call(tb, dir, op, args, out)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s on %s: %v", op, dir, err)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

func startInProcGroup(tb testing.TB, n int) *inProcGroup {
	tb.Helper()
	g := &inProcGroup{tb: tb}
	root := tb.TempDir()
	for i := 0; i < n; i++ {
		ip := fmt.Sprintf("127.0.0.%d", i+1)
		dir := filepath.Join(root, fmt.Sprintf("s%d", i+1))
		gc := GroupConfig{Server: Config{StateDir: dir, Listen: freeAddr(tb, ip), Log: quietLog()},
			Member: fmt.Sprintf("s%d", i+1), ReplicationListen: freeAddr(tb, ip), Timing: benchTiming}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		if i == 0 {
			if _, err := Init(dir, rand.Reader, time.Now()); err != nil {
				tb.Fatal(err)
			}
			go func() { done <- RunGroup(ctx, gc) }()
			waitCall(tb, dir, admin.OpListNode, admin.ListNodeArgs{}, nil)
		} else {
			var res admin.CreateServerResult
			waitCall(tb, g.dirs[0], admin.OpCreateServer, admin.CreateServerArgs{Name: gc.Member, Address: gc.ReplicationListen}, &res)
			go func() { done <- Join(ctx, JoinConfig{Group: gc, Token: res.Token}, func(string) {}) }()
		}
		g.dirs, g.cancels, g.done = append(g.dirs, dir), append(g.cancels, cancel), append(g.done, done)
	}
	for i := 1; i < n; i++ { // every member joined and caught up
		name := fmt.Sprintf("s%d", i+1)
		deadline := time.Now().Add(30 * time.Second)
		for !g.alive(name) {
			if time.Now().After(deadline) {
				tb.Fatalf("%s did not join", name)
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
	}
	tb.Cleanup(g.stop)
	return g
}

func (g *inProcGroup) alive(name string) bool {
	var rep admin.ServerReport
	if call(g.tb, g.dirs[0], admin.OpPrintServer, nil, &rep) != nil || rep.Server.Group == nil {
		return false
	}
	for _, m := range rep.Server.Group.Members {
		if m.Name == name && m.State == "alive" {
			return true
		}
	}
	return false
}

func (g *inProcGroup) stop() {
	for i, c := range g.cancels {
		if c != nil {
			c()
			<-g.done[i]
			g.cancels[i] = nil
		}
	}
}

func benchCreateNodes(b *testing.B, members int) {
	g := startInProcGroup(b, members)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		a := admin.CreateNodeArgs{Name: fmt.Sprintf("n%d", i), Mom: fmt.Sprintf("127.%d.%d.%d", 100+i>>16&127, i>>8&255, i&255)}
		if err := call(b, g.dirs[0], admin.OpCreateNode, a, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "creates/s")
}

// BenchmarkCreateNodeGroup1 and BenchmarkCreateNodeGroup3: create node
// through the admin socket, each committed by the group (one member: its
// own log; three: a quorum of two) before it is answered.
func BenchmarkCreateNodeGroup1(b *testing.B) { benchCreateNodes(b, 1) }

// BenchmarkCreateNodeGroup3 is BenchmarkCreateNodeGroup1 with three members.
func BenchmarkCreateNodeGroup3(b *testing.B) { benchCreateNodes(b, 3) }

// BenchmarkFailover: the leader of three members stops (its sockets close,
// as at kill -9); the time until a survivor commits a create node.
func BenchmarkFailover(b *testing.B) {
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		g := startInProcGroup(b, 3)
		b.StartTimer()
		t0 := time.Now()
		g.cancels[0]()
		<-g.done[0]
		g.cancels[0] = nil
		deadline := t0.Add(30 * time.Second)
		for committed := false; !committed; {
			for _, d := range g.dirs[1:] {
				if call(b, d, admin.OpCreateNode, admin.CreateNodeArgs{Name: "after", Mom: "10.9.9.9"}, nil) == nil {
					committed = true
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatal("no write committed within 30 s of the leader's loss")
			}
		}
		b.ReportMetric(time.Since(t0).Seconds()*1000, "ms-to-write")
		b.StopTimer()
		g.stop()
	}
}

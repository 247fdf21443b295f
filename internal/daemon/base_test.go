package daemon

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	"github.com/momgate/momgate/statecheck"
)

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func openBase(t *testing.T, limits connlimit.Config) *Base {
	t.Helper()
	st, err := OpenState(privateDir(t), statecheck.RoleMom, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenBase(BaseConfig{State: st, Log: quietLog(), Audit: audit.New(audit.Config{Out: io.Discard}),
		Now: time.Now, Keys: keys.NewHolder(keys.NewKeyring()), Revoker: &ping.DenyList{}, SourceLimits: limits})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func TestGroupStopsAtFirstFailure(t *testing.T) {
	g := NewGroup(context.Background())
	g.Go("waiter", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err() // after the group stopped: not a failure
	})
	g.Go("admin socket", func(context.Context) error { return errors.New("boom") })
	err := g.Wait()
	if err == nil || err.Error() != "admin socket: boom" {
		t.Fatalf("Wait = %v, want the first failure, named", err)
	}
	if g.Context().Err() == nil {
		t.Fatal("group context still live after Wait")
	}
	g = NewGroup(context.Background())
	g.Go("", func(ctx context.Context) error { <-ctx.Done(); return nil })
	g.Stop()
	if err := g.Wait(); err != nil {
		t.Fatalf("stopped group: %v", err)
	}
}

// TestConnsClosedAtEnd: when the context ends, the tracker closes the
// listener and every connection still being served; Wait returns once
// every one is Done.
func TestConnsClosedAtEnd(t *testing.T) {
	b := openBase(t, connlimit.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var open atomic.Int64
	served := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		conns := b.TrackConns(ctx, ln, &open)
		for {
			c, ok := conns.Accept()
			if !ok {
				break
			}
			go func() {
				defer conns.Done(c)
				served <- struct{}{}
				_, _ = io.Copy(io.Discard, c) // until the tracker closes c
			}()
		}
		conns.Wait()
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-served
	if n := open.Load(); n != 1 {
		t.Fatalf("open = %d while serving, want 1", n)
	}
	cancel()
	<-done
	if n := open.Load(); n != 0 {
		t.Fatalf("open = %d after Wait, want 0", n)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("client read %v, want EOF (closed by the tracker)", err)
	}
}

// TestAdmitSourceRefusesTheExcess: past MaxPending, a connection is
// answered with Reject (rate limited), closed and counted.
func TestAdmitSourceRefusesTheExcess(t *testing.T) {
	b := openBase(t, connlimit.Config{MaxPending: 1, Rate: -1})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accept := func() (net.Conn, net.Conn) {
		t.Helper()
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return client, server
	}
	c1, s1 := accept()
	defer c1.Close()
	defer s1.Close()
	var slot1, slot2, slot3 connlimit.Slot
	if !b.AdmitSource(s1, PeerAddrPort(s1), audit.ChannelIM, &slot1) {
		t.Fatal("first connection refused")
	}
	c2, s2 := accept()
	defer c2.Close()
	if b.AdmitSource(s2, PeerAddrPort(s2), audit.ChannelIM, &slot2) {
		t.Fatal("second connection admitted past MaxPending 1")
	}
	_ = c2.SetReadDeadline(time.Now().Add(10 * time.Second))
	frame, err := proto.ReadFrame(c2, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := proto.Unmarshal(frame)
	if rj, ok := m.(*proto.Reject); err != nil || !ok || rj.Code != proto.RejectRateLimited {
		t.Fatalf("refused connection read %v %v, want Reject code %d", m, err, proto.RejectRateLimited)
	}
	if n := b.Audit.Counters().Rejected[string(reasons.RateLimited)]; n != 1 {
		t.Fatalf("rate_limited counted %d times, want 1", n)
	}
	slot1.Release()
	c3, s3 := accept()
	defer c3.Close()
	defer s3.Close()
	if !b.AdmitSource(s3, PeerAddrPort(s3), audit.ChannelIM, &slot3) {
		t.Fatal("connection refused after the first was released")
	}
}

func TestSettingsDefaults(t *testing.T) {
	d := Settings{}.WithDefaults()
	if d.Log == nil || d.Audit == nil || d.Now == nil || d.Rand == nil || d.HandshakeTimeout != DefaultHandshakeTimeout {
		t.Fatalf("defaults: %+v", d)
	}
	if d := (Settings{HandshakeTimeout: time.Second}).WithDefaults(); d.HandshakeTimeout != time.Second {
		t.Fatalf("a set timeout was replaced: %s", d.HandshakeTimeout)
	}
}

// TestCompactMarksAtGrowsWithTheMarks: the mark log is compacted past 1 MiB
// or past two records per mark held, whichever is larger, so that a
// compaction (which writes every mark) costs O(1) per PING admitted.
func TestCompactMarksAtGrowsWithTheMarks(t *testing.T) {
	b := openBase(t, connlimit.Config{})
	if got := b.compactMarksAt(); got != markLogCompactAt {
		t.Fatalf("no marks: compact at %d, want %d", got, markLogCompactAt)
	}
	now := time.Now()
	const n = 20000
	for i := range n {
		node := proto.NodeID{byte(i), byte(i >> 8), 1}
		if err := b.Verifier.Guard.Advance(node, uint64(now.UnixNano()), func() time.Time { return now }, false); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := b.compactMarksAt(), int64(2*store.MarkRecordSize*n); got != want {
		t.Fatalf("%d marks: compact at %d, want %d", n, got, want)
	}
}

func TestReadiness(t *testing.T) {
	var r Readiness
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "starting") {
		t.Fatalf("zero Readiness: %v, want starting", err)
	}
	r.Ready()
	if err := r.Err(); err != nil {
		t.Fatalf("after Ready: %v", err)
	}
	r.Stopping()
	if err := r.Err(); err == nil || !strings.Contains(err.Error(), "shutting down") {
		t.Fatalf("after Stopping: %v", err)
	}
}

// privateDir is an owner-only directory, as a daemon's state directory
// must be (t.TempDir's are made 0777 less the umask).
func privateDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

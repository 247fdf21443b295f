package sim

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/momgate/momgate/proto"
)

// The first frame of a control connection: a ServerHello, a follower's
// NotLeader naming the leader or nobody, or something else (refused).
func TestReadServerHello(t *testing.T) {
	sh := &proto.ServerHello{ServerKey: [32]byte{1, 2, 3}, Mode: proto.ModePing}
	got, err := readServerHello(bytes.NewReader(proto.Marshal(sh)))
	if err != nil || got.ServerKey != sh.ServerKey {
		t.Fatalf("ServerHello: %+v, %v", got, err)
	}
	leader := netip.MustParseAddrPort("127.0.5.2:15001")
	nl := &proto.NotLeader{Addr: proto.AddrFrom(leader.Addr()), Port: leader.Port(), Leader: "s2"}
	_, err = readServerHello(bytes.NewReader(proto.Marshal(nl)))
	var e *NotLeaderError
	if !errors.As(err, &e) || e.Leader != leader || e.Name != "s2" {
		t.Fatalf("NotLeader naming s2: %v", err)
	}
	_, err = readServerHello(bytes.NewReader(proto.Marshal(&proto.NotLeader{})))
	if !errors.As(err, &e) || e.Leader.IsValid() {
		t.Fatalf("NotLeader naming nobody: %v", err)
	}
	if _, err := readServerHello(bytes.NewReader(proto.Marshal(&proto.Welcome{}))); err == nil || errors.As(err, &e) {
		t.Fatalf("a Welcome first: %v", err)
	}
	if _, err := readServerHello(bytes.NewReader(nil)); err == nil {
		t.Fatal("nothing read: no error")
	}
}

func TestClassify(t *testing.T) {
	nl := &NotLeaderError{Leader: netip.MustParseAddrPort("127.0.5.3:15001")}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tc := range []struct {
		err  error
		want attemptKind
	}{
		{fmt.Errorf("node sim00001: 127.0.5.2:1: %w", nl), kindRedirect},
		{fmt.Errorf("node sim00001: dial 127.0.5.1:1: %w", refused), kindRefused},
		{fmt.Errorf("node sim00001: read welcome: %w", errors.New("EOF")), kindFailed},
		{&net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}, kindFailed},
	} {
		got, gotNL := classify(tc.err)
		if got != tc.want || (got == kindRedirect) != (gotNL != nil) {
			t.Errorf("classify(%v) = %s, %v; want %s", tc.err, got, gotNL, tc.want)
		}
	}
}

// reconnection counts only sessions with the given member established
// after the moment, and gives the quantiles of their times.
func TestReconnection(t *testing.T) {
	t0 := time.Unix(1000, 0).UnixNano()
	at := func(d time.Duration) int64 { return t0 + int64(d) }
	on := []int32{2, 2, 2, 2, 0, 3, 2}
	since := []int64{at(3 * time.Second), at(1 * time.Second), at(2 * time.Second), at(4 * time.Second), 0, at(time.Second), t0 - 1}
	r := reconnection(on, since, 1, t0)
	want := Reconnection{Nodes: 7, Server: 1, On: 4, First: time.Second, P50: 2 * time.Second, P99: 4 * time.Second, Last: 4 * time.Second,
		Elsewhere: 1, NotConnected: 1, Stale: 1}
	if r != want {
		t.Fatalf("reconnection:\n got %+v\nwant %+v", r, want)
	}
	if r.Complete() {
		t.Fatal("complete with 3 nodes not back")
	}
	all := reconnection([]int32{1, 1}, []int64{at(time.Second), at(time.Second)}, 0, t0)
	if !all.Complete() || all.Last != time.Second {
		t.Fatalf("every node back: %+v", all)
	}
	if none := reconnection(nil, nil, 0, t0); none.Complete() {
		t.Fatal("no nodes: complete")
	}
	if best, n := mostOn(on, 3); best != 1 || n != 5 {
		t.Fatalf("mostOn = %d, %d; want 1, 5", best, n)
	}
	if best, n := mostOn([]int32{0, 0}, 3); best != -1 || n != 0 {
		t.Fatalf("mostOn with none connected = %d, %d", best, n)
	}
}

func TestQuantile(t *testing.T) {
	ds := make([]time.Duration, 100)
	for i := range ds {
		ds[i] = time.Duration(i+1) * time.Millisecond
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}, {1, 100 * time.Millisecond}, {0, time.Millisecond}} {
		if got := quantile(ds, tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %s, want %s", tc.q, got, tc.want)
		}
	}
	if got := quantile(ds[:1], 0.99); got != time.Millisecond {
		t.Errorf("quantile of one = %s", got)
	}
}

// The board's counts and slots, as the followers write them.
func TestBoard(t *testing.T) {
	list := []string{"127.0.5.1:1", "127.0.5.2:2", "127.0.5.3:3"}
	b := newBoard(list, 2)
	now := time.Now()
	b.up(0, list[2], now)
	b.up(1, list[0], now)
	b.down(1)
	b.count(kindRefused, errors.New("refused"), list[0])
	for i := range maxBoardErrors + 2 {
		b.count(kindFailed, fmt.Errorf("failure %d", i), list[1])
	}
	b.killed.Store(1) // list[0]
	b.count(kindFailed, errors.New("reset by the killed member"), list[0])
	on, since := b.snapshot()
	if on[0] != 3 || on[1] != 0 || since[0] != now.UnixNano() {
		t.Fatalf("slots %v %v", on, since)
	}
	c := b.counted()
	if c != (Counts{Sessions: 2, Lost: 1, Refused: 1, Failed: maxBoardErrors + 2, FailedAtKilled: 1}) {
		t.Fatalf("counts %+v", c)
	}
	if d := c.Sub(Counts{Sessions: 1}); d.Sessions != 1 || d.Failed != c.Failed {
		t.Fatalf("Sub: %+v", d)
	}
	if len(b.errors) != maxBoardErrors || !strings.Contains(b.errors[0], "failure 0") {
		t.Fatalf("kept errors %q", b.errors)
	}
}

func TestGroupMemberAddr(t *testing.T) {
	for i := range MaxGroup {
		a := GroupMemberAddr(i)
		if !a.IsLoopback() || a == probeAddr {
			t.Fatalf("member %d at %s", i, a)
		}
		for j := range MaxNodes / 1000 {
			if NodeAddr(j*1000) == a {
				t.Fatalf("member %d at %s, a node's address", i, a)
			}
		}
	}
}

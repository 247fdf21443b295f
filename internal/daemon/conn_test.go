package daemon

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/proto"
)

func TestAddrPortOf(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 15003}, "127.0.0.9:15003"}, // 16-byte form, unmapped
		{&net.TCPAddr{IP: net.IP{10, 1, 2, 3}, Port: 1}, "10.1.2.3:1"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"}, "[fe80::1%eth0]:80"},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 7}, "127.0.0.2:7"}, // through the string
	} {
		got, err := addrPortOf(tc.addr)
		if err != nil || got.String() != tc.want {
			t.Errorf("addrPortOf(%v) = %v, %v; want %s", tc.addr, got, err, tc.want)
		}
	}
	for _, a := range []net.Addr{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, nil, &net.TCPAddr{}} {
		if got, err := addrPortOf(a); err == nil && got.Addr().IsValid() {
			t.Errorf("addrPortOf(%v) = %v, want an error", a, got)
		}
	}
}

// TestEndpointsAllocateNothing: the admission path reads a connection's
// addresses without formatting them.
func TestEndpointsAllocateNothing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	remote, local, err := Endpoints(c)
	if err != nil || remote != proto.AddrFrom(netip.MustParseAddr("127.0.0.1")) || local != remote {
		t.Fatalf("Endpoints = %v %v %v", remote, local, err)
	}
	if n := testing.AllocsPerRun(100, func() {
		_, _, _ = Endpoints(c)
		_ = PeerAddrPort(c)
	}); n != 0 {
		t.Fatalf("Endpoints and PeerAddrPort allocate %v times", n)
	}
}

// TestServe: Serve serves connections at the same time, each
// on a worker, and when ctx ends closes
// every connection and returns once all are done.
func TestServe(t *testing.T) {
	b := openBase(t, connlimit.Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var open atomic.Int64
	var served atomic.Int64
	hold := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		b.TrackConns(ctx, ln, &open).Serve(func(c net.Conn) func() {
			served.Add(1)
			var one [1]byte
			if _, err := c.Read(one[:]); err != nil {
				return nil
			}
			if one[0] == 'h' { // held on a goroutine of its own until released or closed at stop
				return func() {
					<-hold
					_, _ = c.Read(one[:])
				}
			}
			_, _ = c.Write(one[:])
			return nil
		})
	}()
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Sequential echoes: each connection served and closed by Serve.
	for i := range 20 {
		c := dial()
		if _, err := c.Write([]byte{'x'}); err != nil {
			t.Fatal(err)
		}
		var got [1]byte
		if _, err := io.ReadFull(c, got[:]); err != nil || got[0] != 'x' {
			t.Fatalf("echo %d: %v %q", i, err, got)
		}
		if _, err := c.Read(got[:]); err != io.EOF {
			t.Fatalf("echo %d: connection not closed after serve: %v", i, err)
		}
		c.Close()
	}
	// Several held at once: none waits for another.
	var held []net.Conn
	for range 5 {
		c := dial()
		if _, err := c.Write([]byte{'h'}); err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	c := dial()
	if _, err := c.Write([]byte{'y'}); err != nil {
		t.Fatal(err)
	}
	var got [1]byte
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got[:]); err != nil {
		t.Fatalf("a connection waited for held ones: %v", err)
	}
	c.Close()
	cancel()
	var wg sync.WaitGroup
	for _, h := range held {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = h.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := h.Read(got[:1]); err != io.EOF {
				t.Errorf("held connection not closed at stop: %v", err)
			}
		}()
	}
	wg.Wait()
	close(hold)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after ctx ended")
	}
	if n := open.Load(); n != 0 {
		t.Fatalf("%d connections counted open after Serve returned", n)
	}
	if n := served.Load(); n != 26 {
		t.Fatalf("served %d connections, want 26", n)
	}
}

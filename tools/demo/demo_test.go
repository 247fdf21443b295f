package demo

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/momgate/momgate/proto"
)

// fakeSister answers the first frame of each connection: the first Ping
// it sees with a PingReply-typed frame of its own, any later copy with a
// Reject (replay). It returns the frames it read.
func fakeSister(t *testing.T, ln net.Listener, conns int) <-chan []byte {
	t.Helper()
	got := make(chan []byte, conns)
	go func() {
		var first []byte
		for range conns {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			frame, err := proto.ReadFrameLimit(c, nil, 4096)
			if err != nil {
				c.Close()
				return
			}
			got <- append([]byte(nil), frame...)
			if first == nil {
				first = frame
				reply := append([]byte(nil), frame...)
				reply[3] = byte(proto.TypePingReply)
				_, _ = c.Write(reply)
			} else {
				_ = proto.WriteFrame(c, &proto.Reject{Code: proto.RejectReplay, Reason: "timestamp already admitted"})
			}
			c.Close()
		}
	}()
	return got
}

// pingFrame is a frame of type Ping of the right size; its contents do
// not matter to the relay.
func pingFrame() []byte {
	f := proto.AppendHeader(nil, proto.Header{Version: proto.V2, Type: proto.TypePing, Length: 116})
	return append(f, make([]byte, 116)...)
}

// TestRelayAndReplay: the relay passes the MOM's swap through both ways
// and keeps the Ping; the replay sends the same bytes and returns the
// sister's Reject.
func TestRelayAndReplay(t *testing.T) {
	sister, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sister.Close()
	seen := fakeSister(t, sister, 2)
	relay, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	type result struct {
		cp  *Capture
		err error
	}
	done := make(chan result, 1)
	go func() {
		cp, err := Relay(ctx, relay, sister.Addr().String(), "127.0.0.1")
		done <- result{cp, err}
	}()
	mom, err := net.Dial("tcp", relay.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ping := pingFrame()
	if _, err := mom.Write(ping); err != nil {
		t.Fatal(err)
	}
	reply, err := proto.ReadFrameLimit(mom, nil, 4096)
	if err != nil || proto.Type(reply[3]) != proto.TypePingReply {
		t.Fatalf("the MOM got %x, %v through the relay", reply, err)
	}
	mom.Close()
	r := <-done
	if r.err != nil || string(r.cp.Frame) != string(ping) || string(<-seen) != string(ping) {
		t.Fatalf("relay: %+v, %v", r.cp, r.err)
	}
	rj, err := Replay(ctx, r.cp, sister.Addr().String(), "127.0.0.1")
	if err != nil || rj.Code != proto.RejectReplay {
		t.Fatalf("replay: %+v, %v", rj, err)
	}
	if string(<-seen) != string(ping) {
		t.Fatal("the replay sent other bytes")
	}
}

// TestRelayRefusesNonPing: a first frame that is no Ping is not relayed.
func TestRelayRefusesNonPing(t *testing.T) {
	sister, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sister.Close()
	go func() {
		for {
			c, err := sister.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	relay, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		c, err := net.Dial("tcp", relay.Addr().String())
		if err == nil {
			_ = proto.WriteFrame(c, &proto.Reject{Code: proto.RejectMalformed})
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := Relay(ctx, relay, sister.Addr().String(), "127.0.0.1"); err == nil {
		t.Fatal("a Reject relayed as a Ping")
	}
	// A sister that admits the replay is the demo's failure.
	ok, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ok.Close()
	go func() {
		c, err := ok.Accept()
		if err == nil {
			f, _ := proto.ReadFrameLimit(c, nil, 4096)
			f[3] = byte(proto.TypePingReply)
			_, _ = c.Write(f)
			c.Close()
		}
	}()
	if _, err := Replay(ctx, &Capture{Frame: pingFrame()}, ok.Addr().String(), "127.0.0.1"); !errors.Is(err, ErrAdmitted) {
		t.Fatalf("an answered replay: %v, want ErrAdmitted", err)
	}
}

func TestForegroundExitStatus(t *testing.T) {
	for script, want := range map[string]int{"exit 0": 0, "exit 3": 3, "kill -TERM $$": 128 + 15} {
		got, err := Foreground("sh", "-c", script)
		if err != nil || got != want {
			t.Errorf("Foreground(sh -c %q) = %d, %v; want %d", script, got, err, want)
		}
	}
	if _, err := Foreground("/nonexistent/command"); err == nil {
		t.Error("a command that cannot start: no error")
	}
}

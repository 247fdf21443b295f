// Package demo is the machinery of `make run` (scripts/demo.sh): a relay
// on the path between two MOMs that captures a PING and replays it, so the
// demo shows a replay refused, and a runner that gives the demo the
// terminal, so that Ctrl-C stops the demo and not the make that ran it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// Capture is what the relay saw of one connection from a MOM to a sister.
type Capture struct {
	Frame []byte // the MOM's first frame, as sent: its Ping
	KeyID uint32 // the key id the Ping names
}

// Relay relays one connection accepted on ln to the sister at to, dialling
// from the IP from (the MOM's own address: a PING names its sender's
// address and the sister checks it against the connection's source), and
// returns the first frame the MOM sent. The relay is a man in the middle:
// the MOM and the sister complete their swap through it, and it keeps a
// copy. It returns when both sides are done, or ctx ends.
func Relay(ctx context.Context, ln net.Listener, to, from string) (*Capture, error) {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	in, err := ln.Accept()
	if err != nil {
		return nil, fmt.Errorf("relay: accept: %w", err)
	}
	defer in.Close()
	out, err := dialFrom(ctx, from, to)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	stopConns := context.AfterFunc(ctx, func() { in.Close(); out.Close() })
	defer stopConns()
	frame, err := proto.ReadFrameLimit(in, nil, handshake.PreAuthMaxFrame)
	if err != nil {
		return nil, fmt.Errorf("relay: read the MOM's first frame: %w", err)
	}
	if t := proto.Type(frame[3]); t != proto.TypePing && t != proto.TypeSessionPing {
		return nil, fmt.Errorf("relay: the MOM's first frame is a %s, not a Ping", t)
	}
	cp := &Capture{Frame: append([]byte(nil), frame...)}
	cp.KeyID, _ = ping.KeyIDOf(frame)
	if _, err := out.Write(frame); err != nil {
		return nil, fmt.Errorf("relay: forward the Ping: %w", err)
	}
	done := make(chan struct{})
	go func() { // sister to MOM, until the sister closes
		defer close(done)
		_, _ = io.Copy(in, out)
		in.Close()
	}()
	_, _ = io.Copy(out, in) // MOM to sister, until the MOM closes
	out.Close()
	<-done
	return cp, nil
}

// Replay sends a captured frame to the sister at to from the IP from, as
// an attacker on the path would, and returns the sister's Reject; an
// error if the sister admitted it or the connection failed.
func Replay(ctx context.Context, cp *Capture, to, from string) (*proto.Reject, error) {
	c, err := dialFrom(ctx, from, to)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write(cp.Frame); err != nil {
		return nil, fmt.Errorf("replay: send: %w", err)
	}
	frame, err := proto.ReadFrameLimit(c, nil, handshake.PreAuthMaxFrame)
	if err != nil {
		return nil, fmt.Errorf("replay: read the answer: %w", err)
	}
	if t := proto.Type(frame[3]); t != proto.TypeReject {
		return nil, fmt.Errorf("%w: the sister answered the replayed Ping with a %s", ErrAdmitted, t)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, fmt.Errorf("replay: decode the answer: %w", err)
	}
	return msg.(*proto.Reject), nil
}

// ErrAdmitted means a replayed Ping was not refused.
var ErrAdmitted = errors.New("replay admitted")

// dialFrom connects to to from the IP from.
func dialFrom(ctx context.Context, from, to string) (net.Conn, error) {
	ip := net.ParseIP(from)
	if ip == nil {
		return nil, fmt.Errorf("--from %q: not an IP address", from)
	}
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: ip}}
	c, err := d.DialContext(ctx, "tcp", to)
	if err != nil {
		return nil, fmt.Errorf("connect to %s from %s: %w", to, from, err)
	}
	return c, nil
}

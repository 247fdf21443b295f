// Package loopbench measures connection rates on loopback for `make
// bench-munge`: momgate PING swaps through a real MOM daemon on new
// connections, and the raw rate of connect + one frame each way + close
// against a trivial echo server. Each operation is a whole new TCP
// connection, as a sister MOM's IM connection is.
package loopbench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/momgate/momgate/proto"
)

// Result is one measured phase.
type Result struct {
	Name       string        `json:"name"`
	Workers    int           `json:"workers"`
	Ops        uint64        `json:"ops"`
	Errors     uint64        `json:"errors"`
	Elapsed    time.Duration `json:"elapsed_ns"`
	PerSecond  float64       `json:"per_second"`
	FirstError string        `json:"first_error,omitempty"`
}

// Op is one measured operation by worker w; it must end by itself (use
// deadlines).
type Op func(ctx context.Context, w int) error

// Measure runs op in a loop in each of workers goroutines: warmup first,
// unmeasured, then d measured. Operations that fail are counted, not
// retried. It returns when every worker has stopped.
func Measure(ctx context.Context, name string, workers int, warmup, d time.Duration, op Op) Result {
	return measure(ctx, name, workers, warmup, d, op, nil)
}

// Window is called at the edges of a measured window: begin before the
// first operation counted, end after the last.
type Window struct {
	Begin, End func()
}

// measure is Measure, calling w (if not nil) at the edges of the
// measured time.
func measure(ctx context.Context, name string, workers int, warmup, d time.Duration, op Op, w *Window) Result {
	var (
		measuring atomic.Bool
		stop      atomic.Bool
		ops, errs atomic.Uint64
		firstErr  atomic.Value
		wg        sync.WaitGroup
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				err := op(ctx, w)
				if !measuring.Load() || stop.Load() {
					continue
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				ops.Add(1)
			}
		}()
	}
	sleep(ctx, warmup)
	if w != nil && w.Begin != nil {
		w.Begin()
	}
	measuring.Store(true)
	began := time.Now()
	sleep(ctx, d)
	stop.Store(true)
	elapsed := time.Since(began)
	if w != nil && w.End != nil {
		w.End()
	}
	wg.Wait()
	r := Result{Name: name, Workers: workers, Ops: ops.Load(), Errors: errs.Load(), Elapsed: elapsed}
	if s, ok := firstErr.Load().(string); ok {
		r.FirstError = s
	}
	if elapsed > 0 {
		r.PerSecond = float64(r.Ops) / elapsed.Seconds()
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Dialer returns a dialer that connects from src. It sets
// IP_BIND_ADDRESS_NO_PORT so the kernel picks the source port at connect
// time per destination, as for an unbound socket; without it a bound
// source runs out of ports after ~28,000 connections a minute.
func Dialer(src netip.Addr) *net.Dialer {
	return &net.Dialer{
		Timeout:   5 * time.Second,
		LocalAddr: &net.TCPAddr{IP: src.AsSlice()},
		Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
			}); err != nil {
				return err
			}
			return serr
		},
	}
}

// Sizes of the raw exchange: the same bytes on the wire as a Ping and a
// PingReply.
const (
	rawRequestBody = 116
	rawReplyBody   = 132
)

var (
	rawRequest = proto.AppendHeader(make([]byte, 0, proto.HeaderSize+rawRequestBody),
		proto.Header{Version: proto.V2, Type: proto.TypePing, Length: rawRequestBody})[:proto.HeaderSize+rawRequestBody]
	rawReply = proto.AppendHeader(make([]byte, 0, proto.HeaderSize+rawReplyBody),
		proto.Header{Version: proto.V2, Type: proto.TypePingReply, Length: rawReplyBody})[:proto.HeaderSize+rawReplyBody]
)

// Echo serves the raw exchange on ln until ctx ends: read one frame, write
// one frame, then read until the client closes, as a MOM does after a swap.
// It reads as the MOM does, through a 256-byte buffer (one read(2) for a
// small frame), and is otherwise the plain Go server: a goroutine per
// connection, the listener's default TCP keep-alive.
func Echo(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			rd := bufio.NewReaderSize(c, 256)
			buf := make([]byte, 256)
			if _, err := proto.ReadFrameLimit(rd, buf, 4096); err != nil {
				return
			}
			if _, err := c.Write(rawReply); err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, rd)
		}()
	}
}

// RawOp returns the raw operation: connect to target from worker w's
// sources, send one frame, read one frame, close.
func RawOp(target string, sources [][]netip.Addr) Op {
	dialers := dialersFor(sources)
	var next []atomic.Uint64 = make([]atomic.Uint64, len(sources))
	return func(ctx context.Context, w int) error {
		ds := dialers[w]
		d := ds[next[w].Add(1)%uint64(len(ds))]
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(rawRequest); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		var buf [proto.HeaderSize + rawReplyBody]byte
		if _, err := proto.ReadFrameLimit(c, buf[:], 4096); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		return nil
	}
}

func dialersFor(sources [][]netip.Addr) [][]*net.Dialer {
	out := make([][]*net.Dialer, len(sources))
	for w, ss := range sources {
		for _, s := range ss {
			out[w] = append(out[w], Dialer(s))
		}
	}
	return out
}

// Sources gives each of workers its own perWorker loopback addresses,
// 127.base.w.1 and up.
func Sources(base byte, workers, perWorker int) [][]netip.Addr {
	out := make([][]netip.Addr, workers)
	for w := range workers {
		for i := range perWorker {
			out[w] = append(out[w], netip.AddrFrom4([4]byte{127, base, byte(w), byte(1 + i)}))
		}
	}
	return out
}

package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// The transport floor of a heartbeat: a trivial server that answers each
// Ping-sized frame on a kept connection with a PingReply-sized one, no
// cryptography, no deadlines, no state, measured as the heartbeats are
// (same connections and concurrency, pinned the same way). Its CPU time
// per request is what the kernel and the Go runtime cost per request at
// that rate; the server's CPU per heartbeat above it is momgate's own.

// EchoServerArg is the hidden flag of momgate-scale that runs ServeEcho.
const EchoServerArg = "--echo-server"

var echoReply = make([]byte, ping.ReplyFrameSize)

// ServeEcho answers frames on every connection of ln until ctx ends.
func ServeEcho(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			done := context.AfterFunc(ctx, func() { c.Close() })
			defer done()
			rd := bufio.NewReaderSize(c, 160)
			buf := make([]byte, ping.FrameSize)
			for {
				if _, err := proto.ReadFrameLimit(rd, buf, 4096); err != nil {
					return
				}
				if _, err := c.Write(echoReply); err != nil {
					return
				}
			}
		}()
	}
}

// echoFloor measures the transport floor with conns connections from the
// nodes' addresses, each making k round trips, Workers at a time.
func (r *runner) echoFloor(ctx context.Context, conns, k int) (Phase, time.Duration, time.Duration, error) {
	port, err := freePortOn("127.0.0.3")
	if err != nil {
		return Phase{}, 0, 0, err
	}
	addr := fmt.Sprintf("127.0.0.3:%d", port)
	self, err := os.Executable()
	if err != nil {
		return Phase{}, 0, 0, err
	}
	cmd := exec.Command(self, EchoServerArg, addr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return Phase{}, 0, 0, fmt.Errorf("start echo server: %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for i := range conns {
		var c net.Conn
		for deadline := time.Now().Add(r.cfg.Timeout); ; {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: NodeAddr(i).AsSlice()}}
			if c, err = d.DialContext(ctx, "tcp", addr); err == nil || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			time.Sleep(20 * time.Millisecond) // the echo server is starting
		}
		if err != nil {
			return Phase{}, 0, 0, fmt.Errorf("connect to the echo server: %w", err)
		}
		cs = append(cs, c)
	}
	var pins []*pinned
	for cpu, pid := range []int{cmd.Process.Pid, os.Getpid()} {
		if p, err := pin(pid, cpu); err == nil {
			pins = append(pins, p)
		}
	}
	defer func() {
		for _, p := range pins {
			p.restore()
		}
	}()
	if err := pause(ctx, 3*time.Second); err != nil { // both runtimes follow the affinity
		return Phase{}, 0, 0, err
	}
	u0, s0 := cpuTimes(cmd.Process.Pid)
	t0 := time.Now()
	var next, errs atomic.Int64
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(cs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := make([]byte, ping.FrameSize)
			copy(req, proto.AppendHeader(nil, proto.Header{Version: proto.V2, Type: proto.TypePing, Length: uint32(ping.FrameSize - proto.HeaderSize)}))
			in := make([]byte, ping.ReplyFrameSize)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(cs) {
					return
				}
				c := cs[i]
				_ = c.SetDeadline(time.Now().Add(r.cfg.Timeout))
				for range k {
					if _, err := c.Write(req); err != nil {
						errs.Add(1)
						break
					}
					if _, err := io.ReadFull(c, in); err != nil {
						errs.Add(1)
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	ph := Phase{Count: len(cs) * k, Errors: int(errs.Load()), Duration: time.Since(t0)}
	u1, s1 := cpuTimes(cmd.Process.Pid)
	return ph, u1 + s1 - u0 - s0, s1 - s0, nil
}

package loopbench

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/mom"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/server"
	"github.com/momgate/momgate/session"
)

// Addresses of the in-process benchmark: the server, the MOM, the echo
// listener, and 32 client sources 127.84.0.1-32.
const (
	inprocServerIP = "127.0.84.1"
	inprocMomIP    = "127.0.84.2"
	inprocEchoIP   = "127.0.84.3"
	inprocSources  = 32
)

// rawClient runs one connection's exchange with raw system calls, so that
// it allocates nothing in Go: the allocations a benchmark reports are the
// server's.
type rawClient struct {
	srcs    []unix.SockaddrInet4
	next    int
	dst     unix.SockaddrInet4
	dstAddr proto.Addr
	buf     [512]byte
}

func newRawClient(t testing.TB, target netip.AddrPort) *rawClient {
	c := &rawClient{dst: unix.SockaddrInet4{Port: int(target.Port()), Addr: target.Addr().As4()}, dstAddr: proto.AddrFrom(target.Addr())}
	for i := range inprocSources {
		c.srcs = append(c.srcs, unix.SockaddrInet4{Addr: [4]byte{127, 84, 0, byte(1 + i)}})
	}
	return c
}

// dial connects from the next source; it returns the socket and the
// source address.
func (c *rawClient) dial() (int, proto.Addr, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, proto.Addr{}, err
	}
	src := &c.srcs[c.next%len(c.srcs)]
	c.next++
	tv := unix.Timeval{Sec: 5}
	err = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_BIND_ADDRESS_NO_PORT, 1)
	}
	if err == nil {
		err = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	}
	if err == nil {
		err = unix.Bind(fd, src)
	}
	if err == nil {
		err = connect(fd, &c.dst)
	}
	if err != nil {
		unix.Close(fd)
		return -1, proto.Addr{}, err
	}
	return fd, proto.AddrFrom(netip.AddrFrom4(src.Addr)), nil
}

// connect is connect(2), going on after the runtime's preemption signal
// interrupts it (the connection goes on meanwhile).
func connect(fd int, sa unix.Sockaddr) error {
	err := unix.Connect(fd, sa)
	for err == unix.EINTR || err == unix.EALREADY {
		err = unix.Connect(fd, sa)
	}
	if err == unix.EISCONN {
		return nil
	}
	return err
}

// write writes b whole.
func write(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// readFrame reads one whole frame of the socket into c.buf.
func (c *rawClient) readFrame(fd int) ([]byte, error) {
	n := 0
	for {
		if n >= proto.HeaderSize {
			h, err := proto.ParseHeader(c.buf[:n])
			if err != nil {
				return nil, err
			}
			total := proto.HeaderSize + int(h.Length)
			if total > len(c.buf) {
				return nil, proto.ErrOversize
			}
			if n >= total {
				return c.buf[:total], nil
			}
		}
		m, err := unix.Read(fd, c.buf[n:])
		if err == unix.EINTR { // the runtime's preemption signal
			continue
		}
		if err != nil {
			return nil, err
		}
		if m == 0 {
			return nil, io.ErrUnexpectedEOF
		}
		n += m
	}
}

// raw is the raw exchange: connect, a 124-byte frame, a 140-byte frame back, close.
func (c *rawClient) raw() error {
	fd, _, err := c.dial()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := write(fd, rawRequest); err != nil {
		return err
	}
	_, err = c.readFrame(fd)
	return err
}

// swap is a PING swap: connect, seal and send a Ping, read and verify the
// PingReply, close.
func (c *rawClient) swap(s *ping.Sealer, v *ping.Verifier, out []byte) error {
	fd, local, err := c.dial()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	frame, rnd, err := s.Ping(out[:0], local, c.dstAddr)
	if err != nil {
		return err
	}
	if err := write(fd, frame); err != nil {
		return err
	}
	in, err := c.readFrame(fd)
	if err != nil {
		return err
	}
	var res ping.Result
	return v.VerifyReply(in, c.dstAddr, local, &rnd, &res)
}

// sessionSwap is a session swap with forward secrecy (encrypt only): connect,
// SessionPing, SessionReply verified, keys derived, close. With eph set the
// client reuses its ephemeral key, as a MOM does.
func (c *rawClient) sessionSwap(s *ping.Sealer, v *ping.Verifier, eph *session.Ephemerals, out []byte) error {
	fd, local, err := c.dial()
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	in, err := session.NewInitiator(session.Config{Channel: session.ChannelIM, Min: session.Encrypt, Rand: rand.Reader, Ephemerals: eph})
	if err != nil {
		return err
	}
	frame, err := in.AppendPing(out[:0], s, local, c.dstAddr)
	if err != nil {
		return err
	}
	if err := write(fd, frame); err != nil {
		return err
	}
	reply, err := c.readFrame(fd)
	if err != nil {
		return err
	}
	var res ping.Result
	sess, err := in.Finish(reply, v, c.dstAddr, local, time.Now(), &res)
	if err == nil && sess == nil {
		err = fmt.Errorf("the MOM chose none")
	}
	return err
}

// inprocCluster is a server and one enrolled MOM running in this process.
type inprocCluster struct {
	momIM netip.AddrPort
	ring  *keys.Holder
	stop  func()
}

func startInprocCluster(b *testing.B) *inprocCluster {
	b.Helper()
	dir, err := os.MkdirTemp("", "mgbench") // short: the admin socket path has a limit
	if err != nil {
		b.Fatal(err)
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stop := func() { cancel(); wg.Wait(); os.RemoveAll(dir) }
	fail := func(err error) { stop(); b.Fatal(err) }
	srvDir := filepath.Join(dir, "server")
	if _, err := server.Init(srvDir, nil, time.Now()); err != nil {
		fail(err)
	}
	srv, err := server.New(server.Config{StateDir: srvDir, Listen: inprocServerIP + ":0", Log: quiet})
	if err != nil {
		fail(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = srv.Run(ctx) }()
	var cl *admin.Client
	for deadline := time.Now().Add(20 * time.Second); ; {
		if cl, err = admin.Dial(ctx, filepath.Join(srvDir, "admin.sock")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("server admin socket: %w", err))
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	defer cl.Close()
	var res admin.CreateNodeResult
	if err := cl.Call(ctx, admin.OpCreateNode, admin.CreateNodeArgs{Name: "bench", Mom: inprocMomIP}, &res); err != nil {
		fail(err)
	}
	momDir := filepath.Join(dir, "mom")
	m, err := mom.New(mom.Config{StateDir: momDir, Server: srv.Addr().String(), Listen: inprocMomIP + ":0", Enroll: res.Token,
		Log: quiet, Audit: audit.New(audit.Config{Out: io.Discard}), SourceLimits: connlimit.Config{Rate: -1}})
	if err != nil {
		fail(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); _ = m.Run(ctx) }()
	c := &inprocCluster{stop: stop}
	for deadline := time.Now().Add(20 * time.Second); ; {
		if st := m.Status(); st.Connected && m.Addr() != nil {
			c.momIM = m.Addr().(*net.TCPAddr).AddrPort()
			break
		}
		if time.Now().After(deadline) {
			fail(fmt.Errorf("MOM not enrolled and connected"))
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	ring, err := keystore.LoadKeyring(filepath.Join(momDir, "keyring.json"))
	if err != nil {
		fail(err)
	}
	c.ring = keys.NewHolder(ring)
	return c
}

// BenchmarkConnection runs one operation per iteration over a new loopback
// connection from a client that allocates nothing, so that -benchmem
// reports the server's allocations per connection: raw is the echo
// server of make bench-munge, swap a real MOM (in this process) admitting
// a PING swap with every check, its mark log, audit entry and peer table.
//
//	go test -run '^$' -bench Connection -benchmem ./tools/loopbench/
func BenchmarkConnection(b *testing.B) {
	cl := startInprocCluster(b)
	defer cl.stop()
	ln, err := net.Listen("tcp", inprocEchoIP+":0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	echoDone := make(chan struct{})
	go func() { defer close(echoDone); _ = Echo(ctx, ln) }()
	defer func() { cancel(); <-echoDone }()

	b.Run("raw", func(b *testing.B) {
		c := newRawClient(b, ln.Addr().(*net.TCPAddr).AddrPort())
		b.ReportAllocs()
		for b.Loop() {
			if err := c.raw(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("session", func(b *testing.B) {
		c := newRawClient(b, cl.momIM)
		st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
		if err != nil {
			b.Fatal(err)
		}
		var node proto.NodeID
		_, _ = rand.Read(node[:])
		s := &ping.Sealer{Keys: cl.ring, Stamper: st, Rand: rand.Reader, Node: node}
		v := &ping.Verifier{Keys: cl.ring, Now: time.Now, Guard: ping.NewGuard(ping.GuardConfig{Freshness: ping.DefaultFreshness}, nil)}
		eph, err := session.NewEphemerals(session.EphemeralConfig{Rand: rand.Reader, Now: time.Now})
		if err != nil {
			b.Fatal(err)
		}
		defer eph.Close()
		out := make([]byte, 0, ping.ExtFrameSize)
		b.ReportAllocs()
		for b.Loop() {
			if err := c.sessionSwap(s, v, eph, out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("swap", func(b *testing.B) {
		c := newRawClient(b, cl.momIM)
		st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
		if err != nil {
			b.Fatal(err)
		}
		var node proto.NodeID
		_, _ = rand.Read(node[:])
		s := &ping.Sealer{Keys: cl.ring, Stamper: st, Rand: rand.Reader, Node: node}
		v := &ping.Verifier{Keys: cl.ring, Now: time.Now, Guard: ping.NewGuard(ping.GuardConfig{Freshness: ping.DefaultFreshness}, nil)}
		out := make([]byte, 0, ping.FrameSize)
		b.ReportAllocs()
		for b.Loop() {
			if err := c.swap(s, v, out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// Package raftnet carries a momgate HA group's replication traffic: a
// stream layer for hashicorp/raft's NetworkTransport over TCP with TLS 1.3
// between member certificates of the group CA (package group), so every
// byte between members is authenticated and encrypted with keys only
// members hold, and a transport wrapper that records, per peer, the last
// contact and how far its log is behind (list server, docs/HA.md).
//
// One port serves members (ALPN momgate-raft/1, both ends certified) and
// joiners (ALPN momgate-join/1, handed to Config.OnJoin).
package raftnet

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/group"
)

// ErrClosed is returned by Accept and Dial once the layer is closed.
var ErrClosed = errors.New("replication layer closed")

// Defaults of Config.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxHandshakes    = 64
)

// Config configures Listen.
type Config struct {
	// Listen is the replication address IP:PORT (port 0 picks one).
	Listen string
	// Credentials are this member's certificate and the group CA.
	Credentials *group.Credentials
	// HandshakeTimeout bounds a connection's TLS handshake.
	HandshakeTimeout time.Duration
	// MaxHandshakes bounds handshakes in progress; connections beyond it
	// are closed at once (and counted as refused).
	MaxHandshakes int
	// OnJoin, if set, serves a joiner's connection (ALPN momgate-join/1)
	// until it returns; the layer closes the connection then. Unset,
	// joiners are refused.
	OnJoin func(ctx context.Context, c *tls.Conn)
	// Log receives refusals; nil logs nothing.
	Log logrus.FieldLogger
}

// Layer is a raft.StreamLayer over TLS. Close closes the listener and
// every connection it accepted or dialled, as the death of the process
// would.
type Layer struct {
	cfg     Config
	ln      net.Listener
	from    *net.TCPAddr // source address of dialled connections
	ready   chan net.Conn
	sem     chan struct{}
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	refused atomic.Int64

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

// Listen opens the replication port and starts accepting.
func Listen(cfg Config) (*Layer, error) {
	if cfg.Credentials == nil {
		return nil, errors.New("replication layer: no credentials")
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxHandshakes <= 0 {
		cfg.MaxHandshakes = DefaultMaxHandshakes
	}
	if cfg.Log == nil {
		l := logrus.New()
		l.Out = nopWriter{}
		cfg.Log = l
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen for replication on %s: %w", cfg.Listen, err)
	}
	l := &Layer{cfg: cfg, ln: ln, ready: make(chan net.Conn), sem: make(chan struct{}, cfg.MaxHandshakes),
		conns: map[*trackedConn]struct{}{}}
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsUnspecified() {
		// Dial from the address we listen on, so a member's traffic comes
		// from its own address (one 127.0.0.x per member in tests).
		l.from = &net.TCPAddr{IP: ap.Addr().AsSlice()}
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// Addr is the listener's address.
func (l *Layer) Addr() net.Addr { return l.ln.Addr() }

// Refused counts connections refused: failed handshakes (non-members,
// wrong protocol, timeouts) and connections over MaxHandshakes.
func (l *Layer) Refused() int64 { return l.refused.Load() }

func (l *Layer) acceptLoop() {
	defer l.wg.Done()
	for {
		raw, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			l.cfg.Log.WithError(err).Warn("replication accept")
			select {
			case <-l.ctx.Done():
				return
			case <-time.After(100 * time.Millisecond): // e.g. out of file descriptors
			}
			continue
		}
		select {
		case l.sem <- struct{}{}:
		default:
			l.refuse(raw, errors.New("too many handshakes in progress"))
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.serve(raw, sync.OnceFunc(func() { <-l.sem }))
		}()
	}
}

func (l *Layer) refuse(raw net.Conn, err error) {
	l.refused.Add(1)
	l.cfg.Log.WithError(err).WithField("peer", raw.RemoteAddr().String()).Warn("replication connection refused")
	raw.Close()
}

// serve runs the handshake of one accepted connection, gives its
// handshake slot back (release), and routes it by protocol.
func (l *Layer) serve(raw net.Conn, release func()) {
	defer release()
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	tc := tls.Server(raw, l.cfg.Credentials.ServerConfig())
	err := tc.HandshakeContext(ctx)
	release()
	if err != nil {
		l.refuse(raw, err)
		return
	}
	c, ok := l.track(tc)
	if !ok {
		return
	}
	switch tc.ConnectionState().NegotiatedProtocol {
	case group.ALPNRaft:
		select {
		case l.ready <- c:
		case <-l.ctx.Done():
			c.Close()
		}
	case group.ALPNJoin:
		defer c.Close()
		if l.cfg.OnJoin == nil {
			l.refused.Add(1)
			l.cfg.Log.WithField("peer", raw.RemoteAddr().String()).Warn("join connection refused: this member does not serve joins")
			return
		}
		l.cfg.OnJoin(l.ctx, tc)
	default:
		c.Close()
	}
}

// Accept returns the next member connection.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, ErrClosed
	}
}

// Dial opens a member connection to address, checking that the member
// there holds a certificate of the group.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	if l.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if timeout <= 0 {
		timeout = l.cfg.HandshakeTimeout
	}
	ctx, cancel := context.WithTimeout(l.ctx, timeout)
	defer cancel()
	d := net.Dialer{LocalAddr: l.from}
	raw, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		return nil, fmt.Errorf("dial member %s: %w", address, err)
	}
	tc := tls.Client(raw, l.cfg.Credentials.ClientConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("handshake with member %s: %w", address, err)
	}
	c, ok := l.track(tc)
	if !ok {
		return nil, ErrClosed
	}
	return c, nil
}

// Close stops accepting, closes every connection and waits for the
// layer's goroutines (but not for an OnJoin that ignores its context).
func (l *Layer) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	l.cancel()
	err := l.ln.Close()
	for c := range conns {
		c.Conn.Close()
	}
	l.wg.Wait()
	return err
}

// trackedConn is a connection the layer closes on Close.
type trackedConn struct {
	net.Conn
	l    *Layer
	once sync.Once
}

func (l *Layer) track(c net.Conn) (*trackedConn, bool) {
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return nil, false
	}
	l.conns[tc] = struct{}{}
	return tc, true
}

// Close closes the connection and forgets it.
func (c *trackedConn) Close() error {
	var err error
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		err = c.Conn.Close()
	})
	return err
}

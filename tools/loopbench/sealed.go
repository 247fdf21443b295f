package loopbench

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// The sealed-session phases of the loopback benchmark (issue 12): a
// session swap with forward secrecy on new connections, and IM request
// and response on one admitted connection per worker under each
// protection, both through a real MOM.

// benchWorker is one benchmark client: a sender node of its own, with its
// own timestamps, so workers never replay each other's marks.
type benchWorker struct {
	sealer   *ping.Sealer
	verifier *ping.Verifier
	next     atomic.Uint64
	// eph is the worker's reused ephemeral key, as a MOM's IM swaps use
	// one (nil: a fresh key per swap).
	eph *session.Ephemerals
}

func newBenchWorkers(n int, keys ping.KeySource) ([]*benchWorker, error) {
	ws := make([]*benchWorker, n)
	for w := range ws {
		st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
		if err != nil {
			return nil, err
		}
		var node proto.NodeID
		if _, err := rand.Read(node[:]); err != nil {
			return nil, fmt.Errorf("node id: %w", err)
		}
		ws[w] = &benchWorker{
			sealer: &ping.Sealer{Keys: keys, Stamper: st, Rand: rand.Reader, Node: node},
			verifier: &ping.Verifier{Keys: keys, Now: time.Now,
				Guard: ping.NewGuard(ping.GuardConfig{Freshness: ping.DefaultFreshness}, nil)},
		}
	}
	return ws, nil
}

// sessionSwap runs the initiator's session swap offering at least min on
// c, within 5 s.
func (wk *benchWorker) sessionSwap(c net.Conn, min session.Protection) (*session.Session, error) {
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		return nil, err
	}
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return nil, err
	}
	defer c.SetDeadline(time.Time{})
	var res ping.Result
	cfg := session.Config{Channel: session.ChannelIM, Min: min, Rand: rand.Reader, Ephemerals: wk.eph}
	s, err := handshake.InitiateSession(c, remote, local, wk.sealer, wk.verifier, cfg, time.Now, &res)
	if err != nil {
		return nil, fmt.Errorf("session swap: %w", err)
	}
	if got := protectionOf(s); got != min {
		return nil, fmt.Errorf("session swap: the MOM chose %s, the bench offered at least %s (set its im_security to none)", got, min)
	}
	return s, nil
}

func protectionOf(s *session.Session) session.Protection {
	if s == nil {
		return session.None
	}
	return s.Protection()
}

// SessionSwapOp returns the session swap with forward secrecy against a
// MOM's IM listener at target: connect from one of worker w's sources,
// SessionPing offering encrypt only (an ephemeral X25519 key), the
// SessionReply verified, both session keys derived, close. keys must hold
// the cluster's active key. With reuse, each worker is a MOM as the
// daemon is: a reused ephemeral key of its own (session.Ephemerals,
// maintained until ctx ends), so that after the first swap neither side
// computes an exchange again within the key's lifetime; without, a fresh
// key per swap, a peer the MOM has never met (one exchange at the MOM, a
// key pair and an exchange at the client).
func SessionSwapOp(ctx context.Context, target string, sources [][]netip.Addr, keys ping.KeySource, reuse bool) (Op, error) {
	dialers := dialersFor(sources)
	ws, err := newBenchWorkers(len(sources), keys)
	if err != nil {
		return nil, err
	}
	if reuse {
		for _, wk := range ws {
			if wk.eph, err = session.NewEphemerals(session.EphemeralConfig{Rand: rand.Reader, Now: time.Now}); err != nil {
				return nil, err
			}
			go daemon.MaintainEphemerals(ctx, wk.eph, logrus.StandardLogger())
		}
	}
	return func(ctx context.Context, w int) error {
		wk, ds := ws[w], dialers[w]
		c, err := ds[wk.next.Add(1)%uint64(len(ds))].DialContext(ctx, "tcp", target)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer c.Close()
		_, err = wk.sessionSwap(c, session.Encrypt)
		return err
	}, nil
}

// IMOp returns IM request and response on one admitted connection per
// worker, sealed with protection p (none: a session swap that agrees on
// none, the frames in the clear): the worker connects once, swaps, joins a
// job; each operation is one IMPoll answered by the MOM's IMReply, over
// the daemons' own link (internal/daemon.Link), as a mother superior
// polls. The MOM's im_security must be none, so that it takes whatever
// the bench offers. close releases the connections.
func IMOp(target string, sources [][]netip.Addr, keys ping.KeySource, p session.Protection) (op Op, close func(), err error) {
	dialers := dialersFor(sources)
	ws, err := newBenchWorkers(len(sources), keys)
	if err != nil {
		return nil, nil, err
	}
	type conn struct {
		link *daemon.Link
		job  string
		seq  uint64
	}
	var mu sync.Mutex
	conns := make([]*conn, len(sources))
	open := func(ctx context.Context, w int) (*conn, error) {
		c, err := dialers[w][0].DialContext(ctx, "tcp", target)
		if err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		s, err := ws[w].sessionSwap(c, p)
		if err != nil {
			c.Close()
			return nil, err
		}
		l := daemon.NewLink(c, s, daemon.LinkConfig{Channel: audit.ChannelIM, Limit: 64 << 10, WriteTimeout: 5 * time.Second})
		l.Start(nil)
		// A job name of the most bytes one may have: IMPoll and IMReply
		// frames as large as the IM protocol makes them.
		cn := &conn{link: l, job: fmt.Sprintf("bench-%02d-%s", w, padding)}
		if err := request(l, &proto.IMJoin{Job: cn.job, Mother: "bench"}, cn.job, 0); err != nil {
			l.Close()
			return nil, fmt.Errorf("join: %w", err)
		}
		mu.Lock()
		conns[w] = cn
		mu.Unlock()
		return cn, nil
	}
	op = func(ctx context.Context, w int) error {
		mu.Lock()
		cn := conns[w]
		mu.Unlock()
		if cn == nil {
			var err error
			if cn, err = open(ctx, w); err != nil {
				return err
			}
		}
		cn.seq++
		if err := request(cn.link, &proto.IMPoll{Job: cn.job, Seq: cn.seq}, cn.job, cn.seq); err != nil {
			mu.Lock()
			conns[w] = nil
			mu.Unlock()
			cn.link.Close()
			return err
		}
		return nil
	}
	close = func() {
		mu.Lock()
		defer mu.Unlock()
		for i, cn := range conns {
			if cn != nil {
				cn.link.Close()
				conns[i] = nil
			}
		}
	}
	return op, close, nil
}

// padding fills a job name to the 64 bytes allowed.
const padding = "0123456789012345678901234567890123456789012345678901"

// request sends msg and checks the IMReply for job and seq.
func request(l *daemon.Link, msg proto.Message, job string, seq uint64) error {
	if err := l.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if err := l.Send(msg); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	f, err := l.ReadFrame()
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	m, err := proto.Unmarshal(f)
	if err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	r, ok := m.(*proto.IMReply)
	if !ok || r.Job != job || r.Seq != seq || r.Status != proto.IMOK {
		return fmt.Errorf("unexpected answer %#v", m)
	}
	return nil
}

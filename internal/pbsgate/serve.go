package pbsgate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/user"
	"strconv"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/pbsauth"
	"github.com/momgate/momgate/proto"
)

// ChannelPBS is the audit channel of PBS handshakes.
const ChannelPBS = "pbs"

// Defaults of Config.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultMaxConns    = 256
	DefaultIdleTimeout = 10 * time.Second
	DefaultMaxRequests = 4096
	// busyIdle is how long a connection may wait for its next request
	// while more than half of MaxConns are in use: idle connections make
	// room for new callers quickly.
	busyIdle = 200 * time.Millisecond
)

// Config configures Serve.
type Config struct {
	Path   string // the socket
	Engine *pbsauth.Engine
	Audit  *audit.Log
	Log    logrus.FieldLogger
	// Timeout bounds one request: read, resolve, answer. 0: DefaultTimeout.
	Timeout time.Duration
	// IdleTimeout bounds the wait for a connection's next request (the
	// plugin keeps one connection per thread, docs/OPENPBS.md section 4);
	// 0: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxRequests bounds the requests served on one connection; the
	// plugin connects anew after it. 0: DefaultMaxRequests.
	MaxRequests int
	// MaxConns bounds the connections served at once; past it the
	// socket's backlog waits. 0: DefaultMaxConns.
	MaxConns int
	// Resolve returns the addresses of a host name; nil: the system's
	// resolver.
	Resolve func(ctx context.Context, host string) ([]netip.Addr, error)
	// Names returns the user and group names of uid and gid; nil: the
	// host's user database.
	Names func(uid, gid uint32) (user, group string, err error)
}

// Serve listens on cfg.Path and answers the plugin until ctx ends; then it
// closes the socket, waits for the requests in flight (each bounded by
// Timeout) and returns nil.
func Serve(ctx context.Context, cfg Config) error {
	if cfg.Engine == nil || cfg.Audit == nil || cfg.Log == nil {
		return errors.New("pbs socket: Engine, Audit and Log are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = DefaultMaxRequests
	}
	if cfg.Resolve == nil {
		cfg.Resolve = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if cfg.Names == nil {
		cfg.Names = systemNames
	}
	ln, err := Listen(cfg.Path)
	if err != nil {
		return err
	}
	cfg.Log.WithField("socket", cfg.Path).Info("serving the OpenPBS plugin")
	g := &gate{cfg: cfg, slots: make(chan struct{}, cfg.MaxConns)}
	return g.serve(ctx, ln)
}

type gate struct {
	cfg   Config
	slots chan struct{}
}

func (g *gate) serve(ctx context.Context, ln *net.UnixListener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var backoff time.Duration
	for {
		select {
		case g.slots <- struct{}{}:
		case <-ctx.Done():
			return nil
		}
		c, err := ln.AcceptUnix()
		if err != nil {
			<-g.slots
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("pbs socket: %w", err)
			}
			// A temporary failure such as EMFILE: back off, bounded.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			g.cfg.Log.WithError(err).Warn("pbs socket: accept failed; retrying")
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-g.slots }()
			defer c.Close()
			g.handle(ctx, c)
		}()
	}
}

// handle answers the requests on c, one at a time, until the caller
// closes it, stays idle past IdleTimeout, has sent MaxRequests, sends a
// bad request, or ctx ends. The caller is who the kernel said connected
// (SO_PEERCRED, read once): the plugin connects anew whenever its process
// or its effective user or group is no longer the one that connected.
func (g *gate) handle(ctx context.Context, c *net.UnixConn) {
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	p, err := peerOf(c)
	if err != nil {
		g.cfg.Log.WithError(err).Warn("pbs socket: cannot verify the caller; closed")
		return
	}
	r := bufio.NewReaderSize(c, pbsauth.LocalHeaderSize+pbsauth.MaxLocalBody)
	for n := 0; n < g.cfg.MaxRequests; n++ {
		idle := g.cfg.Timeout
		if n > 0 {
			idle = g.cfg.IdleTimeout
			if 2*len(g.slots) > cap(g.slots) {
				idle = min(idle, busyIdle)
			}
		}
		if err := c.SetReadDeadline(time.Now().Add(idle)); err != nil || ctx.Err() != nil {
			return
		}
		if _, err := r.Peek(1); err != nil {
			return // closed, idle too long, or shutting down
		}
		if !g.one(ctx, c, r, &p) {
			return
		}
	}
}

// one answers one request whose first byte has arrived; false: the
// connection is done.
func (g *gate) one(ctx context.Context, c *net.UnixConn, r io.Reader, p *peer) bool {
	// The deadline bounds the request; a context with it is made only
	// for a name to resolve (resolve), the one step that may block.
	deadline := time.Now().Add(g.cfg.Timeout)
	if err := c.SetDeadline(deadline); err != nil {
		return false
	}
	q, err := pbsauth.ReadRequest(r)
	if err != nil {
		if !errors.Is(err, io.EOF) {
			g.cfg.Log.WithError(err).WithField("pid", p.pid).Warn("pbs socket: bad request")
		}
		return false
	}
	resp := g.answer(ctx, deadline, p, &q)
	out := pbsauth.AppendResponse(nil, q.Op, &resp)
	_, err = c.Write(out)
	if err != nil {
		g.cfg.Log.WithError(err).WithField("pid", p.pid).Debug("pbs socket: answer not delivered")
	}
	// The connection's keys are the plugin's now: this daemon keeps none.
	if resp.Keys != nil {
		resp.Keys.Wipe()
		clear(out)
	}
	return err == nil
}

// answer runs the request's step and records it.
func (g *gate) answer(ctx context.Context, deadline time.Time, p *peer, q *pbsauth.Request) pbsauth.Response {
	if q.Op == pbsauth.OpCheck {
		return g.check(*p, q)
	}
	caller := pbsauth.Caller{UID: p.uid, GID: p.gid}
	var res pbsauth.Result
	var err error
	switch q.Op {
	case pbsauth.OpInitiate:
		var dest proto.Addr
		if dest, err = g.destination(ctx, deadline, q.Host); err == nil {
			if caller.User, caller.Group, err = g.names(p); err != nil {
				err = fmt.Errorf("%w: uid %d: %v", pbsauth.ErrInternal, p.uid, err)
			} else {
				res, err = g.cfg.Engine.Initiate(caller, q.Kind, dest, q.Encrypt)
			}
		}
	case pbsauth.OpContinue:
		res, err = g.cfg.Engine.Continue(caller, q.ID, q.Token)
	case pbsauth.OpAccept:
		var sources []proto.Addr
		if sources, err = g.sources(ctx, deadline, q.Host); err == nil {
			res, err = g.cfg.Engine.Accept(caller, q.Kind, sources, q.Token)
		}
	case pbsauth.OpConfirm:
		res, err = g.cfg.Engine.Confirm(caller, q.ID, q.Token)
	}
	g.record(q, *p, &res, err)
	if err != nil {
		return pbsauth.Response{Status: pbsauth.StatusRefused, Reason: string(pbsauth.Reason(err)), Message: refusal(q, &res, err)}
	}
	return pbsauth.Response{ID: res.ID, Token: res.Token, PeerName: res.NodeName, Peer: res.User, Keys: res.Keys}
}

// check answers a Check: pbs_comm asking whether an open connection's
// node is still admitted. A revoked one is audited (pbs_comm closes it); a
// daemon that cannot check refuses the request, and pbs_comm keeps the
// connection.
func (g *gate) check(p peer, q *pbsauth.Request) pbsauth.Response {
	a, err := netip.ParseAddr(q.Host)
	var cr pbsauth.CheckResult
	if err != nil {
		err = fmt.Errorf("%w: peer address %q: %v", pbsauth.ErrMalformed, q.Host, err)
	} else {
		cr, err = g.cfg.Engine.Check(q.Gen, q.Node, proto.AddrFrom(a.Unmap()))
	}
	if err != nil {
		g.cfg.Log.WithError(err).WithField("pid", p.pid).Warn("pbs socket: check not answered")
		return pbsauth.Response{Status: pbsauth.StatusRefused, Reason: string(pbsauth.Reason(err)),
			Message: fmt.Sprintf("cannot check the connection of %s from %s: %v", q.Node, q.Host, err)}
	}
	resp := pbsauth.Response{Gen: cr.Gen, Verdict: cr.Verdict}
	if cr.Verdict == pbsauth.VerdictRevoked {
		reason := pbsauth.Reason(cr.Err)
		resp.Reason = string(reason)
		resp.Message = fmt.Sprintf("revoked the open connection of %s (node %s): %s: %v", q.Host, q.Node, reason, cr.Err)
		g.cfg.Audit.Record(audit.Entry{Channel: ChannelPBS, Outcome: audit.Rejected, Reason: reason, Node: q.Node,
			Peer: netip.AddrPortFrom(a.Unmap(), 0), Detail: fmt.Sprintf("open connection, check: %v", cr.Err)})
	}
	return resp
}

// destination is the address an initiator's PING is for: the host itself
// if it is an address, else the first of its addresses that is IPv4 and
// not loopback (TPP uses IPv4 and refuses loopback), else its first
// address.
func (g *gate) destination(ctx context.Context, deadline time.Time, host string) (proto.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return proto.AddrFrom(a.Unmap()), nil
	}
	as, err := g.resolve(ctx, deadline, host)
	if err != nil || len(as) == 0 {
		return proto.Addr{}, fmt.Errorf("%w: %s: %v", pbsauth.ErrResolve, host, err)
	}
	for _, a := range as {
		if a = a.Unmap(); a.Is4() && !a.IsLoopback() {
			return proto.AddrFrom(a), nil
		}
	}
	return proto.AddrFrom(as[0].Unmap()), nil
}

// resolve returns the addresses of host, within the request's deadline.
func (g *gate) resolve(ctx context.Context, deadline time.Time, host string) ([]netip.Addr, error) {
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	return g.cfg.Resolve(ctx, host)
}

// sources are the addresses the peer of an accepted connection may have:
// the one PBS passed, or every address of the name it passed.
func (g *gate) sources(ctx context.Context, deadline time.Time, host string) ([]proto.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []proto.Addr{proto.AddrFrom(a.Unmap())}, nil
	}
	as, err := g.resolve(ctx, deadline, host)
	if err != nil || len(as) == 0 {
		return nil, fmt.Errorf("%w: %s: %v", pbsauth.ErrResolve, host, err)
	}
	out := make([]proto.Addr, len(as))
	for i, a := range as {
		out[i] = proto.AddrFrom(a.Unmap())
	}
	return out, nil
}

// record writes the audit line of a step: every refusal, and the
// admission (the responder's Confirm). The initiator's Continue admits the
// responder too, but the responder's line records that connection already.
func (g *gate) record(q *pbsauth.Request, p peer, res *pbsauth.Result, err error) {
	if err == nil && q.Op != pbsauth.OpConfirm {
		return
	}
	e := audit.Entry{Channel: ChannelPBS, Outcome: audit.Accepted, Node: nodeLabel(res)}
	if res.Peer != (proto.Addr{}) {
		e.Peer = netip.AddrPortFrom(res.Peer.Netip(), 0)
	} else {
		e.PeerName = "pid=" + strconv.Itoa(int(p.pid))
	}
	if res.KeyID != 0 {
		e.KeyID = fmt.Sprintf("%08x", res.KeyID)
	}
	if err != nil {
		e.Outcome, e.Reason, e.Detail = audit.Rejected, pbsauth.Reason(err), fmt.Sprintf("%s connection, %s: %v", res.Kind, q.Op, err)
	} else {
		e.Detail = fmt.Sprintf("%s connection of %s (uid %d)", res.Kind, res.User.User, res.User.UID)
		if res.Keys != nil {
			e.Detail += ", encrypted"
		}
	}
	g.cfg.Audit.Record(e)
}

func nodeLabel(res *pbsauth.Result) string {
	switch {
	case res.NodeName != "":
		return res.NodeName
	case res.Node != (proto.NodeID{}):
		return fmt.Sprintf("%x", res.Node[:])
	}
	return ""
}

// refusal is the message PBS logs: who was refused and why.
func refusal(q *pbsauth.Request, res *pbsauth.Result, err error) string {
	who := "the handshake"
	if res.Peer != (proto.Addr{}) {
		who = res.Peer.String()
		if n := nodeLabel(res); n != "" {
			who += " (node " + n + ")"
		}
	}
	return fmt.Sprintf("refused %s: %s: %v", who, pbsauth.Reason(err), err)
}

// namesTTL bounds how long a connection's caller's user and group names
// are reused: a connection lasts as long as its caller keeps using it.
const namesTTL = 30 * time.Second

// names returns the user and group names of the connection's caller,
// looked up at its first Initiate (the user database is read once per
// connection, not per handshake) and again after namesTTL.
func (g *gate) names(p *peer) (string, string, error) {
	now := time.Now()
	if p.named.IsZero() || now.Sub(p.named) > namesTTL {
		u, grp, err := g.cfg.Names(p.uid, p.gid)
		if err != nil {
			return "", "", err
		}
		p.user, p.group, p.named = u, grp, now
	}
	return p.user, p.group, nil
}

// systemNames looks uid and gid up in the host's user database.
func systemNames(uid, gid uint32) (string, string, error) {
	u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10))
	if err != nil {
		return "", "", err
	}
	grp := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(grp); err == nil {
		grp = g.Name
	}
	return u.Username, grp, nil
}

package mom

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	"github.com/momgate/momgate/session"
)

// ErrEnrollRefused wraps a refusal that retrying cannot fix: a bad, used or
// expired token, or a server whose key does not match the token's pin.
var ErrEnrollRefused = errors.New("enrollment refused")

// ErrDeleted means the server refused this enrolled node as revoked: it
// was deleted, so the MOM stops rather than retry (Run returns it; the
// command exits with a status of its own, which the unit does not
// restart).
var ErrDeleted = errors.New("node deleted from the cluster")

// controlLoop keeps a control connection to one server of the list up,
// moving along the list when it fails (failover.go: bounded, jittered
// backoff, NotLeader followed only within the list), until ctx ends.
func (m *Mom) controlLoop(ctx context.Context) error {
	f := listFailover(len(m.srv.list), m.cfg.BackoffMin, m.cfg.BackoffMax, rand.Int64N)
	for ctx.Err() == nil {
		addr := m.srv.list[f.current()]
		m.srv.dialling(addr)
		start := time.Now()
		err := m.controlSession(ctx, addr)
		m.mu.Lock()
		established := m.connected
		m.mu.Unlock()
		m.setConnected(false, err)
		m.srv.ended()
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrEnrollRefused) {
			return err
		}
		if errors.Is(err, handshake.ErrRevoked) {
			return m.deleted(err)
		}
		o := outcome{Kind: attemptFailed, Elapsed: time.Since(start), Leader: -1}
		var nl *notLeader
		switch {
		case errors.Is(err, errProtocolChanged):
			m.log.WithField("protocol", m.Protocol().String()).Info("reconnecting to the server for the new protocol mode")
			o.Kind = attemptReconnect
		case errors.As(err, &nl):
			o.Kind, o.Leader = attemptRedirect, m.redirectTarget(ctx, addr, nl)
		case established:
			o.Kind = attemptEnded
			m.log.WithError(err).WithField("server", addr).Warn("control connection to server lost")
		default:
			m.log.WithError(err).WithField("server", addr).Warn("control connection to server failed")
		}
		c := f.next(o)
		if len(m.srv.list) > 1 && m.srv.list[c.Server] != addr {
			m.log.WithFields(logrus.Fields{"from": addr, "to": m.srv.list[c.Server], "redirected": c.Redirected,
				"wait": c.Wait.String()}).Info("trying the next server of the list")
		}
		if c.Wait == 0 {
			continue
		}
		t := time.NewTimer(c.Wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
	return nil
}

// listFailover is the failover machine of a list of n servers with the
// backoff bounds of the MOM's configuration.
func listFailover(n int, backoffMin, backoffMax time.Duration, rnd func(n int64) int64) *failover {
	roundMax, spread := backoffMax, time.Duration(0)
	if n > 1 {
		// A group: another member is likely up, so a round of the list
		// waits at most groupRoundBackoff (docs/PROTOCOL.md 4.11), and the
		// MOMs a failover moves spread over failoverSpread (docs/HA.md 7).
		roundMax, spread = min(roundMax, groupRoundBackoff), failoverSpread
	}
	return newFailover(n, backoffMin, roundMax, spread, rnd)
}

// redirectTarget judges a NotLeader that server addr sent: the index of
// the leader it names in the MOM's list, or -1 (no leader known, the
// sender itself, or an address outside the list: never dialled, logged
// and counted).
func (m *Mom) redirectTarget(ctx context.Context, addr string, nl *notLeader) int {
	log := m.log.WithFields(logrus.Fields{"server": addr, "leader": nl.Leader.String(), "leader_name": nl.Name})
	if !nl.Leader.IsValid() {
		m.srv.redirect(redirectNoLeader)
		log.Info("the server is not the leader and knows none (an election, or no quorum): trying the next server")
		return -1
	}
	rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	i := matchServer(m.srv.list, nl.Leader, func(host string) []netip.Addr {
		as, _ := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
		return as
	})
	switch {
	case i < 0:
		m.srv.redirect(redirectOutside)
		log.WithField("servers", strings.Join(m.srv.list, ",")).Warn(
			"NotLeader names a leader that is not in this MOM's --server list: not followed (add the member to --server if it is one)")
		return -1
	case m.srv.list[i] == addr:
		m.srv.redirect(redirectNoLeader)
		log.Warn("NotLeader names the server that sent it: trying the next server")
		return -1
	}
	m.srv.redirect(redirectFollowed)
	log.WithField("to", m.srv.list[i]).Info("the server is not the leader: following its redirect within the list")
	return i
}

// groupRoundBackoff caps the wait between rounds of a list of more than
// one server; failoverSpread bounds the random delay before a MOM whose
// session ended dials the next server of such a list.
const (
	groupRoundBackoff = 2 * time.Second
	failoverSpread    = time.Second
	// groupConnectTimeout bounds the TCP connect to a server of a list
	// of more than one.
	groupConnectTimeout = 3 * time.Second
)

// resolveTimeout bounds the look-up of the list's host names when a
// redirect is judged.
const resolveTimeout = 2 * time.Second

// deleted is the MOM's end when the server says its node was deleted:
// one line saying so and how to bring the node back, then ErrDeleted.
func (m *Mom) deleted(err error) error {
	m.mu.Lock()
	name, id := "", ""
	if m.enrolled != nil {
		name, id = m.enrolled.Name, m.enrolled.NodeID
	}
	m.mu.Unlock()
	m.log.WithError(err).WithFields(logrus.Fields{"node": name, "node_id": id, "server": m.srv.current()}).Error(
		"this node was deleted from the cluster: the MOM stops and will not retry; to bring it back, run " +
			"`momgate-qmgr -c \"create node " + name + " Mom=HOST\"` on the server, move " + m.cfg.StateDir +
			" aside, and start the MOM with --enroll and the new token")
	return fmt.Errorf("%w: %s: %w", ErrDeleted, name, err)
}

func (m *Mom) setConnected(up bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.connected = up
	if up {
		m.srv.established()
	}
	if err != nil {
		m.serverErr = err.Error()
	} else if up {
		m.serverErr = ""
	}
}

// controlSession runs one control connection: handshake, swap, then
// heartbeats until the connection fails or ctx ends.
func (m *Mom) controlSession(ctx context.Context, addr string) error {
	dctx := ctx
	if len(m.srv.list) > 1 {
		// Another member may answer: a host that vanished (SYNs
		// unanswered) costs groupConnectTimeout, not the handshake
		// timeout. The context bounds the connect only.
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, min(groupConnectTimeout, m.cfg.HandshakeTimeout))
		defer cancel()
	}
	c, err := m.dial(dctx, addr)
	if err != nil {
		return fmt.Errorf("connect to server %s: %w", addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	setup, err := m.handshake(c, addr)
	if errors.Is(err, errUseLegacy) {
		return m.legacySession(ctx, c)
	}
	if err != nil {
		return err
	}
	m.setConnected(true, nil)
	m.log.WithFields(logrus.Fields{"server": addr, "sealed": setup.sess != nil}).Info("connected to server")
	return m.heartbeat(ctx, c, setup)
}

// controlSetup is what a control handshake established.
type controlSetup struct {
	serverID proto.NodeID
	// sess is the sealed session (always encrypt); nil with a server of
	// before sealed sessions.
	sess *session.Session
	// helloMode is the ServerHello's mode, adopted once the sealed
	// session has authenticated it (chooseControl).
	helloMode proto.Mode
	// floorProbe: the sealed Welcome confirmed the recovery attestation
	// (WelcomeFloorProbe, docs/PROTOCOL.md section 4.9).
	floorProbe bool
}

// handshake authenticates to the server (enrolling on first start),
// installs the keys it sends, and runs the swap: a session swap, bound to
// both identities and to the handshake, when the Welcome proves the server
// speaks sealed sessions; a plain PING swap with a server of before them,
// unless this MOM knows the server speaks them (a downgrade, refused).
func (m *Mom) handshake(c net.Conn, addr string) (*controlSetup, error) {
	deadline := time.Now().Add(m.cfg.HandshakeTimeout)
	if err := c.SetDeadline(deadline); err != nil {
		return nil, err
	}
	rec := handshake.NewRecorder(c) // the binding hash (docs/PROTOCOL.md 6.4)
	sh, err := readServerHello(rec)
	if err != nil {
		return nil, err
	}
	if err := m.chooseControl(sh); err != nil {
		if errors.Is(err, session.ErrDowngrade) {
			m.base.Record(audit.Entry{Channel: audit.ChannelControl, Outcome: audit.Rejected, Reason: reasons.SessionDowngrade,
				Peer: daemon.PeerAddrPort(c), Detail: err.Error()})
		}
		return nil, err // errUseLegacy: continue as a v1 session
	}
	m.mu.Lock()
	enr := m.enrolled
	m.mu.Unlock()
	p := &handshake.MomParams{Ident: m.ident, Rand: m.cfg.Rand, IMPort: m.addr.Port(), Versions: m.advertised(), Sessions: m.speaksSessions()}
	if enr == nil {
		tok, err := keys.ParseToken(m.cfg.Enroll)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrEnrollRefused, err)
		}
		p.Token = &tok
	} else {
		p.ServerKey, _ = enr.serverKey()
		p.NodeID, _ = enr.nodeID()
		for _, k := range m.ring.Load().Keys() {
			p.KeyIDs = append(p.KeyIDs, uint32(k.ID))
		}
	}
	w, err := handshake.Prove(rec, sh, p)
	switch {
	case errors.Is(err, handshake.ErrServerKey) && enr == nil:
		return nil, fmt.Errorf("%w: server at %s: %w", ErrEnrollRefused, addr, err)
	case errors.Is(err, handshake.ErrFinal):
		return nil, fmt.Errorf("%w: %w", ErrEnrollRefused, err)
	case err != nil:
		return nil, fmt.Errorf("server at %s: %w", addr, err)
	}
	transcript := rec.Stop()
	m.cfg.CrashAt("mom-welcome-received") // test-only: nothing of the Welcome saved yet
	// sh.ServerKey is the key the token or the enrollment pins (Prove
	// checked it), so the trailer opens only if the server sealed it.
	trailer, err := handshake.OpenWelcomeSession(w, &sh.ServerKey, m.ident, &sh.Challenge)
	if err != nil {
		m.recordControlRefusal(c, err)
		return nil, fmt.Errorf("server at %s: %w", addr, err)
	}
	if err := m.install(w, sh, enr); err != nil {
		return nil, err
	}
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		return nil, err
	}
	setup := &controlSetup{serverID: sh.ServerID, helloMode: sh.Mode}
	var res ping.Result
	switch {
	case trailer != nil && trailer.Flags&proto.WelcomeSealed != 0 && m.speaksSessions():
		setup.floorProbe = trailer.Flags&proto.WelcomeFloorProbe != 0
		if err := m.setIMSecurity(trailer.IMSecurity); err != nil {
			m.log.WithError(err).Warn("im_security from the Welcome")
		}
		binding, err := session.NewBinding(&m.ident.Private, &sh.ServerKey, transcript)
		if err != nil {
			return nil, fmt.Errorf("control session binding: %w", err)
		}
		cfg := session.Config{Channel: session.ChannelControl, Min: session.Encrypt, Rand: m.cfg.Rand, Binding: binding,
			ExpectNode: sh.ServerID, Limits: m.cfg.SessionLimits}
		if setup.sess, err = handshake.InitiateSession(c, remote, local, m.currentSealer(), m.serverVerifier(sh.ServerID), cfg, time.Now, &res); err != nil {
			m.recordControlRefusal(c, err)
			return nil, fmt.Errorf("session swap with server: %w", err)
		}
	case m.speaksSessions() && m.serverSealed():
		// A Welcome whose trailer was cut in flight (or a server rolled
		// back to a version before sealed sessions): never an unsealed
		// session with a server known to speak them.
		err := fmt.Errorf("the server has proved it speaks sealed sessions, but its Welcome carries no session trailer: an unsealed control session is refused: %w", session.ErrDowngrade)
		m.recordControlRefusal(c, err)
		return nil, err
	default:
		if err := handshake.Initiate(c, remote, local, m.currentSealer(), m.serverVerifier(sh.ServerID), &res); err != nil {
			m.recordControlRefusal(c, err)
			return nil, fmt.Errorf("ping swap with server: %w", err)
		}
		if res.Node != sh.ServerID {
			return nil, fmt.Errorf("server's ping names node %x, server hello said %x", res.Node, sh.ServerID)
		}
	}
	return setup, c.SetDeadline(time.Time{})
}

// recordControlRefusal audits a refused swap (or trailer) with the server.
func (m *Mom) recordControlRefusal(c net.Conn, err error) {
	reason := session.Reason(err)
	var rj *handshake.RejectError
	if errors.As(err, &rj) {
		reason = reasons.RefusedByPeer // never a reason to fall back: the Welcome decided
	}
	m.base.Record(audit.Entry{Channel: audit.ChannelControl, Outcome: audit.Rejected, Reason: reason,
		Peer: daemon.PeerAddrPort(c), Detail: "server swap: " + err.Error()})
}

// install takes the keys of a Welcome and, on first start, the enrollment.
func (m *Mom) install(w *proto.Welcome, sh *proto.ServerHello, enr *enrollment) error {
	ring, err := handshake.Keyring(w, &sh.ServerKey, m.ident, m.cfg.Now())
	if err != nil {
		return err
	}
	if err := m.updateRing(func(*keys.Keyring) (*keys.Keyring, bool, error) { return ring, true, nil }); err != nil {
		return err
	}
	if enr == nil {
		m.cfg.CrashAt("mom-enroll-keyring-saved") // test-only: keyring on disk, enrollment not
		enr = &enrollment{Format: 1, NodeID: uuid.UUID(w.NodeID).String(), Name: w.Name,
			ServerID: uuid.UUID(sh.ServerID).String(), ServerKey: encodeB64(sh.ServerKey[:])}
		if err := saveEnrollment(m.cfg.StateDir, enr); err != nil {
			return err
		}
		// The directory now holds an enrollment: its identity, keyring
		// and mom.json must be there from now on.
		if err := m.base.State.SyncManifest(true); err != nil {
			return err
		}
		m.log.WithFields(logrus.Fields{"node": w.Name, "node_id": enr.NodeID}).Info("enrolled")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.enrolled = enr
	if m.sealer == nil {
		m.sealer = &ping.Sealer{Keys: m.ring, Stamper: m.base.Stamper, Rand: m.cfg.Rand, Node: w.NodeID}
	}
	return nil
}

// heartbeat sends a Ping every interval and handles what the server sends,
// until the connection fails. A missing reply ends it after three intervals.
// Every frame goes through one link, sealed when the swap made a session;
// its ticker rekeys the session.
func (m *Mom) heartbeat(ctx context.Context, c net.Conn, setup *controlSetup) error {
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		return err
	}
	link := daemon.NewLink(c, setup.sess, daemon.LinkConfig{Channel: audit.ChannelControl, Limit: proto.MaxFrameSize,
		WriteTimeout: m.cfg.HandshakeTimeout, Stats: m.sstats})
	defer link.Close()
	link.Start(func(err error) { m.recordSessionFailure(audit.ChannelControl, link, proto.NodeID{}, err) })
	m.ctlLink.Store(link)
	defer m.ctlLink.Store(nil)
	var (
		pmu     sync.Mutex
		pending [][ping.RandomSize]byte // echoes of heartbeats not yet answered
	)
	m.setControlWriter(link.Send, proto.V2)
	m.ctl.setFloorProbe(setup.floorProbe && setup.sess != nil)
	defer m.setControlWriter(nil, 0)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reader, owned by this session
		defer wg.Done()
		errc <- m.readControl(link, remote, local, setup, &pmu, &pending)
	}()
	defer wg.Wait()
	defer link.Close()
	t := time.NewTicker(m.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errc:
			return err
		case <-t.C:
		}
		sealer := m.currentSealer()
		frame, rnd, err := sealer.Ping(nil, local, remote)
		if err != nil {
			return fmt.Errorf("seal heartbeat: %w", err)
		}
		pmu.Lock()
		if n := len(pending); n >= 3 {
			pmu.Unlock() // n read under the lock: the reader changes pending
			return fmt.Errorf("server missed %d heartbeat replies", n)
		}
		pending = append(pending, rnd)
		pmu.Unlock()
		if err := link.WriteFrame(frame); err != nil {
			return fmt.Errorf("send heartbeat: %w", err)
		}
	}
}

// readControl handles frames from the server until the connection fails.
// On a sealed session, the first record that opens confirms it: the
// server is marked as speaking sealed sessions and the ServerHello's mode,
// now authenticated, is adopted. On an unsealed one that both ends could
// have sealed, a security-relevant frame is refused and ends it.
func (m *Mom) readControl(link *daemon.Link, remote, local proto.Addr, setup *controlSetup, pmu *sync.Mutex, pending *[][ping.RandomSize]byte) error {
	var res ping.Result
	confirmed := false
	peer := daemon.PeerAddrPort(link.NetConn()).String()
	verifier := m.serverVerifier(setup.serverID)
	for {
		if err := link.NetConn().SetReadDeadline(time.Now().Add(3*m.cfg.Heartbeat + m.cfg.HandshakeTimeout)); err != nil {
			return err
		}
		frame, err := link.ReadFrame()
		if err != nil {
			m.recordSessionFailure(audit.ChannelControl, link, proto.NodeID{}, err)
			return fmt.Errorf("read from server: %w", err)
		}
		if link.Sealed() && !confirmed && link.Confirmed() {
			confirmed = true
			m.markServerSealed()
			if err := m.adoptHelloMode(setup.helloMode); err != nil {
				return err
			}
		}
		if proto.Type(frame[3]) == proto.TypePingReply {
			pmu.Lock()
			if len(*pending) == 0 {
				pmu.Unlock()
				return fmt.Errorf("unsolicited ping reply from server")
			}
			echo := (*pending)[0]
			*pending = (*pending)[1:]
			pmu.Unlock()
			if err := verifier.VerifyReply(frame, remote, local, &echo, &res); err != nil {
				return fmt.Errorf("heartbeat reply: %w", err)
			}
			if res.Node != setup.serverID {
				return fmt.Errorf("heartbeat reply from node %x, not the server", res.Node)
			}
			continue
		}
		msg, err := proto.Unmarshal(frame)
		if err != nil {
			return fmt.Errorf("decode frame from server: %w", err)
		}
		if !link.Sealed() && securityFrame(msg) && m.bothCouldSeal() {
			return m.refuseUnsealed(msg, peer)
		}
		if !link.Sealed() && sealedOnly(msg) {
			// IMSecurity and SealedNodes are defined for sealed sessions
			// only: on an unsealed one nothing vouches for them.
			return m.refuseUnsealed(msg, peer)
		}
		if err := m.handleServerMessage(msg); err != nil {
			return err
		}
	}
}

// sealedOnly reports whether msg may travel on sealed sessions only.
func sealedOnly(msg proto.Message) bool {
	switch msg.(type) {
	case *proto.IMSecurity, *proto.SealedNodes, *proto.FloorProbe:
		return true
	}
	return false
}

// serverVerifier is the verifier of the server's PingReplies on a
// control connection: the MOM's own guard, with the server attested by
// the MOM itself, floor 0. A reply echoes this MOM's fresh random bytes,
// so it cannot be a replay; the attestation only spares it the freshness
// window, which a MOM that lost its marks with freshness 0 could never
// pass for the server (docs/PROTOCOL.md section 4.9).
//
// A deny list held after its loss (StepDenyHold) does not refuse the
// server: it is the server's DenySet that ends the hold.
func (m *Mom) serverVerifier(server proto.NodeID) *ping.Verifier {
	v := *m.base.Verifier
	v.Attest = func(n proto.NodeID) ping.Attestation {
		return ping.Attestation{OK: n == server, Fresh: true}
	}
	v.Revoker = listedOnly{m.deny}
	return &v
}

// listedOnly is a deny list without its hold.
type listedOnly struct{ d *ping.DenyList }

func (l listedOnly) RevokedUnder(node proto.NodeID, addr proto.Addr, keyID uint32) bool {
	return l.d.Listed(node, addr, keyID)
}

// handleServerMessage applies a pushed message.
func (m *Mom) handleServerMessage(msg proto.Message) error {
	switch v := msg.(type) {
	case *proto.Deny:
		err := m.applyDeny(v.Entries)
		m.closeRevoked(v.Entries) // at once, whether or not it was saved
		return err
	case *proto.DenySet:
		err := m.applyDenySet(v.Entries)
		m.closeRevoked(v.Entries)
		return err
	case *proto.DenyLift:
		return m.applyDenyLift(v.Entries)
	case *proto.KeyUpdate:
		return m.handleKeyUpdate(v)
	case *proto.KeyActivate:
		return m.handleKeyActivate(v)
	case *proto.KeyRetire:
		if err := m.handleKeyRetire(v); err != nil {
			return err
		}
		m.closeUnderKey(v.KeyID)
		return nil
	case *proto.IMSecurity:
		return m.setIMSecurity(v.Protection)
	case *proto.SealedNodes:
		return m.applySealedNodes(v)
	case *proto.Reject:
		return handshake.PeerRejected(v)
	case *proto.NodeAddress:
		m.ctl.answer(v)
		return nil
	case *proto.NodeName:
		m.names.answer(v)
		return nil
	case *proto.FloorAnswer:
		m.ctl.answerFloor(v)
		return nil
	case *proto.FloorProbe:
		m.answerProbe(v)
		return nil
	}
	return m.handleLegacyMessage(msg)
}

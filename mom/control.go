package mom

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
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
)

// ErrEnrollRefused wraps a refusal that retrying cannot fix: a bad, used or
// expired token, or a server whose key does not match the token's pin.
var ErrEnrollRefused = errors.New("enrollment refused")

// controlLoop keeps a control connection to the server up, reconnecting
// with exponential backoff and jitter, until ctx ends.
func (m *Mom) controlLoop(ctx context.Context) error {
	backoff := m.cfg.BackoffMin
	for ctx.Err() == nil {
		start := time.Now()
		err := m.controlSession(ctx)
		m.mu.Lock()
		established := m.connected
		m.mu.Unlock()
		m.setConnected(false, err)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, ErrEnrollRefused) {
			return err
		}
		if errors.Is(err, errProtocolChanged) {
			m.log.WithField("protocol", m.Protocol().String()).Info("reconnecting to the server for the new protocol mode")
			backoff = m.cfg.BackoffMin
			continue
		}
		m.log.WithError(err).Warn("control connection to server lost")
		if established || time.Since(start) > m.cfg.BackoffMax {
			// The server was healthy: come back quickly (the jitter still
			// spreads the reconnects), so a MOM catches up with a key
			// rotation soon after a server restart.
			backoff = m.cfg.BackoffMin
		}
		// Full jitter: spread reconnects of thousands of MOMs after a server restart.
		wait := backoff/2 + rand.N(backoff/2+1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		backoff = min(2*backoff, m.cfg.BackoffMax)
	}
	return nil
}

func (m *Mom) setConnected(up bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.connected = up
	if err != nil {
		m.serverErr = err.Error()
	} else if up {
		m.serverErr = ""
	}
}

// controlSession runs one control connection: handshake, swap, then
// heartbeats until the connection fails or ctx ends.
func (m *Mom) controlSession(ctx context.Context) error {
	c, err := m.dial(ctx, m.cfg.Server)
	if err != nil {
		return fmt.Errorf("connect to server %s: %w", m.cfg.Server, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	serverID, err := m.handshake(c)
	if errors.Is(err, errUseLegacy) {
		return m.legacySession(ctx, c)
	}
	if err != nil {
		return err
	}
	m.setConnected(true, nil)
	m.log.WithField("server", m.cfg.Server).Info("connected to server")
	return m.heartbeat(ctx, c, serverID)
}

// handshake authenticates to the server (enrolling on first start), installs
// the keys it sends, and runs the PING swap.
func (m *Mom) handshake(c net.Conn) (proto.NodeID, error) {
	deadline := time.Now().Add(m.cfg.HandshakeTimeout)
	if err := c.SetDeadline(deadline); err != nil {
		return proto.NodeID{}, err
	}
	sh, err := handshake.ReadServerHello(c)
	if err != nil {
		return proto.NodeID{}, err
	}
	if err := m.chooseControl(sh); err != nil {
		return sh.ServerID, err // errUseLegacy: continue as a v1 session
	}
	m.mu.Lock()
	enr := m.enrolled
	m.mu.Unlock()
	p := &handshake.MomParams{Ident: m.ident, Rand: m.cfg.Rand, IMPort: m.addr.Port(), Versions: m.advertised()}
	if enr == nil {
		tok, err := keys.ParseToken(m.cfg.Enroll)
		if err != nil {
			return proto.NodeID{}, fmt.Errorf("%w: %v", ErrEnrollRefused, err)
		}
		p.Token = &tok
	} else {
		p.ServerKey, _ = enr.serverKey()
		p.NodeID, _ = enr.nodeID()
		for _, k := range m.ring.Load().Keys() {
			p.KeyIDs = append(p.KeyIDs, uint32(k.ID))
		}
	}
	w, err := handshake.Prove(c, sh, p)
	switch {
	case errors.Is(err, handshake.ErrServerKey) && enr == nil:
		return proto.NodeID{}, fmt.Errorf("%w: server at %s: %w", ErrEnrollRefused, m.cfg.Server, err)
	case errors.Is(err, handshake.ErrFinal):
		return proto.NodeID{}, fmt.Errorf("%w: %w", ErrEnrollRefused, err)
	case err != nil:
		return proto.NodeID{}, fmt.Errorf("server at %s: %w", m.cfg.Server, err)
	}
	m.cfg.CrashAt("mom-welcome-received") // test-only: nothing of the Welcome saved yet
	if err := m.install(w, sh, enr); err != nil {
		return proto.NodeID{}, err
	}
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		return proto.NodeID{}, err
	}
	var res ping.Result
	if err := handshake.Initiate(c, remote, local, m.currentSealer(), m.serverVerifier(sh.ServerID), &res); err != nil {
		m.base.Record(audit.Entry{Channel: audit.ChannelControl, Outcome: audit.Rejected, Reason: ping.Reason(err),
			Peer: daemon.PeerAddrPort(c), Detail: "server ping swap: " + err.Error()})
		return proto.NodeID{}, fmt.Errorf("ping swap with server: %w", err)
	}
	if res.Node != sh.ServerID {
		return proto.NodeID{}, fmt.Errorf("server's ping names node %x, server hello said %x", res.Node, sh.ServerID)
	}
	return sh.ServerID, c.SetDeadline(time.Time{})
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
func (m *Mom) heartbeat(ctx context.Context, c net.Conn, serverID proto.NodeID) error {
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		return err
	}
	var (
		wmu     sync.Mutex
		pmu     sync.Mutex
		pending [][ping.RandomSize]byte // echoes of heartbeats not yet answered
	)
	send := func(msg []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		if err := c.SetWriteDeadline(time.Now().Add(m.cfg.HandshakeTimeout)); err != nil {
			return err
		}
		_, err := c.Write(msg)
		return err
	}
	m.setControlWriter(func(msg proto.Message) error { return send(proto.Marshal(msg)) }, proto.V2)
	defer m.setControlWriter(nil, 0)
	errc := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // reader, owned by this session
		defer wg.Done()
		errc <- m.readControl(c, remote, local, serverID, &pmu, &pending)
	}()
	defer wg.Wait()
	defer c.Close()
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
		if len(pending) >= 3 {
			pmu.Unlock()
			return fmt.Errorf("server missed %d heartbeat replies", len(pending))
		}
		pending = append(pending, rnd)
		pmu.Unlock()
		if err := send(frame); err != nil {
			return fmt.Errorf("send heartbeat: %w", err)
		}
	}
}

// readControl handles frames from the server until the connection fails.
func (m *Mom) readControl(c net.Conn, remote, local proto.Addr, serverID proto.NodeID, pmu *sync.Mutex, pending *[][ping.RandomSize]byte) error {
	buf := make([]byte, 0, 4096)
	var res ping.Result
	verifier := m.serverVerifier(serverID)
	for {
		if err := c.SetReadDeadline(time.Now().Add(3*m.cfg.Heartbeat + m.cfg.HandshakeTimeout)); err != nil {
			return err
		}
		frame, err := proto.ReadFrameLimit(c, buf[:cap(buf)], 1<<20)
		if err != nil {
			return fmt.Errorf("read from server: %w", err)
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
			if res.Node != serverID {
				return fmt.Errorf("heartbeat reply from node %x, not the server", res.Node)
			}
			continue
		}
		msg, err := proto.Unmarshal(frame)
		if err != nil {
			return fmt.Errorf("decode frame from server: %w", err)
		}
		if err := m.handleServerMessage(msg); err != nil {
			return err
		}
	}
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
		return ping.Attestation{OK: n == server}
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
		return m.applyDeny(v.Entries)
	case *proto.DenySet:
		return m.applyDenySet(v.Entries)
	case *proto.DenyLift:
		return m.applyDenyLift(v.Entries)
	case *proto.KeyUpdate:
		return m.handleKeyUpdate(v)
	case *proto.KeyActivate:
		return m.handleKeyActivate(v)
	case *proto.KeyRetire:
		return m.handleKeyRetire(v)
	case *proto.Reject:
		return handshake.PeerRejected(v)
	case *proto.NodeAddress:
		m.ctl.answer(v)
		return nil
	case *proto.FloorAnswer:
		m.ctl.answerFloor(v)
		return nil
	}
	return m.handleLegacyMessage(msg)
}

package mom

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	"github.com/momgate/momgate/session"
	"github.com/momgate/momgate/statecheck"
)

// Sealed sessions at the MOM (docs/PROTOCOL.md 6.4 and 6.7): what it
// knows, persisted in sessions.json (whether the server has proved it
// speaks sealed sessions, the cluster's im_security as last heard, the
// nodes known to speak them), and the no-downgrade rules that follow.

// sessionsFile persists the MOM's sealed-session state.
const sessionsFile = "sessions.json"

// sessionsState is sessions.json.
type sessionsState struct {
	Format int `json:"format"`
	// ServerSealed: the server proved (in a Welcome, by its identity key)
	// that it speaks sealed sessions, and a sealed control session with it
	// completed: an unsealed one is refused from now on.
	ServerSealed bool `json:"server_sealed"`
	// IMSecurity as last heard from the server; "" never heard (none).
	IMSecurity string      `json:"im_security,omitempty"`
	Marks      []markEntry `json:"marks"`
}

// markEntry is one mark: a node id or an address known to speak sealed
// sessions.
type markEntry struct {
	Node string `json:"node,omitempty"`
	Addr string `json:"addr,omitempty"`
}

// momSessions is the MOM's sealed-session state; guarded by mu, marks by
// their own lock.
type momSessions struct {
	mu           sync.Mutex
	serverSealed bool
	imSecurity   session.Protection
	heard        bool
	marks        *session.Marks
	// held: sessions.json was lost at start (statecheck.StepSessionsHold):
	// no fallback to an unsealed swap (any sister may speak sealed
	// sessions), and until im_security is heard the strongest IM
	// protection, until the server's set of sealed nodes (its replace)
	// has arrived. Nothing is saved meanwhile, so that a restart holds
	// again.
	held atomic.Bool
}

// loadSessions reads sessions.json; a missing file is a MOM that never
// had a sealed session, unless it was lost (then the state is held).
func (m *Mom) loadSessions() error {
	m.sess.marks = session.NewMarks(nil)
	if m.base != nil && m.base.State.Has(statecheck.StepSessionsHold) {
		m.sess.held.Store(true)
		m.log.Error("state loss: sealed-session state lost; no fallback to an unsealed swap and the strongest IM protection until the server's Welcome and set of sealed nodes have arrived")
		return nil
	}
	path := filepath.Join(m.cfg.StateDir, sessionsFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var st sessionsState
	if err := store.LoadJSON(path, &st); err != nil {
		return err
	}
	d, err := decodeSessions(st)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	m.sess.marks = session.NewMarks(d.marks)
	m.sess.serverSealed, m.sess.imSecurity, m.sess.heard = st.ServerSealed, d.imSecurity, d.heard
	return nil
}

// sessionsDecoded is sessions.json's content, checked.
type sessionsDecoded struct {
	marks      []proto.NodeAddr
	imSecurity session.Protection
	heard      bool
}

// decodeSessions checks a decoded sessions.json: its format, every mark's
// node id and address, the im_security value.
func decodeSessions(st sessionsState) (sessionsDecoded, error) {
	var d sessionsDecoded
	if st.Format != 1 {
		return d, fmt.Errorf("unsupported format %d", st.Format)
	}
	for _, e := range st.Marks {
		var na proto.NodeAddr
		if e.Node == "" && e.Addr == "" {
			return d, fmt.Errorf("a mark with neither node nor address")
		}
		if e.Node != "" {
			u, err := uuid.Parse(e.Node)
			if err != nil {
				return d, fmt.Errorf("mark node %q: %w", e.Node, err)
			}
			na.Node = proto.NodeID(u)
		}
		if e.Addr != "" {
			a, err := proto.ParseAddr(e.Addr)
			if err != nil {
				return d, fmt.Errorf("mark addr %q: %w", e.Addr, err)
			}
			na.Addr = a
		}
		d.marks = append(d.marks, na)
	}
	if st.IMSecurity != "" {
		p, err := session.ParseProtection(st.IMSecurity)
		if err != nil {
			return d, err
		}
		d.imSecurity, d.heard = p, true
	}
	return d, nil
}

// saveSessionsLocked persists the state; the caller holds m.sess.mu.
func (m *Mom) saveSessionsLocked() error {
	if m.sess.held.Load() {
		return nil // held after a loss: see momSessions.held
	}
	st := sessionsState{Format: 1, ServerSealed: m.sess.serverSealed, Marks: []markEntry{}}
	if m.sess.heard {
		st.IMSecurity = m.sess.imSecurity.String()
	}
	for _, e := range m.sess.marks.Snapshot() {
		var me markEntry
		if e.Node != (proto.NodeID{}) {
			me.Node = uuid.UUID(e.Node).String()
		}
		if e.Addr != (proto.Addr{}) {
			me.Addr = e.Addr.String()
		}
		st.Marks = append(st.Marks, me)
	}
	if err := store.SaveJSON(filepath.Join(m.cfg.StateDir, sessionsFile), &st, 0o600); err != nil {
		return fmt.Errorf("persist %s: %w", sessionsFile, err)
	}
	return nil
}

// speaksSessions reports whether this MOM speaks sealed sessions (always,
// but for the test-only --test-without-sessions, which plays a MOM of
// before them in a mixed cluster).
func (m *Mom) speaksSessions() bool { return !m.cfg.WithoutSessions }

// imMin is the weakest protection this MOM accepts on a new IM session:
// the cluster's im_security as last heard (none if never).
func (m *Mom) imMin() session.Protection {
	m.sess.mu.Lock()
	defer m.sess.mu.Unlock()
	if m.sess.held.Load() && !m.sess.heard {
		return session.Encrypt
	}
	return m.sess.imSecurity
}

// serverSealed reports whether the server has proved it speaks sealed
// sessions.
func (m *Mom) serverSealed() bool {
	m.sess.mu.Lock()
	defer m.sess.mu.Unlock()
	return m.sess.serverSealed
}

// setIMSecurity records the cluster's im_security (from the Welcome's
// trailer or an IMSecurity push), persisting a change. Sessions running
// keep their protection (docs/PROTOCOL.md 6.7).
func (m *Mom) setIMSecurity(v uint8) error {
	p := session.Protection(v)
	if !p.Valid() {
		return fmt.Errorf("im_security %d: %w", v, proto.ErrBadValue)
	}
	m.sess.mu.Lock()
	defer m.sess.mu.Unlock()
	if m.sess.heard && m.sess.imSecurity == p {
		return nil
	}
	m.sess.imSecurity, m.sess.heard = p, true
	m.log.WithField("im_security", p.String()).Info("im_security from the server: new IM sessions follow it")
	return m.saveSessionsLocked()
}

// markServerSealed records, once the first sealed record of the server
// has opened, that it speaks sealed sessions.
func (m *Mom) markServerSealed() {
	m.sess.mu.Lock()
	defer m.sess.mu.Unlock()
	if m.sess.serverSealed {
		return
	}
	m.sess.serverSealed = true
	if err := m.saveSessionsLocked(); err != nil {
		m.log.WithError(err).Warn("persist the server's sealed-sessions mark; will retry at the next session")
		m.sess.serverSealed = false
		return
	}
	m.log.Info("the server speaks sealed sessions: an unsealed control session is refused from now on")
}

// markPeer records a sister that completed a session swap with this MOM.
func (m *Mom) markPeer(node proto.NodeID, addr proto.Addr) {
	if !m.sess.marks.Mark(node, addr) {
		return
	}
	m.sess.mu.Lock()
	defer m.sess.mu.Unlock()
	if err := m.saveSessionsLocked(); err != nil {
		m.log.WithError(err).Warn("persist sealed-sessions marks")
	}
}

// applySealedNodes applies the server's set of nodes that speak sealed
// sessions: add and remove change it, replace makes it the whole set (the
// server's set is exact: every node that has enrolled or logged in since
// it speaks them is in it).
func (m *Mom) applySealedNodes(v *proto.SealedNodes) error {
	switch v.Op {
	case proto.UpgradedReplace:
		for _, e := range m.sess.marks.Snapshot() {
			m.sess.marks.Forget(e.Node, e.Addr)
		}
		fallthrough
	case proto.UpgradedAdd:
		for _, e := range v.Entries {
			m.sess.marks.Mark(e.Node, e.Addr)
		}
	case proto.UpgradedRemove:
		for _, e := range v.Entries {
			m.sess.marks.Forget(e.Node, e.Addr)
		}
	default:
		return fmt.Errorf("sealed nodes op %d: %w", v.Op, proto.ErrBadValue)
	}
	m.sess.mu.Lock()
	defer m.sess.mu.Unlock()
	if v.Op == proto.UpgradedReplace && m.sess.held.Swap(false) {
		m.log.Warn("sealed-session state recovered: the server's set of sealed nodes has arrived")
	}
	return m.saveSessionsLocked()
}

// bothCouldSeal reports whether an unsealed control session with the
// server is one both ends could have sealed: this MOM speaks sealed
// sessions and PING, and the server has proved it speaks them.
func (m *Mom) bothCouldSeal() bool {
	return m.speaksSessions() && m.serverSealed() && m.Protocol() != proto.ModeLegacy
}

// securityFrame reports whether msg is one of the control frames that
// must arrive sealed whenever both ends could have sealed the connection
// (docs/PROTOCOL.md 6.7): they revoke, un-revoke, change the protocol,
// the keys or the session policy.
func securityFrame(msg proto.Message) bool {
	switch msg.(type) {
	case *proto.Deny, *proto.DenySet, *proto.DenyLift, *proto.ModeMsg, *proto.NodeUpgraded,
		*proto.KeyActivate, *proto.KeyRetire, *proto.IMSecurity, *proto.SealedNodes, *proto.ClusterAddrs:
		return true
	}
	return false
}

// refuseUnsealed audits and counts a security-relevant frame that came on
// an unsealed control connection both ends could have sealed, and returns
// the error that ends the connection; nothing the frame asked for is done.
func (m *Mom) refuseUnsealed(msg proto.Message, peer string) error {
	err := fmt.Errorf("%s on an unsealed control connection with a server that speaks sealed sessions: refused: %w",
		msg.Type(), session.ErrDowngrade)
	m.base.Record(audit.Entry{Channel: audit.ChannelControl, Outcome: audit.Rejected, Reason: reasons.SessionDowngrade,
		Detail: peer + ": " + err.Error()})
	return err
}

// recordSessionFailure audits and counts a sealed session that failed
// (session_auth, session_replay, ...) on channel; other errors (the peer
// went away) are not refusals.
func (m *Mom) recordSessionFailure(channel string, l *daemon.Link, node proto.NodeID, err error) {
	if !l.Report(err) {
		return // not a refusal, or already audited
	}
	e := audit.Entry{Channel: channel, Outcome: audit.Rejected, Reason: session.Reason(err),
		Peer: daemon.PeerAddrPort(l.NetConn()), Detail: "sealed session closed: " + err.Error()}
	if node != (proto.NodeID{}) {
		e.Node = uuid.UUID(node).String()
	}
	m.base.Record(e)
	m.log.WithFields(logrus.Fields{"channel": channel, "peer": e.Peer.String(), "reason": string(e.Reason)}).WithError(err).Warn("sealed session closed")
}

// sessionsStatus is the sealed-session part of `momgate-mom status`.
func (m *Mom) sessionsStatus() *admin.MomSessionStatus {
	st := &admin.MomSessionStatus{Marks: len(m.sess.marks.Snapshot())}
	m.sess.mu.Lock()
	st.IMSecurity, st.ServerSealed = m.sess.imSecurity.String(), m.sess.serverSealed
	if !m.sess.heard {
		st.IMSecurity = "none (never heard from the server)"
	}
	m.sess.mu.Unlock()
	if l := m.ctlLink.Load(); l != nil {
		in := l.Info()
		st.Control, st.ControlAge, st.Rekeys = in.Protection.String(), in.KeyAge.Round(100*time.Millisecond).String(), in.Rekeys
	}
	m.ims.mu.Lock()
	st.IMOpen = len(m.ims.links)
	m.ims.mu.Unlock()
	return st
}

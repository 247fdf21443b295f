package mom

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
)

// legacyFile persists the server's last known mode and the upgraded set.
const legacyFile = "legacy.json"

// maxLegacyFile bounds legacy.json (65,535 upgraded nodes fit easily).
const maxLegacyFile = 16 << 20

// Protocol settings of --protocol.
const (
	ProtocolFollow = "follow" // speak what the server's mode says (default)
	ProtocolLegacy = "legacy"
	ProtocolCompat = "compat"
	ProtocolPing   = "ping"
)

var (
	// errUseLegacy makes controlSession continue as a v1 session.
	errUseLegacy = errors.New("speak the legacy protocol")
	// errProtocolChanged ends a control session so that the MOM reconnects
	// at once speaking what the server's new mode calls for.
	errProtocolChanged = errors.New("protocol changed: reconnecting")
	// ErrNoCommonVersion means the server's mode and this MOM's protocol
	// setting share no version; the MOM keeps retrying, as the mode may change.
	ErrNoCommonVersion = errors.New("no protocol version in common with the server")
)

// ParseProtocol parses a --protocol value; follow (or "") gives 0.
func ParseProtocol(s string) (proto.Mode, error) {
	if s == "" || strings.EqualFold(s, ProtocolFollow) {
		return 0, nil
	}
	m, err := proto.ParseMode(s)
	if err != nil {
		return 0, fmt.Errorf("--protocol %q: want legacy, compat, ping or follow", s)
	}
	return m, nil
}

// momLegacy is the MOM's state for the legacy protocol and the migration.
type momLegacy struct {
	mu         sync.Mutex
	setting    proto.Mode // --protocol; 0 follows the server
	serverMode proto.Mode // last heard from the server; 0 if never
	session    proto.Mode // effective protocol of the current control session
	sessionVer proto.Version
	list       *proto.ClusterAddrs
	upgraded   *migration.UpgradedSet
	ctl        func(proto.Message) error // writes on the control connection; nil if none
	ctlVer     proto.Version
	lookups    map[uint32]chan *proto.NodeAddress
	lookupID   uint32
	names      map[string]netip.AddrPort // sister IM addresses last looked up

	lists      atomic.Uint64 // ClusterAddrs received
	listBytes  atomic.Uint64 // their bytes, headers included
	v1Admitted atomic.Uint64 // IM connections admitted by the list
}

// initLegacy reads --protocol and legacy.json.
func (m *Mom) initLegacy() error {
	p, err := ParseProtocol(m.cfg.Protocol)
	if err != nil {
		return err
	}
	lg := &m.lg
	lg.setting = p
	lg.upgraded = migration.NewUpgradedSet()
	lg.list = &proto.ClusterAddrs{}
	lg.lookups = map[uint32]chan *proto.NodeAddress{}
	lg.names = map[string]netip.AddrPort{}
	m.hooks.legacy = func() (uint64, uint64) { return lg.lists.Load(), lg.listBytes.Load() }
	m.hooks.peersByProtocol = m.peers.byProtocol
	path := filepath.Join(m.cfg.StateDir, legacyFile)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Size() > maxLegacyFile {
		return fmt.Errorf("load %s: %d bytes, limit %d", path, fi.Size(), maxLegacyFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	st, err := migration.DecodeMomState(b)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	lg.serverMode, lg.upgraded = st.ServerMode, st.Upgraded
	return nil
}

// saveLegacyLocked persists the server mode and the upgraded set; the
// caller holds m.lg.mu.
func (m *Mom) saveLegacyLocked() error {
	b := migration.EncodeMomState(migration.MomState{ServerMode: m.lg.serverMode, Upgraded: m.lg.upgraded})
	if err := statefile.WriteAtomic(filepath.Join(m.cfg.StateDir, legacyFile), b, 0o600); err != nil {
		return fmt.Errorf("persist %s: %w", legacyFile, err)
	}
	return nil
}

// effectiveLocked is the protocol the MOM speaks: its setting, or the
// server's mode; ping (the strictest) before it has heard from the server.
func (m *Mom) effectiveLocked() proto.Mode {
	switch {
	case m.lg.setting != 0:
		return m.lg.setting
	case m.lg.serverMode != 0:
		return m.lg.serverMode
	}
	return proto.ModePing
}

// Protocol is the protocol the MOM speaks now.
func (m *Mom) Protocol() proto.Mode {
	m.lg.mu.Lock()
	defer m.lg.mu.Unlock()
	return m.effectiveLocked()
}

// canV2 reports whether the MOM can speak PING: it holds cluster keys, or
// an enrollment token to get them.
func (m *Mom) canV2() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.enrolled != nil || m.cfg.Enroll != ""
}

// setServerModeLocked records the server's mode, persisting a change.
func (m *Mom) setServerModeLocked(mode proto.Mode) {
	if mode == m.lg.serverMode || !mode.Valid() {
		return
	}
	m.lg.serverMode = mode
	if err := m.saveLegacyLocked(); err != nil {
		m.log.WithError(err).Warn("persist server mode")
	}
}

// chooseControl picks the control connection's version from the server's
// hello: the highest both allow. It returns errUseLegacy for v1.
func (m *Mom) chooseControl(sh *proto.ServerHello) error {
	canV2 := m.canV2()
	m.lg.mu.Lock()
	defer m.lg.mu.Unlock()
	m.setServerModeLocked(sh.Mode)
	p := m.effectiveLocked()
	mine := migration.MomVersions(p, canV2)
	ver := migration.ControlVersion(sh.Versions, mine)
	m.lg.session, m.lg.sessionVer = p, ver
	switch ver {
	case proto.V2:
		return nil
	case proto.V1:
		return errUseLegacy
	}
	why := ""
	if p != proto.ModeLegacy && !canV2 {
		why = " (not enrolled: start the MOM once with --enroll TOKEN)"
	}
	return fmt.Errorf("%w: server is in %s mode and accepts %s; this MOM speaks %s as %s%s", ErrNoCommonVersion,
		sh.Mode, orNothing(migration.VersionsString(sh.Versions)), orNothing(migration.VersionsString(mine)), p, why)
}

func orNothing(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// advertised is the versions mask the MOM puts in its hello.
func (m *Mom) advertised() uint8 {
	m.lg.mu.Lock()
	defer m.lg.mu.Unlock()
	return migration.MomVersions(m.lg.session, true)
}

// setControlWriter installs (or, with nil, removes) the writer of the
// current control connection, used for node lookups.
func (m *Mom) setControlWriter(w func(proto.Message) error, ver proto.Version) {
	m.lg.mu.Lock()
	defer m.lg.mu.Unlock()
	m.lg.ctl, m.lg.ctlVer = w, ver
	if w == nil {
		m.lg.session, m.lg.sessionVer = 0, 0
		// Lookups sent on the connection that ended get no answer: fail
		// them now so their callers retry on the next connection.
		for id, ch := range m.lg.lookups {
			close(ch)
			delete(m.lg.lookups, id)
		}
	}
}

// legacySession runs a v1 control session: LegacyHello, then the pushes of
// the server (address lists, upgraded set, mode) until the connection ends.
func (m *Mom) legacySession(ctx context.Context, c net.Conn) error {
	m.mu.Lock()
	name := ""
	if m.enrolled != nil {
		name = m.enrolled.Name
	}
	m.mu.Unlock()
	canV2 := m.canV2()
	m.lg.mu.Lock()
	hello := &proto.LegacyHello{Name: name, IMPort: m.addr.Port(), Versions: migration.MomVersions(m.lg.session, canV2)}
	m.lg.mu.Unlock()
	hello.Versions |= proto.VersionBitV1
	if err := proto.WriteFrame(c, hello); err != nil {
		return fmt.Errorf("send legacy hello: %w", err)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return err
	}
	var wmu sync.Mutex
	m.setControlWriter(func(msg proto.Message) error {
		wmu.Lock()
		defer wmu.Unlock()
		if err := c.SetWriteDeadline(time.Now().Add(m.cfg.HandshakeTimeout)); err != nil {
			return err
		}
		return proto.WriteFrame(c, msg)
	}, proto.V1)
	defer m.setControlWriter(nil, 0)
	m.setConnected(true, nil)
	m.log.WithField("server", m.cfg.Server).Info("connected to server (legacy protocol v1)")
	buf := make([]byte, 0, 4096)
	for ctx.Err() == nil {
		frame, err := proto.ReadFrameLimit(c, buf[:cap(buf)], proto.MaxFrameSize)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read from server: %w", err)
		}
		msg, err := proto.Unmarshal(frame)
		if err != nil {
			return fmt.Errorf("decode frame from server: %w", err)
		}
		if err := m.handleServerMessage(msg); err != nil {
			return err
		}
	}
	return nil
}

// handleLegacyMessage applies the migration's messages from the server.
func (m *Mom) handleLegacyMessage(msg proto.Message) error {
	switch v := msg.(type) {
	case *proto.ClusterAddrs:
		m.lg.mu.Lock()
		m.lg.list = v
		m.lg.mu.Unlock()
		m.lg.lists.Add(1)
		m.lg.listBytes.Add(uint64(proto.HeaderSize + 4 + 8*len(v.Runs)))
		m.log.WithFields(logrus.Fields{"runs": len(v.Runs)}).Debug("address list received")
	case *proto.NodeUpgraded:
		m.lg.mu.Lock()
		changed, err := m.lg.upgraded.Apply(v.Op, v.Entries)
		if err == nil && changed {
			err = m.saveLegacyLocked()
		}
		n := m.lg.upgraded.Len()
		m.lg.mu.Unlock()
		if err != nil {
			return fmt.Errorf("apply node upgraded: %w", err)
		}
		if changed {
			m.log.WithFields(logrus.Fields{"op": v.Op, "entries": len(v.Entries), "upgraded": n}).Info("upgraded nodes updated")
		}
	case *proto.ModeMsg:
		canV2 := m.canV2()
		m.lg.mu.Lock()
		m.setServerModeLocked(v.Mode)
		p := m.effectiveLocked()
		ver := migration.ControlVersion(migration.ServerVersions(v.Mode), migration.MomVersions(p, canV2))
		changed := m.lg.session != 0 && (p != m.lg.session || ver != m.lg.sessionVer)
		m.lg.mu.Unlock()
		m.log.WithFields(logrus.Fields{"mode": v.Mode.String(), "protocol": p.String()}).Info("server mode changed")
		if changed {
			return errProtocolChanged
		}
	case *proto.NodeAddress:
		m.lg.mu.Lock()
		ch := m.lg.lookups[v.ID]
		delete(m.lg.lookups, v.ID)
		m.lg.mu.Unlock()
		if ch != nil {
			ch <- v // buffered, one reply per id
		}
	default:
		m.log.WithField("type", msg.Type().String()).Debug("ignored server message")
	}
	return nil
}

// ErrUnknownSister means the server has no node of that name.
var ErrUnknownSister = errors.New("no such node")

// lookup resolves a sister's IM address by node name: through the server
// when the control connection is up (so a readdressed node is found), else
// from the last answer.
func (m *Mom) lookup(ctx context.Context, name string) (netip.AddrPort, error) {
	m.lg.mu.Lock()
	cached, have := m.lg.names[name]
	ctl, ver := m.lg.ctl, m.lg.ctlVer
	var ch chan *proto.NodeAddress
	var id uint32
	if ctl != nil {
		m.lg.lookupID++
		id = m.lg.lookupID
		ch = make(chan *proto.NodeAddress, 1)
		m.lg.lookups[id] = ch
	}
	m.lg.mu.Unlock()
	if ctl == nil {
		if have {
			return cached, nil
		}
		return netip.AddrPort{}, fmt.Errorf("look up %s: not connected to the server", name)
	}
	defer func() {
		m.lg.mu.Lock()
		delete(m.lg.lookups, id)
		m.lg.mu.Unlock()
	}()
	if err := ctl(&proto.NodeLookup{Ver: ver, ID: id, Name: name}); err != nil {
		if have {
			return cached, nil
		}
		return netip.AddrPort{}, fmt.Errorf("look up %s: %w", name, err)
	}
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case r := <-ch:
		if r == nil { // the control connection ended
			if have {
				return cached, nil
			}
			return netip.AddrPort{}, fmt.Errorf("look up %s: the control connection to the server changed", name)
		}
		if r.Status != proto.LookupFound {
			return netip.AddrPort{}, fmt.Errorf("look up %s: %w", name, ErrUnknownSister)
		}
		ap := netip.AddrPortFrom(r.Addr.Netip(), r.Port)
		m.lg.mu.Lock()
		m.lg.names[name] = ap
		m.lg.mu.Unlock()
		return ap, nil
	case <-t.C:
	case <-ctx.Done():
		return netip.AddrPort{}, ctx.Err()
	}
	if have {
		return cached, nil
	}
	return netip.AddrPort{}, fmt.Errorf("look up %s: the server did not answer", name)
}

// v1Revoked reports whether a v1 (keyless) connection from addr is
// refused as revoked. An address is denied only under the keys held when
// the deny arrived (ping.DenyList): a v1 peer carries no key, so it is
// judged under this MOM's active key. Once a rotation has replaced that key,
// the address belongs to whatever node the server lists there now: the
// pushed list, which drops a deleted node's address at once, decides. A MOM
// without a key relies on the list alone.
func (m *Mom) v1Revoked(addr proto.Addr) bool {
	k := m.ring.Load().Active()
	if k == nil {
		return false
	}
	return m.deny.RevokedUnder(proto.NodeID{}, addr, uint32(k.ID))
}

// inbound is what the admission decision needs to know of an IM
// connection from remote (migration.Inbound; AdmitIM fills in the version).
func (m *Mom) inbound(remote proto.Addr) migration.Inbound {
	m.lg.mu.Lock()
	in := migration.Inbound{Protocol: m.effectiveLocked(), OnList: m.lg.list.Contains(remote.Netip()),
		Upgraded: m.lg.upgraded.Contains(remote)}
	m.lg.mu.Unlock()
	in.Revoked = m.v1Revoked(remote)
	return in
}

// LegacyStatus is the migration part of the MOM's status.
type LegacyStatus struct {
	Setting    string `json:"protocol_setting"`    // --protocol: legacy, compat, ping or follow
	Protocol   string `json:"protocol"`            // what the MOM speaks now
	ServerMode string `json:"server_mode"`         // the server's mode as last heard
	Control    string `json:"control"`             // version of the control connection: v1, v2 or ""
	ListAddrs  int    `json:"list_addrs"`          // addresses on the cluster list
	ListRuns   int    `json:"list_runs"`           // runs of consecutive addresses
	Lists      uint64 `json:"lists_received"`      // ClusterAddrs pushes received
	ListBytes  uint64 `json:"list_bytes_received"` // their bytes, headers included
	Upgraded   int    `json:"upgraded_nodes"`      // nodes whose legacy admission is refused
	V1Admitted uint64 `json:"v1_admitted"`         // IM connections admitted by the list
}

func (m *Mom) legacyStatus() *LegacyStatus {
	m.lg.mu.Lock()
	defer m.lg.mu.Unlock()
	st := &LegacyStatus{Setting: ProtocolFollow, Protocol: m.effectiveLocked().String(),
		ListRuns: len(m.lg.list.Runs), Lists: m.lg.lists.Load(), ListBytes: m.lg.listBytes.Load(), Upgraded: m.lg.upgraded.Len(), V1Admitted: m.lg.v1Admitted.Load()}
	if m.lg.setting != 0 {
		st.Setting = m.lg.setting.String()
	}
	if m.lg.serverMode != 0 {
		st.ServerMode = m.lg.serverMode.String()
	}
	if m.lg.ctl != nil {
		st.Control = fmt.Sprintf("v%d", m.lg.ctlVer)
	}
	for _, r := range m.lg.list.Runs {
		st.ListAddrs += int(r.Count)
	}
	return st
}

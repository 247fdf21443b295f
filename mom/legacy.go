package mom

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/statecheck"
)

// legacyFile persists the server's last known mode and the upgraded set.
const legacyFile = "legacy.json"

// maxLegacyFile bounds legacy.json (65,535 upgraded nodes fit easily).
const maxLegacyFile = 16 << 20

// momLegacy is the MOM's state for the legacy protocol and the migration.
type momLegacy struct {
	mu         sync.Mutex
	setting    proto.Mode // --protocol; 0 follows the server
	serverMode proto.Mode // last heard from the server; 0 if never
	session    proto.Mode // effective protocol of the current control session
	sessionVer proto.Version
	list       *proto.ClusterAddrs
	upgraded   *migration.UpgradedSet
	// held: legacy.json was lost at start (statecheck.StepLegacyHold):
	// every address counts as upgraded, so no legacy (v1) admission can be
	// a downgrade, until the server's NodeUpgraded replace has arrived.
	// Nothing is saved meanwhile, so that a restart recovers again.
	held bool

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
	if m.base.State.Has(statecheck.StepLegacyHold) {
		lg.held = true
		m.log.Error("state loss: upgraded set lost; every legacy (v1) admission is refused until the server's upgraded set has arrived")
		return nil
	}
	path := filepath.Join(m.cfg.StateDir, legacyFile)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if err := legacyFileSize(fi.Size()); err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	st, err := decodeLegacyFile(b)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	lg.serverMode, lg.upgraded = st.ServerMode, st.Upgraded
	return nil
}

// legacyFileSize refuses a legacy.json larger than maxLegacyFile.
func legacyFileSize(n int64) error {
	if n > maxLegacyFile {
		return fmt.Errorf("%d bytes, limit %d", n, maxLegacyFile)
	}
	return nil
}

// decodeLegacyFile is initLegacy's decoding of legacy.json.
func decodeLegacyFile(b []byte) (migration.MomState, error) {
	if err := legacyFileSize(int64(len(b))); err != nil {
		return migration.MomState{}, err
	}
	return migration.DecodeMomState(b)
}

// saveLegacyLocked persists the server mode and the upgraded set, unless
// the set is held (lost at start, not yet replaced by the server's); the
// caller holds m.lg.mu.
func (m *Mom) saveLegacyLocked() error {
	if m.lg.held {
		return nil
	}
	b := migration.EncodeMomState(migration.MomState{ServerMode: m.lg.serverMode, Upgraded: m.lg.upgraded})
	if err := statefile.WriteAtomic(filepath.Join(m.cfg.StateDir, legacyFile), b, 0o600); err != nil {
		return fmt.Errorf("persist %s: %w", legacyFile, err)
	}
	return nil
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
	m.log.WithField("server", m.srv.current()).Info("connected to server (legacy protocol v1)")
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
		if (securityFrame(msg) && m.bothCouldSeal()) || sealedOnly(msg) {
			// A v1 session is never sealed (chooseControl refuses one with
			// a server known to seal, unless this MOM speaks legacy only).
			return m.refuseUnsealed(msg, m.srv.current())
		}
		if err := m.handleServerMessage(msg); err != nil {
			return err
		}
	}
	return nil
}

// handleLegacyMessage applies the migration's messages from the server:
// the address list, the upgraded set and the mode.
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
		if err == nil && m.lg.held && v.Op == proto.UpgradedReplace {
			m.lg.held, changed = false, true
			m.log.WithField("upgraded", m.lg.upgraded.Len()).Warn("upgraded set recovered from the server: legacy admissions judged by it again")
		}
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
	default:
		m.log.WithField("type", msg.Type().String()).Debug("ignored server message")
	}
	return nil
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

// legacyStatus is the migration part of the MOM's status.
func (m *Mom) legacyStatus() *admin.MomLegacyStatus {
	ctlVer := m.ctl.version()
	m.lg.mu.Lock()
	defer m.lg.mu.Unlock()
	st := &admin.MomLegacyStatus{Setting: ProtocolFollow, Protocol: m.effectiveLocked().String(),
		ListRuns: len(m.lg.list.Runs), Lists: m.lg.lists.Load(), ListBytes: m.lg.listBytes.Load(), Upgraded: m.lg.upgraded.Len(), V1Admitted: m.lg.v1Admitted.Load()}
	if m.lg.setting != 0 {
		st.Setting = m.lg.setting.String()
	}
	if m.lg.serverMode != 0 {
		st.ServerMode = m.lg.serverMode.String()
	}
	if ctlVer != 0 {
		st.Control = fmt.Sprintf("v%d", ctlVer)
	}
	for _, r := range m.lg.list.Runs {
		st.ListAddrs += int(r.Count)
	}
	return st
}

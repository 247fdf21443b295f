package mom

import (
	"errors"
	"fmt"
	"strings"

	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// Which protocol the MOM speaks (--protocol, or the server's mode) and
// which version each control connection uses (docs/PROTOCOL.md 4.4).

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

// releaseLegacyHoldLocked ends the hold of an upgraded set lost at start
// when the server is in ping mode: it sends no address list then, so no
// legacy (v1) admission is possible, and none of an upgraded set; a mode
// change makes the MOM reconnect and get the list with the set. The
// caller holds m.lg.mu.
func (m *Mom) releaseLegacyHoldLocked(mode proto.Mode) {
	if !m.lg.held || mode != proto.ModePing {
		return
	}
	m.lg.held = false
	if err := m.saveLegacyLocked(); err != nil {
		m.log.WithError(err).Warn("persist the upgraded set")
	}
	m.log.Warn("upgraded set lost at start: the server is in ping mode, which admits no legacy (v1) connection; legacy.json written again")
}

// chooseControl picks the control connection's version from the server's
// hello: the highest both allow. It returns errUseLegacy for v1.
func (m *Mom) chooseControl(sh *proto.ServerHello) error {
	canV2 := m.canV2()
	// A server that has proved it speaks sealed sessions is believed only
	// once a sealed session authenticates what it says: its ServerHello
	// is not authenticated until then (the session's binding covers it),
	// so its mode is adopted then (adoptHelloMode), and a hello that
	// offers only v1 to a MOM that speaks PING is a downgrade.
	sealedServer := m.speaksSessions() && m.serverSealed()
	m.lg.mu.Lock()
	defer m.lg.mu.Unlock()
	if !sealedServer {
		m.setServerModeLocked(sh.Mode)
		m.releaseLegacyHoldLocked(sh.Mode)
	}
	p := m.effectiveLocked()
	mine := migration.MomVersions(p, canV2)
	ver := migration.ControlVersion(sh.Versions, mine)
	m.lg.session, m.lg.sessionVer = p, ver
	switch ver {
	case proto.V2:
		return nil
	case proto.V1:
		if sealedServer && p != proto.ModeLegacy {
			return fmt.Errorf("%w: the server speaks sealed sessions, yet its hello (%s mode) offers only the legacy protocol, which nothing authenticates: refused; if the server was rolled back to legacy mode while this MOM was down, restart it with --protocol legacy",
				session.ErrDowngrade, sh.Mode)
		}
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

// adoptHelloMode takes the mode of a ServerHello that a sealed session has
// since authenticated; a change of what this MOM should speak ends the
// session (errProtocolChanged) as a Mode frame would.
func (m *Mom) adoptHelloMode(mode proto.Mode) error {
	m.lg.mu.Lock()
	m.releaseLegacyHoldLocked(mode)
	same := mode == m.lg.serverMode
	m.lg.mu.Unlock()
	if same || !mode.Valid() {
		return nil
	}
	return m.handleLegacyMessage(&proto.ModeMsg{Mode: mode})
}

// advertised is the versions mask the MOM puts in its hello.
func (m *Mom) advertised() uint8 {
	m.lg.mu.Lock()
	defer m.lg.mu.Unlock()
	return migration.MomVersions(m.lg.session, true)
}

// endControlSession forgets the protocol of the control session that
// ended.
func (m *Mom) endControlSession() {
	m.lg.mu.Lock()
	defer m.lg.mu.Unlock()
	m.lg.session, m.lg.sessionVer = 0, 0
}

// Package mom is the momgate MOM daemon: identity, keyring, control
// connection to the server, the IM listener that admits sister MOMs by PING,
// the admitted-peers table, the job workload and the MOM's admin socket. It
// is a thin I/O shell over the core (handshake, ping, migration, rotation,
// keys) on the shared skeleton of internal/daemon; README.md, section
// Architecture, says which file holds what.
package mom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
	"github.com/momgate/momgate/statecheck"
)

// Config configures a MOM. Zero values get defaults.
type Config struct {
	StateDir string
	Server   string // server list HOST[:PORT][,HOST[:PORT]...]: a group's members, or one server (ParseServers)
	Listen   string // IM listen address ip:port; the ip is this node's address
	Enroll   string // enrollment token, needed on first start only
	Log      logrus.FieldLogger
	Audit    *audit.Log
	Now      func() time.Time
	Rand     io.Reader
	// Heartbeat is the interval of heartbeat PINGs to the server.
	Heartbeat time.Duration
	// Freshness is the first-contact window for sister PINGs (0 disables;
	// negative means the default).
	Freshness time.Duration
	// HandshakeTimeout bounds the PING swap on a new connection.
	HandshakeTimeout time.Duration
	// BackoffMin and BackoffMax bound reconnect delays to the server
	// (0: DefaultBackoffMin, DefaultBackoffMax).
	BackoffMin, BackoffMax time.Duration
	// Protocol is what the MOM speaks: legacy, compat, ping, or follow
	// (or "": the server's mode).
	Protocol string
	// MetricsListen is the Prometheus metrics address IP:PORT; "" disables.
	MetricsListen string
	// MetricsAllowRemote permits a MetricsListen that is not loopback.
	MetricsAllowRemote bool
	// SourceLimits bounds unauthenticated IM connections per source address.
	SourceLimits connlimit.Config
	// CrashAt, when set, is called right after each crash point: the
	// steps of a Welcome and of a key rotation on the MOM (docs/KEYS.md).
	// The tests' hook kills the process there (daemon.CrashHookFromEnv);
	// nil in production.
	CrashAt func(step string)
	// PBSSocket is the OpenPBS plugin's socket (pbsauth.go); "" disables.
	PBSSocket string
	// SessionLimits bound the keys of this MOM's sealed sessions; zero
	// fields are the protocol's defaults (a test shortens the rekey
	// interval).
	SessionLimits session.Limits
	// WithoutSessions makes the MOM behave as one of before sealed
	// sessions (no capability in its hello, plain swaps only, a
	// SessionPing refused as an unknown frame): test-only, to run a mixed
	// cluster.
	WithoutSessions bool
}

// Mom is a running MOM daemon.
type Mom struct {
	cfg   Config
	log   logrus.FieldLogger
	audit *audit.Log
	ident *keys.Identity
	ring  *keys.Holder
	addr  netip.AddrPort // IM listen address

	base      *daemon.Base           // replay state, audit, limits, metrics endpoint (internal/daemon)
	responder *handshake.IMResponder // what admit answers IM connections with (admit.go)
	deny      *ping.DenyList
	peers     *peerTable
	names     *nameBook // sisters' names by node id (names.go)

	mu        sync.Mutex // guards enrolled, sealer and the fields below
	enrolled  *enrollment
	sealer    *ping.Sealer
	connected bool
	serverErr string

	srvWrap *keys.Wrapper // box precomputation for keys the server wraps for us
	keyMu   sync.Mutex    // serialises keyring changes (updateRing)

	admitted    atomic.Uint64 // inbound admissions
	admittedOut atomic.Uint64 // outbound: a sister admitted our PING
	listener    net.Listener
	ready       chan struct{}
	readiness   daemon.Readiness // /readyz: listeners and admin socket up (readyErr)

	gauge connGauge // open connections

	sess    momSessions                 // sealed-session state (sealed.go)
	ims     *imLinks                    // admitted IM connections (imlink.go)
	sstats  *daemon.SessionStats        // sealed frames and sessions, for the metrics
	ctlLink atomic.Pointer[daemon.Link] // the control connection's link, nil when down

	lg   momLegacy // legacy protocol and migration (legacy.go, protocol.go)
	ctl  *link     // the control connection's writer and lookups (link.go)
	jobs *jobTable // jobs this MOM is mother superior or sister of (jobs.go)

	srv *serverState // the server list and the one the control loop is on (serverstate.go)
}

// New loads (or, with a token, starts) the MOM's state. It does not
// connect or listen yet.
func New(cfg Config) (*Mom, error) {
	d := daemon.Settings{Log: cfg.Log, Audit: cfg.Audit, Now: cfg.Now, Rand: cfg.Rand, HandshakeTimeout: cfg.HandshakeTimeout}.WithDefaults()
	cfg.Log, cfg.Audit, cfg.Now, cfg.Rand, cfg.HandshakeTimeout = d.Log, d.Audit, d.Now, d.Rand, d.HandshakeTimeout
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.CrashAt == nil {
		cfg.CrashAt = func(string) {}
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = DefaultBackoffMin
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = DefaultBackoffMax
	}
	if cfg.Freshness < 0 {
		cfg.Freshness = ping.DefaultFreshness
	}
	listen, err := netip.ParseAddrPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want IP:PORT of this node: %w", cfg.Listen, err)
	}
	if err := proto.CheckNodeAddr(listen.Addr()); err != nil {
		return nil, fmt.Errorf("--listen %s: must be this node's own address (the Mom= of create node; PINGs name it): %w", cfg.Listen, err)
	}
	servers, err := ParseServers(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("--server %q: %w", cfg.Server, err)
	}
	if err := daemon.CheckMetricsListen(cfg.MetricsListen, cfg.MetricsAllowRemote); err != nil {
		return nil, err
	}
	if _, err := ParseProtocol(cfg.Protocol); err != nil {
		return nil, err
	}
	if cfg.Enroll != "" {
		if _, err := keys.ParseToken(cfg.Enroll); err != nil {
			return nil, fmt.Errorf("--enroll: %w", err)
		}
	}
	dir := cfg.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil { // a directory just created cannot be live
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	st, err := daemon.OpenState(dir, statecheck.RoleMom, cfg.Log)
	if err != nil {
		return nil, err
	}
	m, err := open(cfg, st, listen)
	if err != nil {
		return nil, err
	}
	m.srv = newServerState(servers)
	return m, nil
}

// open loads the state directory st, locked and judged, and takes the
// verdict's recovery steps (state.go); on failure it releases the lock.
func open(cfg Config, st *daemon.State, listen netip.AddrPort) (m *Mom, err error) {
	dir := cfg.StateDir
	defer func() {
		if err == nil {
			return
		}
		if m != nil && m.base != nil {
			m.base.Close()
		} else {
			st.Close()
		}
	}()
	enr, err := loadEnrollment(dir)
	if err != nil {
		return nil, err
	}
	if enr == nil && cfg.Enroll == "" && cfg.Protocol != ProtocolLegacy {
		return nil, ErrNotEnrolled // only a legacy-only MOM runs without enrolling
	}
	ident, err := loadOrCreateIdentity(filepath.Join(dir, identityFile), cfg.Rand, enr == nil)
	if err != nil {
		return nil, err
	}
	ring := keys.NewKeyring()
	switch {
	case enr == nil:
	case st.Has(statecheck.StepKeyringRefetch):
		cfg.Log.Error("state loss: starting without cluster keys; nothing is sealed or admitted until the server's Welcome brings them")
	default:
		if ring, err = keystore.LoadKeyring(filepath.Join(dir, keyringFile)); err != nil {
			return nil, err
		}
	}
	m = &Mom{
		cfg: cfg, log: cfg.Log, audit: cfg.Audit, ident: ident, ring: keys.NewHolder(ring), addr: listen,
		deny: &ping.DenyList{}, peers: newPeerTable(1 << 16), names: newNameBook(), enrolled: enr, ready: make(chan struct{}), ctl: newLink(),
		ims: newIMLinks(), sstats: daemon.NewSessionStats(),
	}
	m.base, err = daemon.OpenBase(daemon.BaseConfig{State: st, Log: cfg.Log, Audit: cfg.Audit, Now: cfg.Now,
		Freshness: cfg.Freshness, Keys: m.ring, Revoker: m.deny, SourceLimits: cfg.SourceLimits})
	if err != nil {
		return nil, err
	}
	m.base.Verifier.Attest = m.attest
	if err := m.loadDeny(); err != nil {
		return nil, err
	}
	if err := errors.Join(m.initLegacy(), m.loadJobs(), m.loadSessions()); err != nil {
		return nil, err
	}
	if err := m.recoverState(); err != nil {
		return nil, err
	}
	if enr != nil {
		id, _ := enr.nodeID()
		m.sealer = &ping.Sealer{Keys: m.ring, Stamper: m.base.Stamper, Rand: cfg.Rand, Node: id}
	}
	return m, nil
}

// loadOrCreateIdentity loads the node's identity, or creates one if it
// does not exist and create is set (not enrolled yet: an enrolled node's
// identity is the one the server registered).
func loadOrCreateIdentity(path string, rnd io.Reader, create bool) (*keys.Identity, error) {
	id, err := keystore.LoadIdentity(path)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) || !create {
		return nil, err
	}
	if id, err = keys.GenerateIdentity(rnd); err != nil {
		return nil, err
	}
	if err := keystore.SaveIdentity(path, id); err != nil {
		return nil, err
	}
	return id, nil
}

// Addr returns the IM listener's address once Run is listening.
func (m *Mom) Addr() net.Addr {
	<-m.ready
	return m.listener.Addr()
}

// Run serves until ctx is cancelled.
func (m *Mom) Run(ctx context.Context) error {
	defer m.base.Close()
	eph, err := session.NewEphemerals(session.EphemeralConfig{Rand: m.cfg.Rand, Now: time.Now})
	if err != nil {
		return err
	}
	m.sess.eph = eph // before the metrics and the IM listener read it
	ln, serveMetrics, err := m.base.Listen(m.addr.String(), m.cfg.MetricsListen, m.cfg.MetricsAllowRemote, m.readyErr, m.collectors()...)
	if err != nil {
		return err
	}
	adminLn, err := admin.Listen(admin.SocketPath(m.cfg.StateDir))
	if err != nil {
		ln.Close()
		return err
	}
	m.listener = ln
	close(m.ready)
	m.log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "server": m.cfg.Server}).Info("MOM listening")

	g := daemon.NewGroup(ctx)
	g.Go("ephemeral keys", func(ctx context.Context) error {
		daemon.MaintainEphemerals(ctx, m.sess.eph, m.log)
		return nil
	})
	g.Go("admin socket", func(ctx context.Context) error {
		return admin.ServeListener(ctx, adminLn, m.handleAdmin, m.log)
	})
	g.Go("control", m.controlLoop)
	g.Go("housekeeping", func(ctx context.Context) error {
		m.base.Housekeeping(ctx, nil)
		return nil
	})
	g.Go("jobs", m.runJobs)
	if serveMetrics != nil {
		g.Go("metrics", serveMetrics)
	}
	if m.cfg.PBSSocket != "" {
		g.Go("pbs socket", m.servePBS)
	}
	m.readiness.Ready()
	m.serveIM(g.Context(), ln)
	m.readiness.Stopping()
	g.Stop()
	err = g.Wait()
	m.base.Shutdown()
	return err
}

// readyErr is the MOM's /readyz answer: nil once its listeners and admin
// socket are up and it can answer sisters' PINGs (it holds a cluster key,
// or it speaks the legacy protocol only).
func (m *Mom) readyErr() error {
	if err := m.readiness.Err(); err != nil {
		return err
	}
	if m.currentSealer() == nil && m.cfg.Protocol != ProtocolLegacy {
		return errors.New("no cluster key yet: not enrolled")
	}
	return nil
}

// currentSealer returns the sealer, or nil before enrollment completes.
func (m *Mom) currentSealer() *ping.Sealer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sealer
}

// Defaults for the MOM's flags.
const (
	DefaultHeartbeat = 10 * time.Second
	DefaultFreshness = ping.DefaultFreshness
)

// dial connects from this node's address, so the peer sees the address
// PINGs name.
func (m *Mom) dial(ctx context.Context, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: m.cfg.HandshakeTimeout, LocalAddr: &net.TCPAddr{IP: m.addr.Addr().AsSlice()}}
	return d.DialContext(ctx, "tcp", addr)
}

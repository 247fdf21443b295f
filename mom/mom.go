// Package mom is the momgate MOM daemon: identity, keyring, control
// connection to the server, the IM listener that admits sister MOMs by PING,
// the admitted-peers table and the MOM's admin socket. It is a thin I/O
// shell over proto, keys and ping.
package mom

import (
	"context"
	"crypto/rand"
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

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/metrics"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
)

// Config configures a MOM. Zero values get defaults.
type Config struct {
	StateDir string
	Server   string // server control address host:port
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
	// BackoffMin and BackoffMax bound reconnect delays to the server.
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
	// PBSSocket is the OpenPBS plugin's socket (pbsauth.go); "" disables.
	PBSSocket string
}

// Mom is a running MOM daemon.
type Mom struct {
	cfg   Config
	log   logrus.FieldLogger
	audit *audit.Log
	ident *keys.Identity
	ring  *keys.Holder
	addr  netip.AddrPort // IM listen address

	marks    *store.MarkLog
	stamper  *ping.Stamper
	verifier *ping.Verifier
	deny     *ping.DenyList
	peers    *peerTable

	mu        sync.Mutex // guards enrolled, sealer and the fields below
	enrolled  *enrollment
	sealer    *ping.Sealer
	connected bool
	serverErr string

	srvWrap *keys.Wrapper // box precomputation for keys the server wraps for us
	keyMu   sync.Mutex    // serialises keyring changes (updateRing)

	admitted atomic.Uint64
	listener net.Listener
	ready    chan struct{}

	hooks       metricHooks  // metric sources of later subsystems (metrics.go)
	gauge       connGauge    // open connections
	metricsAddr atomic.Value // net.Addr of the metrics listener
	limiter     *connlimit.Limiter

	lg   momLegacy // legacy protocol and migration (legacy.go)
	jobs *jobTable // jobs this MOM is mother superior or sister of (jobs.go)
}

// New loads (or, with a token, starts) the MOM's state. It does not
// connect or listen yet.
func New(cfg Config) (*Mom, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.New(audit.Config{Out: io.Discard})
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 10 * time.Second
	}
	if cfg.Freshness < 0 {
		cfg.Freshness = ping.DefaultFreshness
	}
	listen, err := netip.ParseAddrPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: want IP:PORT of this node: %w", cfg.Listen, err)
	}
	if listen.Addr().IsUnspecified() {
		return nil, fmt.Errorf("--listen %s: must be this node's own address, not a wildcard (PINGs name it)", cfg.Listen)
	}
	if _, _, err := net.SplitHostPort(cfg.Server); err != nil {
		return nil, fmt.Errorf("--server %q: want HOST:PORT: %w", cfg.Server, err)
	}
	if cfg.MetricsListen != "" {
		if err := metrics.CheckListen(cfg.MetricsListen, cfg.MetricsAllowRemote); err != nil {
			return nil, err
		}
	}
	dir := cfg.StateDir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("chmod state dir %s: %w", dir, err)
	}
	enr, err := loadEnrollment(dir)
	if err != nil {
		return nil, err
	}
	if _, err := ParseProtocol(cfg.Protocol); err != nil {
		return nil, err
	}
	if enr == nil && cfg.Enroll == "" && cfg.Protocol != ProtocolLegacy {
		return nil, ErrNotEnrolled // only a legacy-only MOM runs without enrolling
	}
	if enr == nil && cfg.Enroll != "" {
		if _, err := keys.ParseToken(cfg.Enroll); err != nil {
			return nil, fmt.Errorf("--enroll: %w", err)
		}
	}
	ident, err := loadOrCreateIdentity(filepath.Join(dir, identityFile), cfg.Rand)
	if err != nil {
		return nil, err
	}
	ring := keys.NewKeyring()
	if enr != nil {
		if ring, err = keys.LoadKeyring(filepath.Join(dir, keyringFile)); err != nil {
			return nil, err
		}
	}
	marks, initial, err := store.OpenMarkLog(dir)
	if err != nil {
		return nil, err
	}
	stamper, err := ping.NewStamper(cfg.Now, store.NewCeilingFile(filepath.Join(dir, ceilingFile)), 0)
	if err != nil {
		marks.Close()
		return nil, err
	}
	m := &Mom{
		cfg: cfg, log: cfg.Log, audit: cfg.Audit, ident: ident, ring: keys.NewHolder(ring), addr: listen,
		marks: marks, stamper: stamper, deny: &ping.DenyList{}, peers: newPeerTable(1 << 16),
		enrolled: enr, ready: make(chan struct{}), limiter: connlimit.New(cfg.SourceLimits),
	}
	if err := m.loadDeny(); err != nil {
		marks.Close()
		return nil, err
	}
	if err := errors.Join(m.initLegacy(), m.loadJobs()); err != nil {
		marks.Close()
		return nil, err
	}
	m.verifier = &ping.Verifier{
		Keys:    m.ring,
		Guard:   ping.NewGuard(ping.GuardConfig{Freshness: cfg.Freshness, Store: marks}, initial),
		Revoker: m.deny,
		Now:     cfg.Now,
	}
	if enr != nil {
		id, _ := enr.nodeID()
		m.sealer = &ping.Sealer{Keys: m.ring, Stamper: stamper, Rand: cfg.Rand, Node: id}
	}
	return m, nil
}

func loadOrCreateIdentity(path string, rnd io.Reader) (*keys.Identity, error) {
	id, err := keys.LoadIdentity(path)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if id, err = keys.GenerateIdentity(rnd); err != nil {
		return nil, err
	}
	if err := keys.SaveIdentity(path, id); err != nil {
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
	defer m.marks.Close()
	ln, err := net.Listen("tcp", m.addr.String())
	if err != nil {
		return fmt.Errorf("listen %s: %w", m.addr, err)
	}
	serveMetrics, err := m.bindMetrics()
	if err != nil {
		ln.Close()
		return err
	}
	m.listener = ln
	close(m.ready)
	m.log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "server": m.cfg.Server}).Info("MOM listening")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 6) // one per run below
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	run("admin socket", func(ctx context.Context) error {
		return admin.Serve(ctx, filepath.Join(m.cfg.StateDir, adminSocket), m.handleAdmin, m.log)
	})
	run("control", m.controlLoop)
	run("housekeeping", m.housekeeping)
	run("jobs", m.runJobs)
	if serveMetrics != nil {
		run("metrics", serveMetrics)
	}
	if m.cfg.PBSSocket != "" {
		run("pbs socket", m.servePBS)
	}
	m.serveIM(ctx, ln)
	cancel()
	wg.Wait()
	m.audit.Flush()
	if err := m.marks.Compact(m.verifier.Guard.Snapshot()); err != nil {
		m.log.WithError(err).Warn("compact marks at shutdown")
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

func (m *Mom) housekeeping(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := m.marks.Sync(); err != nil {
			m.log.WithError(err).Warn("sync mark log")
		}
		if m.marks.LogSize() > 1<<20 {
			if err := m.marks.Compact(m.verifier.Guard.Snapshot()); err != nil {
				m.log.WithError(err).Warn("compact mark log")
			}
		}
		if i%10 == 0 {
			m.audit.Flush()
		}
	}
}

// currentSealer returns the sealer, or nil before enrollment completes.
func (m *Mom) currentSealer() *ping.Sealer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sealer
}

func (m *Mom) stamp(e audit.Entry) audit.Entry {
	e.Time = m.cfg.Now()
	return e
}

// loadDeny restores the persisted deny list.
func (m *Mom) loadDeny() error {
	path := filepath.Join(m.cfg.StateDir, denyFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var d denied
	if err := store.LoadJSON(path, &d); err != nil {
		return err
	}
	for _, e := range d.Entries {
		n, a, ids, err := parseDenyEntry(e)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		m.deny.DenyUnder(n, a, ids)
	}
	return nil
}

// Defaults for the MOM's flags.
const (
	DefaultHeartbeat = 10 * time.Second
	DefaultFreshness = ping.DefaultFreshness
)

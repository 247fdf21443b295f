// Package server is the momgate server daemon: node registry, enrollment,
// cluster key authority, PING responder for MOM control connections, admin
// socket and audit log. It is a thin I/O shell over the core (handshake,
// ping, migration, rotation, keys) on the shared skeleton of
// internal/daemon; README.md, section Architecture, says which file holds
// what.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
	"github.com/momgate/momgate/replica"
	sess "github.com/momgate/momgate/session"
	"github.com/momgate/momgate/statecheck"
)

// Config configures a Server. Zero values get defaults.
type Config struct {
	StateDir string
	Listen   string // TCP address for MOM control connections
	Log      logrus.FieldLogger
	Audit    *audit.Log
	Now      func() time.Time
	Rand     io.Reader
	// HandshakeTimeout bounds a connection's time to authenticate.
	HandshakeTimeout time.Duration
	// KeyTimeout bounds how long automatic key distribution waits for
	// acknowledgements (default DefaultKeyTimeout).
	KeyTimeout time.Duration
	// MetricsListen is the Prometheus metrics address IP:PORT; "" disables.
	MetricsListen string
	// MetricsAllowRemote permits a MetricsListen that is not loopback.
	MetricsAllowRemote bool
	// SourceLimits bounds unauthenticated connections per source address.
	SourceLimits connlimit.Config
	// CrashAt, when set, is called right after each crash point: every
	// persisted rotation step and the saved enrollment (docs/KEYS.md). The
	// tests' hook kills the process there (daemon.CrashHookFromEnv); nil
	// in production.
	CrashAt func(step string)
	// DenyInterval is the interval deny traffic to the MOMs is coalesced
	// over (denypush.go): 0 means DefaultDenyInterval, negative pushes
	// every deny and lift at once.
	DenyInterval time.Duration
	// SessionLimits bound the keys of sealed control sessions; zero fields
	// are the protocol's defaults (a test shortens the rekey interval).
	SessionLimits sess.Limits
	// WithoutSessions makes the server behave as one of before sealed
	// sessions (no Welcome trailer, plain swaps only): test-only.
	WithoutSessions bool
	// Resolve resolves the host names Mom= gives (resolve.go); nil means
	// the system's resolver. Tests set one that answers loopback
	// addresses only.
	Resolve Resolver
	// PBSSocket is the OpenPBS plugin's socket (pbsauth.go); "" disables.
	// PBSHostName names this host to PBS ("" means the hostname).
	PBSSocket, PBSHostName string
	// PBSServiceUsers may join pbs_comm as PBS daemons (nil: root), as
	// PBS_AUTH_SERVICE_USERS says.
	PBSServiceUsers []string
	// Replicate, set when the server leads a group (group.go), commits the
	// records of a write through the group before it is acknowledged, in
	// place of the state journal and the state files; nil for a single
	// server. It fails when the group could not commit (no quorum, no
	// longer the leader): the write is undone as a failed fsync is.
	Replicate func(why string, recs []replica.StateRecord) error
	// NoAdminSocket: the caller serves the admin socket (a group member,
	// whose socket outlives the server it runs while it leads).
	NoAdminSocket bool
	// Collectors are more metrics for the server's endpoint (a group
	// member's leadership and lag).
	Collectors []prometheus.Collector
}

// Server is a running momgate server.
type Server struct {
	cfg   Config
	log   logrus.FieldLogger
	audit *audit.Log
	ident *keys.Identity
	ring  *keys.Holder

	base     *daemon.Base // replay state, audit, limits, metrics endpoint (internal/daemon)
	states   *stateStore
	sealer   *ping.Sealer
	hs       *handshake.ServerParams // what the server half of the handshake needs
	hsSlots  chan struct{}           // handshakes past their hello (admission.AfterHello)
	deny     *ping.DenyList
	denyKeys map[proto.NodeAddr][]keys.KeyID // keys held when each deny entry was made (deny.go); guarded by mu
	denies   *denyStore                      // deny.json and deny.journal (denystore.go); guarded by mu
	backups  backupStash                     // the chunked online backup started here (backupstash.go)
	dp       denyPush                        // deny traffic waiting to be pushed (denypush.go); guarded by mu
	deleted  *deletedNodes                   // the nodes deleted, by id (deleted.go); guarded by mu
	rot      *rotor

	mu    sync.Mutex // guards reg and conns
	reg   *registry
	conns map[proto.NodeID]*session
	// probes are the recovery lookups waiting for their sender's
	// FloorStamp (probe.go); they have their own lock.
	probes probeTable
	lg     legacyServer // legacy protocol and migration (legacy.go, migration.go)

	listener  net.Listener
	ready     chan struct{}
	readiness daemon.Readiness // /readyz: listeners and admin socket up

	sessions *daemon.SessionStats // sealed frames and sessions (sealed.go)
	// denyWithheld: deny.json was lost, so no DenySet is sent (none
	// would carry the lost entries, and every MOM would lift them) until
	// the key rotation started at recovery has completed (recovery.go).
	denyWithheld atomic.Bool

	hooks metricHooks // metric sources of later subsystems (metrics.go)
	gauge connGauge   // open connections
}

// New loads the state directory. It does not listen yet.
func New(cfg Config) (*Server, error) {
	d := daemon.Settings{Log: cfg.Log, Audit: cfg.Audit, Now: cfg.Now, Rand: cfg.Rand, HandshakeTimeout: cfg.HandshakeTimeout}.WithDefaults()
	cfg.Log, cfg.Audit, cfg.Now, cfg.Rand, cfg.HandshakeTimeout = d.Log, d.Audit, d.Now, d.Rand, d.HandshakeTimeout
	if cfg.CrashAt == nil {
		cfg.CrashAt = func(string) {}
	}
	if cfg.Resolve == nil {
		cfg.Resolve = systemResolver
	}
	if err := daemon.CheckMetricsListen(cfg.MetricsListen, cfg.MetricsAllowRemote); err != nil {
		return nil, err
	}
	dir := cfg.StateDir
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNotInitialized)
	}
	if err := checkNotMember(cfg); err != nil {
		return nil, err
	}
	st, err := daemon.OpenState(dir, statecheck.RoleServer, cfg.Log)
	if err != nil {
		return nil, err
	}
	s, err := open(cfg, st)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// open loads the state directory st locked and judged; on failure it
// releases the lock.
func open(cfg Config, st *daemon.State) (s *Server, err error) {
	dir := cfg.StateDir
	var states *stateStore
	defer func() {
		if err == nil {
			return
		}
		if states != nil {
			states.close()
		}
		if s != nil && s.rot != nil {
			s.rot.close()
		}
		if s != nil {
			s.denies.close()
		}
		if s != nil && s.base != nil {
			s.base.Close()
		} else {
			st.Close()
		}
	}()
	checked, _ := st.In.Journal.Checked.(*checkedState)
	p, states, err := openStateStore(dir, st.In.Journal, cfg.Replicate)
	if err != nil {
		return nil, err
	}
	var reg *registry
	if checked != nil {
		reg = checked.reg
	} else if reg, err = newRegistry(p); err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(dir, stateFile), err)
	}
	ident, err := keystore.LoadIdentity(filepath.Join(dir, identityFile))
	if err != nil {
		return nil, err
	}
	ring, err := keystore.LoadKeyring(filepath.Join(dir, keyringFile))
	if err != nil {
		return nil, err
	}
	if err := requireActive(ring); err != nil {
		return nil, fmt.Errorf("keyring %s: %w", filepath.Join(dir, keyringFile), err)
	}
	s = &Server{
		cfg: cfg, log: cfg.Log, audit: cfg.Audit, ident: ident, ring: keys.NewHolder(ring),
		states: states, deny: &ping.DenyList{}, denyKeys: map[proto.NodeAddr][]keys.KeyID{}, dp: denyPush{wake: make(chan struct{}, 1)},
		deleted: newDeletedNodes(), reg: reg, conns: map[proto.NodeID]*session{}, lg: legacyServer{listConns: map[proto.NodeID]*session{}},
		ready: make(chan struct{}), backups: backupStash{now: cfg.Now},
	}
	s.base, err = daemon.OpenBase(daemon.BaseConfig{State: st, Log: cfg.Log, Audit: cfg.Audit, Now: cfg.Now,
		Freshness: time.Duration(reg.attrs.Freshness), Keys: s.ring, Revoker: s.deny, SourceLimits: cfg.SourceLimits})
	if err != nil {
		return nil, err
	}
	s.sealer = &ping.Sealer{Keys: s.ring, Stamper: s.base.Stamper, Rand: cfg.Rand, Node: reg.id}
	s.hs = &handshake.ServerParams{ID: reg.id, Ident: ident, Rand: cfg.Rand, Sealer: s.sealer, Verifier: s.base.Verifier}
	s.hsSlots = make(chan struct{}, maxHandshakesPastHello)
	if !cfg.WithoutSessions {
		s.hs.Sessions = &handshake.SessionParams{Now: time.Now, Limits: cfg.SessionLimits}
	}
	s.sessions = daemon.NewSessionStats()
	if reg.tokens.Prune(cfg.Now()) > 0 {
		// Dropped from disk now rather than at the next change, so the
		// store forgets them too (memory per node in steady state).
		if err := states.save(reg); err != nil {
			cfg.Log.WithError(err).Warn("drop expired enrollment tokens from the state journal")
		}
	}
	s.legacyMetricHooks()
	if err := s.loadDenyList(); err != nil {
		return nil, err
	}
	if s.rot, err = newRotor(s); err != nil {
		return nil, err
	}
	if err := s.recoverState(); err != nil {
		return nil, err
	}
	s.hooks.rotationPhase, s.hooks.rotationPhases = s.rot.phase, rotationPhases
	st.In.DropRecords() // every store has opened on them
	s.warnHalfDeleted()
	return s, nil
}

// Fingerprint is the fingerprint of the server's identity key (SHA256:BASE64).
func (s *Server) Fingerprint() string { return keys.FingerprintText(s.ident.Public) }

// listenerIfReady returns the control listener, or nil while Run has not
// yet set it. Run sets s.listener before closing s.ready, so reading it
// only after ready is closed orders the read after the write.
func (s *Server) listenerIfReady() net.Listener {
	select {
	case <-s.ready:
		return s.listener
	default:
		return nil
	}
}

// Addr returns the control listener's address once Run is listening.
func (s *Server) Addr() net.Addr {
	<-s.ready
	return s.listener.Addr()
}

// Run listens and serves until ctx is cancelled, then closes every
// connection and returns.
func (s *Server) Run(ctx context.Context) error {
	defer s.base.Close()
	defer s.backups.close()
	defer s.states.close()
	defer s.rot.close()
	defer s.denies.close()
	ln, serveMetrics, err := s.base.Listen(s.cfg.Listen, s.cfg.MetricsListen, s.cfg.MetricsAllowRemote, s.readiness.Err, s.collectors()...)
	if err != nil {
		return err
	}
	var adminLn *net.UnixListener
	if !s.cfg.NoAdminSocket {
		if adminLn, err = admin.Listen(admin.SocketPath(s.cfg.StateDir)); err != nil {
			ln.Close()
			return err
		}
	}
	s.listener = ln
	close(s.ready)
	s.log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "fingerprint": s.Fingerprint()}).Info("server listening")

	g := daemon.NewGroup(ctx)
	if serveMetrics != nil {
		g.Go("", serveMetrics)
	}
	if adminLn != nil {
		g.Go("admin socket", func(ctx context.Context) error {
			return admin.ServeListener(ctx, adminLn, s.handleAdmin, s.log)
		})
	}
	if s.cfg.PBSSocket != "" {
		g.Go("pbs socket", s.servePBS)
	}
	g.Go("housekeeping", func(ctx context.Context) error {
		s.base.Housekeeping(ctx, s.chores)
		return nil
	})
	g.Go("rotation", func(ctx context.Context) error {
		s.rot.run(ctx)
		return nil
	})
	g.Go("deny pusher", func(ctx context.Context) error {
		s.runDenyPusher(ctx)
		return nil
	})
	s.readiness.Ready()
	s.serveControl(g.Context(), ln)
	s.readiness.Stopping()
	g.Stop()
	err = g.Wait()
	s.base.Shutdown()
	return err
}

// chores are the server's part of the housekeeping: expired tokens are
// pruned every minute, and deny entries that guard nothing any more every
// five seconds.
func (s *Server) chores(tick int) {
	if tick%60 == 0 {
		s.pruneTokens()
	}
	if tick%5 == 0 {
		s.mu.Lock()
		s.pruneDenyLocked()
		s.mu.Unlock()
	}
}

// tokenPruneGrace is how long a running server keeps an expired token, so
// that its use is reported as expired rather than unknown. A restart
// drops every expired token.
const tokenPruneGrace = time.Hour

// pruneTokens drops enrollment tokens, used or not, that expired more than
// tokenPruneGrace ago.
func (s *Server) pruneTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.reg.tokens.Prune(s.cfg.Now().Add(-tokenPruneGrace)) == 0 {
		return
	}
	if err := s.persistLocked(); err != nil {
		// Kept on disk; they are pruned again at the next load or tick.
		s.log.WithError(err).Warn("persist pruned tokens")
	}
}

// persistLocked writes the registry; the caller holds s.mu and must undo its
// in-memory change if this fails.
func (s *Server) persistLocked() error {
	return s.states.save(s.reg)
}

// persistNodesLocked is persistLocked for a change confined to node n and
// the given tokens: it costs O(1) instead of O(nodes). The caller holds
// s.mu and undoes its change if this fails.
func (s *Server) persistNodesLocked(n *node, tokens ...[16]byte) error {
	return s.states.saveNodes(s.reg, []nodeRecord{n.record()}, tokens)
}

// persistRemovedLocked is persistLocked for node n removed from the
// registry with the given tokens: O(1) instead of O(nodes). The caller
// holds s.mu and undoes its change if this fails.
func (s *Server) persistRemovedLocked(n *node, tokens []keys.TokenRecord) error {
	ids := make([][16]byte, len(tokens))
	for i, t := range tokens {
		ids[i] = t.ID
	}
	return s.states.saveChanged(s.reg, nil, []string{n.record().ID}, ids)
}

// Package server is the momgate server daemon: node registry, enrollment,
// cluster key authority, PING responder for MOM control connections, admin
// socket and audit log. It is a thin I/O shell over proto, keys and ping.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/metrics"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
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
	// PBSSocket is the OpenPBS plugin's socket (pbsauth.go); "" disables.
	// PBSHostName names this host to PBS ("" means the hostname).
	PBSSocket, PBSHostName string
}

// Server is a running momgate server.
type Server struct {
	cfg   Config
	log   logrus.FieldLogger
	audit *audit.Log
	ident *keys.Identity
	ring  *keys.Holder

	marks    *store.MarkLog
	states   *stateStore
	sealer   *ping.Sealer
	verifier *ping.Verifier
	deny     *ping.DenyList
	denyKeys map[proto.NodeAddr][]keys.KeyID // keys held when each deny entry was made (deny.go); guarded by mu
	rot      *rotor

	mu    sync.Mutex // guards reg and conns
	reg   *registry
	conns map[proto.NodeID]*momConn
	lg    legacyServer // legacy protocol and migration (legacy.go)

	listener net.Listener
	ready    chan struct{}

	hooks       metricHooks  // metric sources of later subsystems (metrics.go)
	gauge       connGauge    // open connections
	metricsAddr atomic.Value // net.Addr of the metrics listener
	limiter     *connlimit.Limiter
}

// Init creates a new server state directory: identity, first cluster key,
// server id and default attributes. It refuses an initialized directory.
// It returns the server's public key fingerprint.
func Init(dir string, rnd io.Reader, now time.Time) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create state dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("chmod state dir %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, stateFile)); err == nil {
		return "", fmt.Errorf("%s: %w", dir, ErrInitialized)
	}
	id, err := keys.GenerateIdentity(rnd)
	if err != nil {
		return "", err
	}
	k, err := keys.NewKey(rnd, now, func(keys.KeyID) bool { return false })
	if err != nil {
		return "", err
	}
	k.State = keys.StateActive
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		return "", err
	}
	sid, err := uuid.NewRandomFromReader(rnd)
	if err != nil {
		return "", fmt.Errorf("server id: %w", err)
	}
	if err := keys.SaveIdentity(filepath.Join(dir, identityFile), id); err != nil {
		return "", err
	}
	if err := keys.SaveKeyring(filepath.Join(dir, keyringFile), ring); err != nil {
		return "", err
	}
	// state.json last: its presence marks the directory initialized.
	p := persisted{Format: 1, ID: sid.String(), Attrs: DefaultAttrs(), Nodes: []nodeRecord{}, Tokens: []keys.TokenRecord{}}
	if err := saveState(dir, p); err != nil {
		return "", err
	}
	return keys.ShortFingerprint(id.Public), nil
}

// New loads the state directory. It does not listen yet.
func New(cfg Config) (*Server, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Audit == nil {
		cfg.Audit = audit.New(audit.Config{Out: io.Discard})
	}
	if cfg.MetricsListen != "" {
		if err := metrics.CheckListen(cfg.MetricsListen, cfg.MetricsAllowRemote); err != nil {
			return nil, err
		}
	}
	dir := cfg.StateDir
	p, states, err := openStateStore(dir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			states.close()
		}
	}()
	reg, err := newRegistry(p)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", filepath.Join(dir, stateFile), err)
	}
	ident, err := keys.LoadIdentity(filepath.Join(dir, identityFile))
	if err != nil {
		return nil, err
	}
	ring, err := keys.LoadKeyring(filepath.Join(dir, keyringFile))
	if err != nil {
		return nil, err
	}
	if ring.Active() == nil {
		return nil, fmt.Errorf("keyring %s: %w", filepath.Join(dir, keyringFile), keys.ErrNoActive)
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
	s := &Server{
		cfg: cfg, log: cfg.Log, audit: cfg.Audit, ident: ident, ring: keys.NewHolder(ring),
		marks: marks, states: states, deny: &ping.DenyList{}, denyKeys: map[proto.NodeAddr][]keys.KeyID{}, reg: reg, conns: map[proto.NodeID]*momConn{},
		ready: make(chan struct{}), limiter: connlimit.New(cfg.SourceLimits),
	}
	s.sealer = &ping.Sealer{Keys: s.ring, Stamper: stamper, Rand: cfg.Rand, Node: reg.id}
	s.verifier = &ping.Verifier{
		Keys:    s.ring,
		Guard:   ping.NewGuard(ping.GuardConfig{Freshness: time.Duration(reg.attrs.Freshness), Store: marks}, initial),
		Revoker: s.deny,
		Now:     cfg.Now,
	}
	if reg.tokens.Prune(cfg.Now()) > 0 {
		// Dropped from disk now rather than at the next change, so the
		// store forgets them too (memory per node in steady state).
		if err := states.save(reg); err != nil {
			cfg.Log.WithError(err).Warn("drop expired enrollment tokens from the state journal")
		}
	}
	s.legacyMetricHooks()
	if err := s.loadDenyList(); err != nil {
		marks.Close()
		return nil, err
	}
	if s.rot, err = newRotor(s); err != nil {
		marks.Close()
		return nil, err
	}
	s.hooks.rotationPhase, s.hooks.rotationPhases = s.rot.phase, rotationPhases
	ok = true
	return s, nil
}

// Fingerprint is the short fingerprint of the server's identity key.
func (s *Server) Fingerprint() string { return keys.ShortFingerprint(s.ident.Public) }

// Addr returns the control listener's address once Run is listening.
func (s *Server) Addr() net.Addr {
	<-s.ready
	return s.listener.Addr()
}

// Run listens and serves until ctx is cancelled, then closes every
// connection and returns.
func (s *Server) Run(ctx context.Context) error {
	defer s.marks.Close()
	defer s.states.close()
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Listen, err)
	}
	serveMetrics, err := s.bindMetrics()
	if err != nil {
		ln.Close()
		return err
	}
	s.listener = ln
	close(s.ready)
	s.log.WithFields(logrus.Fields{"listen": ln.Addr().String(), "fingerprint": s.Fingerprint()}).Info("server listening")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	if serveMetrics != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serveMetrics(ctx); err != nil && ctx.Err() == nil {
				errc <- err
				cancel()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		sock := filepath.Join(s.cfg.StateDir, adminSocket)
		if err := admin.Serve(ctx, sock, s.handleAdmin, s.log); err != nil && ctx.Err() == nil {
			errc <- fmt.Errorf("admin socket: %w", err)
			cancel()
		}
	}()
	if s.cfg.PBSSocket != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.servePBS(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("pbs socket: %w", err)
				cancel()
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.housekeeping(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.rot.run(ctx)
	}()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	var conns sync.WaitGroup
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.WithError(err).Warn("accept")
			continue
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			s.serveLimited(ctx, c)
		}()
	}
	s.closeAll()
	conns.Wait()
	wg.Wait()
	s.audit.Flush()
	if err := s.compactMarks(); err != nil {
		s.log.WithError(err).Warn("compact marks at shutdown")
	}
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// housekeeping flushes the audit aggregates, syncs and compacts the mark
// log, and prunes expired tokens, until ctx ends.
func (s *Server) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.marks.Sync(); err != nil {
			s.log.WithError(err).Warn("sync mark log")
		}
		if s.marks.LogSize() > 1<<20 {
			if err := s.compactMarks(); err != nil {
				s.log.WithError(err).Warn("compact mark log")
			}
		}
		if i%10 == 0 {
			s.audit.Flush()
		}
		if i%60 == 0 {
			s.pruneTokens()
		}
		if i%5 == 0 {
			s.mu.Lock()
			s.pruneDenyLocked()
			s.mu.Unlock()
		}
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

func (s *Server) compactMarks() error {
	return s.marks.Compact(s.verifier.Guard.Snapshot())
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

func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.conn.Close()
	}
}

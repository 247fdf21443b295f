package daemon

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/metrics"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/statecheck"
)

// CeilingFile is the timestamp ceiling of a daemon's stamper, in its
// state directory (docs/PROTOCOL.md 3.3).
const CeilingFile = "ceiling"

// BaseConfig is what Base needs of a daemon.
type BaseConfig struct {
	// State is the daemon's locked and judged state directory
	// (OpenState); the Base owns it from then on and releases its lock
	// at Close.
	State *State
	Log   logrus.FieldLogger
	Audit *audit.Log
	Now   func() time.Time
	// Freshness is the replay guard's first-contact window (0 disables).
	Freshness time.Duration
	// Keys and Revoker are the daemon's keyring and deny list, which the
	// verifier checks PINGs against.
	Keys    ping.KeySource
	Revoker ping.Revoker
	// SourceLimits bounds unauthenticated connections per source address.
	SourceLimits connlimit.Config
}

// Base is the part both daemons share: the state directory and its
// replay state (mark log, stamper, guard and verifier), the audit log,
// the per-source limits of the listener and the metrics endpoint.
type Base struct {
	Log      logrus.FieldLogger
	Audit    *audit.Log
	Now      func() time.Time
	State    *State
	Marks    *store.MarkLog
	Stamper  *ping.Stamper
	Verifier *ping.Verifier
	Limiter  *connlimit.Limiter

	metricsAddr atomic.Value // net.Addr of the metrics listener
	closeOnce   sync.Once
}

// OpenBase opens the replay state of the state directory in the format
// of this version: the mark store as inspected (after a loss of marks,
// with the recovery floor: the wall clock now, or 0 with freshness 0), and
// the stamper's ceiling (after its loss, the wall clock plus the reserve).
// It says at start how far the timestamps run ahead of the wall clock.
// Close closes it and releases the directory's lock; so does a failure.
func OpenBase(cfg BaseConfig) (b *Base, err error) {
	st := cfg.State
	defer func() {
		if err != nil {
			st.Close()
		}
	}()
	var loss *store.MarkLoss
	if st.Has(statecheck.StepMarksFloor) {
		loss = &store.MarkLoss{}
		if cfg.Freshness > 0 {
			loss.Floor = unixNano(cfg.Now())
		}
	}
	marks, err := st.In.Marks.Open(st.Dir, st.Boot, loss)
	if err != nil {
		return nil, err
	}
	stamper, err := openStamper(st, cfg.Now)
	if err != nil {
		marks.Close()
		return nil, err
	}
	if ahead := stamper.Ahead(); ahead > time.Second {
		cfg.Log.WithField("ahead", ahead.Round(time.Millisecond).String()).Warn("timestamps run ahead of the wall clock " +
			"(the clock was set back, or the daemon restarted in quick succession): they advance 1 ns per PING until the clock " +
			"catches up; known peers admit this node by their marks, new ones by the server's attested floor (docs/PROTOCOL.md 3.3)")
	}
	return &Base{
		Log: cfg.Log, Audit: cfg.Audit, Now: cfg.Now, State: st, Marks: marks, Stamper: stamper,
		Verifier: &ping.Verifier{
			Keys:    cfg.Keys,
			Guard:   ping.NewGuard(ping.GuardConfig{Freshness: cfg.Freshness, Store: marks, Recovery: st.In.Marks.Recovery()}, st.In.Marks.Marks),
			Revoker: cfg.Revoker,
			Now:     cfg.Now,
		},
		Limiter: connlimit.New(cfg.SourceLimits),
	}, nil
}

// openStamper loads the ceiling. A lost ceiling is replaced by the wall
// clock plus the reserve: the highest the previous life can have issued
// if its clock was not ahead. A missing one of a first start is written
// as 0, so that the manifest can list it.
func openStamper(st *State, now func() time.Time) (*ping.Stamper, error) {
	ceiling := store.NewCeilingFile(filepath.Join(st.Dir, CeilingFile))
	switch {
	case st.Has(statecheck.StepCeilingFromClock):
		if err := ceiling.StoreCeiling(unixNano(now()) + uint64(ping.DefaultReserve)); err != nil {
			return nil, err
		}
	default:
		if err := st.CreateDefault(CeilingFile, func() error { return ceiling.StoreCeiling(0) }); err != nil {
			return nil, err
		}
	}
	return ping.NewStamper(now, ceiling, 0)
}

func unixNano(t time.Time) uint64 {
	if n := t.UnixNano(); n > 0 {
		return uint64(n)
	}
	return 0
}

// Close closes the mark log (its header then says closed), stores the last issued timestamp as the ceiling, so that a
// clean restart resumes at the wall clock, and releases the state
// directory's lock. Call it once, after the daemon stopped writing state
// (Shutdown first); later calls do nothing.
func (b *Base) Close() {
	b.closeOnce.Do(func() {
		if err := b.Marks.Close(); err != nil {
			b.Log.WithError(err).Warn("close mark log")
		}
		if err := b.Stamper.Close(); err != nil {
			b.Log.WithError(err).Warn("store the timestamp ceiling at stop")
		}
		if err := b.State.Close(); err != nil {
			b.Log.WithError(err).Warn("release the state directory lock")
		}
	})
}

// Record writes an audit entry stamped with the daemon's clock.
func (b *Base) Record(e audit.Entry) {
	e.Time = b.Now()
	b.Audit.Record(e)
}

// CompactMarks folds the mark log into a snapshot of the guard.
func (b *Base) CompactMarks() error {
	return b.Marks.Compact(b.Verifier.Guard.Snapshot())
}

// markLogCompactAt is the mark log size past which housekeeping compacts
// it, or twice the size of one record per mark held if that is larger: a
// compaction writes every mark, so compacting every fixed number of
// records cost O(marks) per that many PINGs, O(N) per heartbeat at N
// nodes; proportional, it is O(1) per PING admitted.
const markLogCompactAt = 1 << 20

// compactMarksAt is the log size past which the marks are compacted.
func (b *Base) compactMarksAt() int64 {
	return max(markLogCompactAt, 2*store.MarkRecordSize*int64(b.Verifier.Guard.Len()))
}

// Housekeeping runs once a second until ctx ends: it syncs the mark log,
// compacts it when it has grown, and flushes the audit aggregates every
// ten seconds; then it calls every(tick), tick counting from 0, for the
// daemon's own chores.
func (b *Base) Housekeeping(ctx context.Context, every func(tick int)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := b.Marks.Sync(); err != nil {
			b.Log.WithError(err).Warn("sync mark log")
		}
		if b.Marks.LogSize() > b.compactMarksAt() {
			if err := b.CompactMarks(); err != nil {
				b.Log.WithError(err).Warn("compact mark log")
			}
		}
		if i%10 == 0 {
			b.Audit.Flush()
		}
		if every != nil {
			every(i)
		}
	}
}

// Shutdown flushes the audit aggregates and compacts the mark log, once the
// daemon has stopped serving.
func (b *Base) Shutdown() {
	b.Audit.Flush()
	if err := b.CompactMarks(); err != nil {
		b.Log.WithError(err).Warn("compact marks at shutdown")
	}
}

// Collectors are the metric collectors both daemons export: the audit
// counters, the keyring's keys by state and the state recoveries.
func (b *Base) Collectors(ring func() *keys.Keyring) []prometheus.Collector {
	cs := []prometheus.Collector{metrics.AuditCollector{Snapshot: b.Audit.Counters},
		metrics.NewCounterFunc("state_recoveries_total", "Fail-closed recoveries from a loss of state found at start, by step (docs/SECURITY.md section 7).",
			"step", b.State.Recoveries)}
	return append(cs, metrics.KeyringCollectors(ring)...)
}

// BindMetrics binds the metrics address listen, if one is configured, and
// returns the function that serves collectors there, with /healthz and
// /readyz (ready says whether the daemon is ready), until its context
// ends; nil when metrics are off.
func (b *Base) BindMetrics(listen string, allowRemote bool, ready func() error, collectors ...prometheus.Collector) (func(context.Context) error, error) {
	if listen == "" {
		return nil, nil
	}
	addr, serve, err := metrics.Bind(listen, allowRemote, b.Log, ready, collectors...)
	if err != nil {
		return nil, err
	}
	b.metricsAddr.Store(addr)
	return serve, nil
}

// MetricsAddr is the metrics listener's address once bound, or nil.
func (b *Base) MetricsAddr() net.Addr {
	a, _ := b.metricsAddr.Load().(net.Addr)
	return a
}

// CheckMetricsListen refuses a metrics address that is malformed, or not
// loopback without allowRemote; "" (metrics off) passes.
func CheckMetricsListen(listen string, allowRemote bool) error {
	if listen == "" {
		return nil
	}
	return metrics.CheckListen(listen, allowRemote)
}

// Settings are the settings both daemons take alike.
type Settings struct {
	Log              logrus.FieldLogger
	Audit            *audit.Log
	Now              func() time.Time
	Rand             io.Reader
	HandshakeTimeout time.Duration
}

// DefaultHandshakeTimeout bounds a connection's time to authenticate when
// no timeout is set.
const DefaultHandshakeTimeout = 10 * time.Second

// WithDefaults returns s with each unset setting defaulted: the standard
// logger, an audit log that discards, the wall clock, crypto/rand and
// DefaultHandshakeTimeout.
func (s Settings) WithDefaults() Settings {
	if s.Log == nil {
		s.Log = logrus.StandardLogger()
	}
	if s.Audit == nil {
		s.Audit = audit.New(audit.Config{Out: io.Discard})
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.Rand == nil {
		s.Rand = rand.Reader
	}
	if s.HandshakeTimeout <= 0 {
		s.HandshakeTimeout = DefaultHandshakeTimeout
	}
	return s
}

// Listen opens a daemon's listener on addr and binds its metrics endpoint
// (BindMetrics, with ready for /readyz); serveMetrics is nil when metrics
// are off. Accepted connections have no TCP keep-alive until admitted
// (EnableKeepAlive): Go's default sets four socket options on every
// connection, 4 of the 20 system calls of a PING swap, and a connection in
// the handshake is bounded by its deadline anyway.
func (b *Base) Listen(addr, metricsListen string, allowRemote bool, ready func() error, collectors ...prometheus.Collector) (ln net.Listener, serveMetrics func(context.Context) error, err error) {
	lc := net.ListenConfig{KeepAlive: -1}
	ln, err = lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", addr, err)
	}
	if serveMetrics, err = b.BindMetrics(metricsListen, allowRemote, ready, collectors...); err != nil {
		ln.Close()
		return nil, nil, err
	}
	return ln, serveMetrics, nil
}

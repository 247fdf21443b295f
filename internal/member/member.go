// Package member runs one member of a momgate HA group: hashicorp/raft
// over a raftnet transport, with its log and snapshots in the member's
// state directory, applying committed commands to a replica.StateMachine.
// It offers what the server needs (docs/HA.md): bootstrap a one-member
// group, propose a command and get its result once a quorum committed it,
// add a voter or a standby (non-voter), remove a member, leadership
// notifications, and each member's role, state and lag.
package member

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/sirupsen/logrus"
	"go.etcd.io/bbolt"

	"github.com/momgate/momgate/internal/raftnet"
	"github.com/momgate/momgate/replica"
)

// Files and directories under Config.Dir.
const (
	logFile     = "raft.db"   // log and stable store (bbolt)
	snapshotDir = "snapshots" // raft's file snapshot store
)

// Errors of a member.
var (
	// ErrHasState means Bootstrap found an existing group state.
	ErrHasState = errors.New("member already holds a group state")
	// ErrClosed means the member was closed.
	ErrClosed = errors.New("member closed")
)

// Timing are raft's timers. A failover takes about one HeartbeatTimeout
// to notice and one ElectionTimeout to elect.
type Timing struct {
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
}

// DefaultTiming suits a cluster network (raft's own defaults).
var DefaultTiming = Timing{HeartbeatTimeout: time.Second, ElectionTimeout: time.Second,
	LeaderLeaseTimeout: 500 * time.Millisecond, CommitTimeout: 50 * time.Millisecond}

// Config configures Open.
type Config struct {
	// Name is the member's name: its raft server id and the name its
	// certificate carries.
	Name string
	// Dir holds the raft log and snapshots; it is made owner-only, since
	// both carry cluster key secrets.
	Dir string
	// Transport carries replication (raftnet over the group's TLS).
	Transport *raftnet.Transport
	// State is the replicated state machine.
	State replica.StateMachine
	// Now stamps proposed commands and judges last contact.
	Now func() time.Time
	// Log receives the member's and raft's messages.
	Log logrus.FieldLogger
	// Timing, zero fields from DefaultTiming.
	Timing Timing
	// SnapshotThreshold is how many entries since the last snapshot make
	// raft take one; TrailingLogs how many entries it keeps after it (so
	// a member briefly behind catches up from the log, not a snapshot).
	SnapshotThreshold, TrailingLogs uint64
	// SnapshotInterval is how often raft checks SnapshotThreshold.
	SnapshotInterval time.Duration
	// DownAfter is how long without contact marks a member down
	// (default 2 x HeartbeatTimeout).
	DownAfter time.Duration
	// OnLeadership, if set, is called from one goroutine, in order, when
	// this member gains (true) or loses (false) leadership.
	OnLeadership func(leading bool)
}

// Member is a running member of the group.
type Member struct {
	cfg   Config
	raft  *raft.Raft
	fsm   *fsm
	store *raftboltdb.BoltStore
	trans *raftnet.Transport

	notify   chan bool
	observed chan raft.Observation
	observer *raft.Observer
	wg       sync.WaitGroup
	stop     chan struct{}

	leaderChanges atomic.Uint64
	campaigns     atomic.Uint64
	leaderMu      sync.Mutex
	lastLeader    raft.ServerID

	closeOnce sync.Once
	closeErr  error
}

func (c *Config) defaults() error {
	if c.Name == "" || c.Dir == "" || c.Transport == nil || c.State == nil {
		return errors.New("member: Name, Dir, Transport and State are required")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Log == nil {
		l := logrus.New()
		l.Out = nopWriter{}
		c.Log = l
	}
	t := &c.Timing
	if t.HeartbeatTimeout <= 0 {
		t.HeartbeatTimeout = DefaultTiming.HeartbeatTimeout
	}
	if t.ElectionTimeout <= 0 {
		t.ElectionTimeout = DefaultTiming.ElectionTimeout
	}
	if t.LeaderLeaseTimeout <= 0 {
		t.LeaderLeaseTimeout = DefaultTiming.LeaderLeaseTimeout
	}
	if t.CommitTimeout <= 0 {
		t.CommitTimeout = DefaultTiming.CommitTimeout
	}
	if c.DownAfter <= 0 {
		c.DownAfter = 2 * t.HeartbeatTimeout
	}
	return nil
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

func (c *Config) raftConfig(logger hclog.Logger, notify chan bool) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(c.Name)
	rc.HeartbeatTimeout = c.Timing.HeartbeatTimeout
	rc.ElectionTimeout = c.Timing.ElectionTimeout
	rc.LeaderLeaseTimeout = c.Timing.LeaderLeaseTimeout
	rc.CommitTimeout = c.Timing.CommitTimeout
	if c.SnapshotThreshold > 0 {
		rc.SnapshotThreshold = c.SnapshotThreshold
	}
	if c.TrailingLogs > 0 {
		rc.TrailingLogs = c.TrailingLogs
	}
	if c.SnapshotInterval > 0 {
		rc.SnapshotInterval = c.SnapshotInterval
	}
	rc.Logger = logger
	rc.NotifyCh = notify
	return rc
}

// Open opens (creating) the member's log and snapshots in cfg.Dir and
// starts raft. A member with no group state waits: Bootstrap makes it a
// one-member group, or a leader adds it.
func Open(cfg Config) (*Member, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("member dir %s: %w", cfg.Dir, err)
	}
	if err := os.Chmod(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("member dir %s: %w", cfg.Dir, err)
	}
	logger := raftLogger(cfg.Log, hclog.Info)
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(cfg.Dir, logFile),
		BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", filepath.Join(cfg.Dir, logFile), err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(cfg.Dir, snapshotDir), 2, logger)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("open snapshots in %s: %w", cfg.Dir, err)
	}
	cache, err := raft.NewLogCache(512, store)
	if err != nil {
		store.Close()
		return nil, err
	}
	m := &Member{cfg: cfg, fsm: &fsm{sm: cfg.State, log: cfg.Log}, store: store, trans: cfg.Transport,
		notify: make(chan bool, 16), observed: make(chan raft.Observation, 256), stop: make(chan struct{})}
	rc := cfg.raftConfig(logger, m.notify)
	if err := raft.ValidateConfig(rc); err != nil {
		store.Close()
		return nil, fmt.Errorf("member timing: %w", err)
	}
	r, err := raft.NewRaft(rc, m.fsm, cache, store, snaps, cfg.Transport)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("start raft: %w", err)
	}
	m.raft = r
	m.observer = raft.NewObserver(m.observed, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.LeaderObservation, raft.RaftState:
			return true
		}
		return false
	})
	r.RegisterObserver(m.observer)
	m.wg.Add(1)
	go m.watch()
	return m, nil
}

// watch delivers leadership notifications and counts leader changes
// until Close.
func (m *Member) watch() {
	defer m.wg.Done()
	for {
		select {
		case <-m.stop:
			return
		case leading := <-m.notify:
			if leading {
				m.cfg.Log.WithField("member", m.cfg.Name).Info("this member leads the group")
			} else {
				m.cfg.Log.WithField("member", m.cfg.Name).Info("this member no longer leads the group")
			}
			if m.cfg.OnLeadership != nil {
				m.cfg.OnLeadership(leading)
			}
		case o := <-m.observed:
			switch d := o.Data.(type) {
			case raft.RaftState:
				if d == raft.Candidate {
					m.campaigns.Add(1)
				}
			case raft.LeaderObservation:
				m.leaderMu.Lock()
				if d.LeaderID != "" && d.LeaderID != m.lastLeader {
					m.leaderChanges.Add(1)
					m.lastLeader = d.LeaderID
				}
				m.leaderMu.Unlock()
			}
		}
	}
}

// Bootstrap makes this member a group of one voter at addr (its
// replication address as other members will dial it). It refuses a member
// that already holds a group state (ErrHasState).
func (m *Member) Bootstrap(addr string) error {
	cfg := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(m.cfg.Name), Address: raft.ServerAddress(addr)}}}
	err := m.raft.BootstrapCluster(cfg).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap %s: %w", m.cfg.Name, ErrHasState)
	}
	if err != nil {
		return fmt.Errorf("bootstrap %s: %w", m.cfg.Name, err)
	}
	return nil
}

// Barrier returns once every entry committed before it has been applied
// here; a new leader calls it before serving, so that it acts on the whole
// committed state (a token redeemed under the old leader is used here too).
func (m *Member) Barrier(ctx context.Context) error {
	return m.wait(ctx, m.raft.Barrier(timeoutOf(ctx)))
}

// Snapshot takes a snapshot now and compacts the log behind it.
func (m *Member) Snapshot() error {
	if err := m.raft.Snapshot().Error(); err != nil {
		return fmt.Errorf("snapshot: %w", err)
	}
	return nil
}

// Halted returns the reason the member stopped applying, or nil.
func (m *Member) Halted() error { return m.fsm.haltErr() }

// Close stops raft, the transport and the log store: the member's
// connections close as if its process died, and what it had committed is
// on disk.
func (m *Member) Close() error {
	m.closeOnce.Do(func() {
		err := m.raft.Shutdown().Error()
		m.raft.DeregisterObserver(m.observer)
		close(m.stop)
		m.wg.Wait()
		if terr := m.trans.Close(); err == nil {
			err = terr
		}
		if serr := m.store.Close(); err == nil {
			err = serr
		}
		m.closeErr = err
	})
	return m.closeErr
}

// timeoutOf is how long raft may wait to enqueue a request: the context's
// remaining time, or a default.
func timeoutOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		if left := time.Until(d); left > 0 {
			return left
		}
		return time.Millisecond
	}
	return 10 * time.Second
}

package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/member"
	"github.com/momgate/momgate/internal/metrics"
	"github.com/momgate/momgate/internal/raftnet"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/replica"
)

// Files of a group member in its state directory (docs/HA.md 12.2).
const (
	groupCAFile = "group-ca.json" // the group's CA, private key included, owner-only
	raftDirName = "raft"          // the raft log and snapshots
)

// Errors of a group member.
var (
	// ErrNotLeader: this member does not lead the group; the error names
	// the leader when one is known.
	ErrNotLeader = errors.New("not_leader")
	// ErrWritesFenced: an earlier write's outcome is unknown (no quorum
	// answered in time); writes are refused until the server restarts on
	// the committed state, which it does at once. Try again.
	ErrWritesFenced = errors.New("an earlier write's outcome is unknown: writes wait for the restart on the committed state")
)

// GroupConfig configures RunGroup: a server run as a member of a
// replicated group.
type GroupConfig struct {
	// Server is the server's configuration; its Listen is this member's
	// control address for MOMs.
	Server Config
	// Member is this member's name (default "s1").
	Member string
	// ReplicationListen is the replication address IP:PORT, dialled by
	// the other members; a fixed port (it is in the group's configuration).
	ReplicationListen string
	// Timing are raft's timers; zero fields take member.DefaultTiming.
	Timing member.Timing
	// CommitTimeout bounds one write's commit (default 10 s).
	CommitTimeout time.Duration
	// afterOpen, set by Join, runs once the member is open: the joiner
	// asks the leader to add it.
	afterOpen func() error
}

// RunGroup runs the server as a member of a group until ctx ends. A state
// directory of a single server (no raft/ in it) is first upgraded in place
// into a group of one voter, this member, whose state is the server's:
// same identity, same server id, same nodes and keys, so no MOM enrolls
// again (docs/HA.md 12.3). The leader serves MOMs and the admin socket;
// a follower answers MOMs with NotLeader and admin writes with the name of
// the leader.
func RunGroup(ctx context.Context, gc GroupConfig) error {
	if gc.Member == "" {
		gc.Member = "s1"
	}
	if err := group.CheckMemberName(gc.Member); err != nil {
		return err
	}
	if gc.CommitTimeout <= 0 {
		gc.CommitTimeout = 10 * time.Second
	}
	if _, err := netip.ParseAddrPort(gc.ReplicationListen); err != nil {
		return fmt.Errorf("--replication-listen %q: want IP:PORT: %w", gc.ReplicationListen, err)
	}
	if gc.Server.Log == nil {
		gc.Server.Log = logrus.New()
	}
	if gc.Server.Now == nil {
		gc.Server.Now = time.Now
	}
	dir := gc.Server.StateDir
	log := gc.Server.Log.WithField("member", gc.Member)
	raftDir := filepath.Join(dir, raftDirName)
	if _, err := os.Stat(raftDir); errors.Is(err, fs.ErrNotExist) {
		if err := UpgradeInPlace(gc); err != nil {
			return err
		}
	}
	ca, err := loadGroupCA(dir)
	if err != nil {
		return err
	}
	g := &groupRunner{gc: gc, log: log, state: newGroupState(), lead: make(chan bool, 64), resync: make(chan struct{}, 1), backups: backupStash{now: gc.Server.Now}}
	creds, err := group.NewCredentials(group.CredentialsConfig{CA: ca, Member: gc.Member, Now: time.Now, Rand: rand.Reader,
		Allow: g.allowPeer})
	if err != nil {
		return err
	}
	layer, err := raftnet.Listen(raftnet.Config{Listen: gc.ReplicationListen, Credentials: creds, Log: log, OnJoin: g.serveJoin})
	if err != nil {
		return err
	}
	m, err := member.Open(member.Config{Name: gc.Member, Dir: raftDir,
		Transport: raftnet.NewTransport(layer, raftnet.TransportConfig{}), State: g.state, Log: log,
		Timing: gc.Timing, OnLeadership: func(leading bool) { g.lead <- leading }})
	if err != nil {
		layer.Close()
		return err
	}
	g.m = m
	g.open.Store(m)
	defer m.Close()
	if gc.afterOpen != nil {
		if err := gc.afterOpen(); err != nil {
			return err
		}
	}
	adminLn, err := admin.Listen(admin.SocketPath(dir))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := admin.ServeListener(ctx, adminLn, g.handleAdmin, log); err != nil {
			log.WithError(err).Error("admin socket")
		}
	}()
	defer wg.Wait()
	defer g.backups.close()
	return g.loop(ctx)
}

// groupRunner is one member's supervisor: it runs the server while the
// member leads, the redirect while it follows.
type groupRunner struct {
	backups backupStash // the chunked online backup started here (backupstash.go)
	gc      GroupConfig
	log     logrus.FieldLogger
	state   *groupState
	m       *member.Member
	lead    chan bool
	// resync restarts the running server from the replica: a write whose
	// outcome is unknown may commit after the server undid it.
	resync chan struct{}
	// fenced is set by a write whose outcome is unknown and cleared once
	// the server restarts on the committed state: until then no write is
	// proposed, since the server's memory may disagree with what the group
	// will commit (an enrollment undone here while its entry commits would
	// let a second redemption of the same token be proposed).
	fenced atomic.Bool
	// apply proposes one command (m.Apply; a test replaces it).
	apply func(context.Context, replica.Command) (replica.Result, error)

	srv atomic.Pointer[Server] // the running server, while leading
	// open is m once it is open: the replication port's allowPeer asks it
	// from the layer's handshake goroutines.
	open atomic.Pointer[member.Member]
	// joinMu serializes create server, delete server and join
	// redemptions: each decides on the committed member list.
	joinMu sync.Mutex
}

// ErrNotAMember: a peer shows a valid member certificate of the group for
// a member that delete server removed.
var ErrNotAMember = errors.New("removed from the group")

// allowPeer is the replication port's check once a peer's certificate
// chain verifies (group.CredentialsConfig.Allow): a certificate in the
// name of a member that delete server removed is refused, unless the
// member is back in this member's raft configuration. Names are checked
// against removals rather than against the current list because a member
// that lags (a joiner holding only the first snapshot, a member that was
// down while others joined) does not know the newer members yet and must
// still take the leader's messages.
func (g *groupRunner) allowPeer(name string) error {
	if !g.state.removedMember(name) {
		return nil
	}
	if m := g.open.Load(); m != nil {
		if m.InConfiguration(name) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s was removed with delete server (create server %s makes a new member of that name)", ErrNotAMember, name, name)
}

// loop follows leadership until ctx ends.
func (g *groupRunner) loop(ctx context.Context) error {
	var (
		stopSrv    context.CancelFunc
		srvDone    chan error
		stopFollow context.CancelFunc
		followDone chan struct{}
		leading    bool
	)
	startFollow := func() {
		fctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		stopFollow, followDone = cancel, done
		go func() {
			defer close(done)
			g.redirect(fctx)
		}()
	}
	endFollow := func() {
		if stopFollow != nil {
			stopFollow()
			<-followDone
			stopFollow = nil
		}
	}
	endServer := func() {
		if stopSrv != nil {
			g.srv.Store(nil)
			stopSrv()
			if err := <-srvDone; err != nil {
				g.log.WithError(err).Warn("server stopped")
			}
			stopSrv = nil
		}
	}
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	startFollow()
	for {
		var done chan error
		if stopSrv != nil {
			done = srvDone
		}
		select {
		case <-ctx.Done():
			endServer()
			endFollow()
			return nil
		case l := <-g.lead:
			leading = l
			if !l {
				endServer()
				if stopFollow == nil {
					startFollow()
				}
				continue
			}
			retry.Reset(0)
		case <-retry.C:
			if !leading || stopSrv != nil {
				continue
			}
			endFollow()
			s, err := g.becomeLeader(ctx)
			if err != nil {
				g.log.WithError(err).Error("leading the group: the server could not start; retrying")
				startFollow()
				retry.Reset(time.Second)
				continue
			}
			sctx, cancel := context.WithCancel(ctx)
			stopSrv, srvDone = cancel, make(chan error, 1)
			ch := srvDone
			go func() { ch <- s.Run(sctx) }()
			g.srv.Store(s)
		case <-g.resync:
			if stopSrv == nil {
				continue
			}
			g.log.Warn("a write's outcome is unknown: restarting the server from the committed state")
			endServer()
			retry.Reset(0)
		case err := <-done:
			g.srv.Store(nil)
			stopSrv()
			stopSrv = nil
			g.log.WithError(err).Error("server stopped while leading; restarting it")
			startFollow()
			retry.Reset(time.Second)
		}
	}
}

// becomeLeader waits until every committed entry is applied here, records
// this member's addresses, writes the replica out as the state files and
// opens the server on them.
func (g *groupRunner) becomeLeader(ctx context.Context) (*Server, error) {
	bctx, cancel := context.WithTimeout(ctx, g.gc.CommitTimeout)
	defer cancel()
	if err := g.m.Barrier(bctx); err != nil {
		return nil, fmt.Errorf("barrier: %w", err)
	}
	// Every entry proposed before, the one of unknown outcome included,
	// is now applied or gone: the state below is what the group holds.
	g.fenced.Store(false)
	self := g.selfRecord()
	if cur, ok := g.state.member(g.gc.Member); !ok || !cur.same(self) {
		raw, _ := json.Marshal(self)
		if err := g.commit("member "+self.Name, []replica.StateRecord{{Kind: replica.RecordMember, Key: self.Name, Value: raw}}); err != nil {
			return nil, err
		}
	}
	if err := g.state.materialize(g.gc.Server.StateDir, g.log); err != nil {
		return nil, err
	}
	cfg := g.gc.Server
	cfg.Replicate = g.commit
	cfg.NoAdminSocket = true
	cfg.Collectors = append(cfg.Collectors, g.collectors()...)
	s, err := New(cfg)
	if err != nil {
		return nil, err
	}
	g.log.WithField("nodes", g.state.Nodes()).Info("leading the group: serving MOMs and the admin socket")
	return s, nil
}

// selfRecord is this member's record as it runs now.
func (g *groupRunner) selfRecord() memberRecord {
	rec := memberRecord{Name: g.gc.Member, Raft: g.gc.ReplicationListen, Control: g.gc.Server.Listen}
	if cur, ok := g.state.member(g.gc.Member); ok {
		rec.Standby, rec.Join = cur.Standby, cur.Join
	}
	return rec
}

// commit is Config.Replicate: one write through the group.
func (g *groupRunner) commit(why string, recs []replica.StateRecord) error {
	ctx, cancel := context.WithTimeout(context.Background(), g.gc.CommitTimeout)
	defer cancel()
	if g.fenced.Load() {
		return fmt.Errorf("commit %s through the group: %w", why, ErrWritesFenced)
	}
	apply := g.apply
	if apply == nil {
		apply = g.m.Apply
	}
	res, err := apply(ctx, &replica.StateRecords{Why: why, Records: recs})
	if errors.Is(err, member.ErrOutcomeUnknown) {
		g.fenced.Store(true)
		select {
		case g.resync <- struct{}{}:
		default:
		}
	}
	if err != nil {
		return fmt.Errorf("commit %s through the group: %w", why, err)
	}
	return res.Err
}

// leaderControl returns the leader's member name and control address, if
// a leader is known and it has recorded its address.
func (g *groupRunner) leaderControl() (string, netip.AddrPort, bool) {
	st, err := g.m.Status()
	if err != nil || st.Leader == "" {
		return "", netip.AddrPort{}, false
	}
	rec, ok := g.state.member(st.Leader)
	if !ok {
		return st.Leader, netip.AddrPort{}, false
	}
	ap, err := netip.ParseAddrPort(rec.Control)
	if err != nil || ap.Addr().IsUnspecified() {
		return st.Leader, netip.AddrPort{}, false
	}
	return st.Leader, ap, true
}

// notLeaderFrame is the NotLeader a follower answers MOMs with now.
func (g *groupRunner) notLeaderFrame() []byte {
	var m proto.NotLeader
	if name, ap, ok := g.leaderControl(); ok {
		m = proto.NotLeader{Addr: proto.AddrFrom(ap.Addr()), Port: ap.Port(), Leader: name}
	}
	return proto.Marshal(&m)
}

// redirect answers every control connection with NotLeader
// (docs/PROTOCOL.md 4.11) until ctx ends.
func (g *groupRunner) redirect(ctx context.Context) {
	var ln net.Listener
	var err error
	// The server that led here a moment ago may still be closing its port.
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", g.gc.Server.Listen); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err != nil {
		g.log.WithError(err).Error("follower: cannot listen for MOMs to redirect them")
		return
	}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write(g.notLeaderFrame())
		c.Close()
	}
}

// handleAdmin answers the admin socket: the group's own operations here,
// the others by the running server on the leader; a follower names the
// leader.
func (g *groupRunner) handleAdmin(ctx context.Context, op string, raw json.RawMessage) (any, error) {
	switch op {
	case admin.OpCreateServer:
		var a admin.CreateServerArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return g.createServer(a)
	case admin.OpDeleteServer:
		var a admin.ServerArgs
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return g.deleteServer(a)
	case admin.OpBackup:
		return g.backup(raw)
	case admin.OpBackupChunk:
		return g.backups.read(raw)
	case admin.OpSetMember:
		a, err := admin.DecodeSetMemberArgs(raw)
		if err != nil {
			return nil, admin.Errorf(admin.CodeBadRequest, "%v", err)
		}
		return g.setMember(a)
	}
	if s := g.srv.Load(); s != nil {
		out, err := s.handleAdmin(ctx, op, raw)
		if op == admin.OpPrintServer && err == nil {
			if rep, ok := out.(*admin.ServerReport); ok {
				rep.Server.Group = g.groupInfo()
			}
		}
		return out, err
	}
	if op == admin.OpPrintServer {
		return g.followerReport(), nil
	}
	return nil, g.notLeaderErr()
}

// groupInfo is the group as this member sees it: every member with its
// role, state and last contact (list server, print server).
func (g *groupRunner) groupInfo() *admin.GroupInfo {
	st, err := g.m.Status()
	if err != nil {
		return &admin.GroupInfo{Member: g.gc.Member}
	}
	out := []admin.MemberInfo{}
	for _, ms := range st.Members {
		mi := admin.MemberInfo{Name: ms.Name, Replication: ms.Addr, Role: string(ms.Role), State: ms.State(), Behind: ms.Behind}
		if rec, ok := g.state.member(ms.Name); ok {
			mi.Address = rec.Control
		}
		if !ms.LastContact.IsZero() {
			t := ms.LastContact
			mi.LastContact = &t
		}
		out = append(out, mi)
	}
	return &admin.GroupInfo{Member: st.Self, Leader: st.Leader, Term: st.Term, LastIndex: st.LastIndex,
		Applied: st.Applied, LeaderChanges: st.LeaderChanges, Members: out}
}

// followerReport is print server on a follower: the server's id and the
// group, from the replica (writes and node details are the leader's).
func (g *groupRunner) followerReport() *admin.ServerReport {
	rep := &admin.ServerReport{Nodes: []admin.NodeInfo{}}
	rep.Server.ID = g.state.serverID()
	rep.Server.Listen = g.gc.Server.Listen
	rep.Server.Nodes = g.state.Nodes()
	rep.Server.Group = g.groupInfo()
	return rep
}

// UpgradeInPlace makes the state directory of a single server the first
// member of a group: it reads and checks the state as a start does, makes
// the group's CA, and stores the state as the group's first snapshot
// (member.Adopt), whose configuration is this member alone. The server id,
// identity and keys are unchanged: MOMs reconnect as after any restart.
// The state files stay where they are (a rollback is: stop, remove raft/
// and group-ca.json).
func UpgradeInPlace(gc GroupConfig) error {
	dir := gc.Server.StateDir
	if gc.Member == "" {
		gc.Member = "s1"
	}
	self := memberRecord{Name: gc.Member, Raft: gc.ReplicationListen, Control: gc.Server.Listen}
	raw, err := json.Marshal(self)
	if err != nil {
		return err
	}
	snap, serverID, err := adoptSnapshot(gc.Server, replica.StateRecord{Kind: replica.RecordMember, Key: self.Name, Value: raw})
	if err != nil {
		return fmt.Errorf("upgrade %s in place: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, groupCAFile)); errors.Is(err, fs.ErrNotExist) {
		ca, err := group.NewCA(rand.Reader, time.Now(), serverID)
		if err != nil {
			return err
		}
		data, err := group.EncodeCA(ca)
		if err != nil {
			return err
		}
		if err := statefile.WriteAtomic(filepath.Join(dir, groupCAFile), data, 0o600); err != nil {
			return err
		}
	}
	// Adopt beside, then rename: raft/ exists only once it holds the
	// whole first snapshot, so an upgrade cut short is simply redone.
	tmp := filepath.Join(dir, raftDirName+".adopting")
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := member.Adopt(tmp, gc.Member, gc.ReplicationListen, bytes.NewReader(snap)); err != nil {
		return fmt.Errorf("upgrade %s in place: %w", dir, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, raftDirName)); err != nil {
		return fmt.Errorf("upgrade %s in place: %w", dir, err)
	}
	if err := statefile.SyncDir(dir); err != nil {
		return err
	}
	gc.Server.Log.WithFields(logrus.Fields{"state_dir": dir, "member": gc.Member, "replication": gc.ReplicationListen}).
		Info("state directory upgraded in place: a group of one member, this server; no MOM enrolls again")
	return nil
}

// ErrGroupMember: a single server was started on the directory of a group
// member, whose state files are only as of its last leadership.
var ErrGroupMember = errors.New("state directory belongs to a member of a server group")

// checkNotMember refuses to run a single server on a member's directory:
// its files lag the group's log, and a second key authority would fork
// the cluster.
func checkNotMember(cfg Config) error {
	if cfg.Replicate != nil {
		return nil
	}
	if _, err := os.Stat(filepath.Join(cfg.StateDir, raftDirName)); err == nil {
		return fmt.Errorf("%s: %w: run it with --replication-listen and its --member-name; to leave the group for good, "+
			"stop every member and remove raft/ and group-ca.json here (docs/DEPLOYMENT.md section 14.6)", cfg.StateDir, ErrGroupMember)
	}
	return nil
}

// loadGroupCA reads group-ca.json.
func loadGroupCA(dir string) (*group.CA, error) {
	data, err := os.ReadFile(filepath.Join(dir, groupCAFile))
	if err != nil {
		return nil, fmt.Errorf("group CA: %w", err)
	}
	return group.DecodeCA(data)
}

// collectors are the group's metrics, served by the leader's endpoint:
// leadership changes and elections this member saw, and each member's lag
// behind the leader.
func (g *groupRunner) collectors() []prometheus.Collector {
	status := func() member.Status {
		st, _ := g.m.Status()
		return st
	}
	return []prometheus.Collector{
		metrics.NewCounterFunc("group_leader_changes_total", "Leaders this member has seen take over the server group.", "",
			func() map[string]float64 { return map[string]float64{"": float64(status().LeaderChanges)} }),
		metrics.NewCounterFunc("group_elections_total", "Elections this member started.", "",
			func() map[string]float64 { return map[string]float64{"": float64(status().Campaigns)} }),
		metrics.NewGaugeFunc("group_member_behind", "Log entries each member is behind the leader (as the leader sees it).", "member",
			func() map[string]float64 {
				out := map[string]float64{}
				for _, ms := range status().Members {
					out[ms.Name] = float64(ms.Behind)
				}
				return out
			}),
		metrics.NewGaugeFunc("group_member_up", "1 for each member the leader heard from recently, 0 for those it did not.", "member",
			func() map[string]float64 {
				out := map[string]float64{}
				for _, ms := range status().Members {
					out[ms.Name] = 0
					if ms.Health == member.HealthAlive {
						out[ms.Name] = 1
					}
				}
				return out
			}),
	}
}

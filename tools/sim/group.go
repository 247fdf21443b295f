package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// A group run (issue 14, docs/HA.md): Members real momgate-server
// processes as one replicated group on loopback, with the daemon's
// default raft timing, and Nodes simulated MOMs that list every member's
// control address and follow NotLeader and lost sessions by the MOM's own
// rules (follow.go). The leader is killed with SIGKILL; the run measures
// the time to the first write a survivor accepts and the time until every
// simulated MOM has a session with the new leader.

// MinGroup and MaxGroup bound the members of a group run: killing the
// leader must leave a majority (3), and a group has at most 7 voters.
const (
	MinGroup = 3
	MaxGroup = 7
)

// GroupMemberAddr is the loopback address of member i (0-based) of a
// group run: 127.0.5.1 and up, clear of the simulated nodes (NodeAddr).
func GroupMemberAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 5, byte(i + 1)}) }

// probeAddr is the Mom= address of the node the write probe creates.
var probeAddr = netip.AddrFrom4([4]byte{127, 0, 6, 1})

// GroupReport is what a group run measured.
type GroupReport struct {
	Nodes   int
	Members int
	Create  Phase // create node through the leader's admin socket
	Enroll  Phase // enrollment + key unwrap + PING swap at the leader, Workers at a time
	// Killed and NewLeader are the member killed and the one the MOMs
	// reconnected to (it answered print server as the leader).
	Killed, NewLeader string
	// ToElected is from the SIGKILL to the first answer of a survivor
	// naming a survivor as the leader (the election); the new leader then
	// writes its state files and starts its server.
	ToElected time.Duration
	// ToWrite is from the SIGKILL to the first create node a survivor
	// committed and answered; WritePolls the create node requests sent
	// until then (WriteNotLeader of them refused as not_leader, the
	// expected refusal during the election), WriteErrors those that failed
	// otherwise.
	ToWrite                    time.Duration
	WriteLatency               time.Duration // of the create node that committed, from starting momgate-qmgr to its exit
	WritePolls, WriteNotLeader int
	WriteErrors                int
	WriteFirstError            string
	Reconnect                  Reconnection // from the SIGKILL, against the new leader
	Attempts                   Counts       // the nodes' control attempts from the SIGKILL until every node was back
	FirstFailures              []string     // the first few "other failures"
	LeaderRSS                  int64        // the new leader's RSS with every node connected
	LoadBefore, LoadAfter      string       // /proc/loadavg before the kill, after the reconnection
	// TermBefore is the raft term before the kill, TermAfter the new
	// leader's when every node was back, LeaderChanges the leaders it saw
	// take over meanwhile: more than one election means the leadership
	// moved again during the reconnection (a leader that loses it closes
	// every MOM session).
	TermBefore, TermAfter uint64
	LeaderChanges         uint64
	NotReconnectedWithin  time.Duration
	ReconnectErrors       int // nodes not back on the new leader within NotReconnectedWithin
	// CPU time (user + system) from the kill until every node was back:
	// of each survivor (by member name) and of this process (the
	// simulated MOMs); CPUWall is that span.
	CPU       map[string]time.Duration
	CPUSim    time.Duration
	CPUWall   time.Duration
	TCPListen ListenCounters // the machine's listen queue overflows and drops over that span (every process's)
}

// Errors is the count of everything that went wrong in the measured
// phase: writes that failed other than as not_leader, nodes that did not
// reconnect, and control attempts that failed other than by a refused
// connect or a NotLeader (0 expected).
func (r *GroupReport) Errors() int {
	return r.WriteErrors + r.ReconnectErrors + int(r.Attempts.Failed)
}

type groupMember struct {
	name          string
	dir           string
	control, repl string
	cmd           *exec.Cmd
	exited        chan struct{}
	adm           *admin.Client
}

func (m *groupMember) alive() bool {
	select {
	case <-m.exited:
		return false
	default:
		return m.cmd != nil
	}
}

type groupRunner struct {
	cfg      Config
	members  []*groupMember
	list     []string
	nodes    []*Node
	progress func(format string, args ...any)
}

// RunGroup performs a group run of members members and cfg.Nodes
// simulated MOMs and returns its report.
func RunGroup(ctx context.Context, cfg Config, members int) (*GroupReport, error) {
	if members < MinGroup || members > MaxGroup {
		return nil, fmt.Errorf("group of %d members: want %d..%d (killing the leader must leave a majority)", members, MinGroup, MaxGroup)
	}
	if cfg.Nodes <= 0 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("nodes %d: want 1..%d", cfg.Nodes, MaxNodes)
	}
	if cfg.MaxConnected > 0 && cfg.MaxConnected < cfg.Nodes {
		return nil, fmt.Errorf("%d nodes, but at most %d may be connected at once (descriptor limit): a group run needs every node connected", cfg.Nodes, cfg.MaxConnected)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.TokenTTL < 0 {
		// Every create and enrollment is a commit through the group:
		// slower than with one server (7 ms each on a loaded 2-core
		// machine), so the tokens last longer.
		cfg.TokenTTL = max(5*time.Minute, time.Duration(cfg.Nodes)*30*time.Millisecond)
	}
	g := &groupRunner{cfg: cfg, progress: func(string, ...any) {}}
	if cfg.Progress != nil {
		g.progress = func(f string, a ...any) { fmt.Fprintf(cfg.Progress, "scale-ha: "+f+"\n", a...) }
	}
	defer g.stop()
	if err := g.start(ctx, members); err != nil {
		return nil, err
	}
	rep := &GroupReport{Nodes: cfg.Nodes, Members: members}
	lead := g.members[0]
	set := admin.SetArgs{Attrs: []admin.Attr{{Name: "heartbeat", Value: "1h"}}}
	if cfg.TokenTTL > 0 {
		set.Attrs = append(set.Attrs, admin.Attr{Name: "token_ttl", Value: cfg.TokenTTL.String()})
	}
	if err := lead.adm.Call(ctx, admin.OpSetServer, set, nil); err != nil {
		return nil, fmt.Errorf("set server attributes: %w", err)
	}
	if err := g.createNodes(ctx, rep, lead); err != nil {
		return rep, err
	}
	if err := g.enroll(ctx, rep, lead); err != nil {
		return rep, err
	}

	// Every node follows the list from here on, by the daemon's rules.
	b := newBoard(g.list, len(g.nodes))
	fctx, stopFollow := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stopFollow(); wg.Wait() }()
	now := time.Now()
	for i, n := range g.nodes {
		b.on[i].Store(1) // enrolled with the first member, the leader
		b.since[i].Store(now.UnixNano())
		wg.Add(1)
		go func() {
			defer wg.Done()
			follow(fctx, n, i, newChoice(g.list), b, now)
		}()
	}
	g.nodes = nil // the followers own them

	if err := g.killLeader(ctx, rep, b); err != nil {
		return rep, err
	}
	return rep, nil
}

// start runs the first member from a fresh state directory (init, then
// run as a group of one, upgraded in place) and joins the others.
func (g *groupRunner) start(ctx context.Context, members int) error {
	for i := range members {
		ip := GroupMemberAddr(i).String()
		cp, err := freePortOn(ip)
		if err != nil {
			return err
		}
		rp, err := freePortOn(ip)
		if err != nil {
			return err
		}
		m := &groupMember{name: fmt.Sprintf("s%d", i+1), dir: filepath.Join(g.cfg.Dir, fmt.Sprintf("s%d", i+1)),
			control: fmt.Sprintf("%s:%d", ip, cp), repl: fmt.Sprintf("%s:%d", ip, rp)}
		g.members = append(g.members, m)
		g.list = append(g.list, m.control)
	}
	s1 := g.members[0]
	if out, err := exec.CommandContext(ctx, g.cfg.ServerBin, "init", "--state-dir", s1.dir).CombinedOutput(); err != nil {
		return fmt.Errorf("server init: %v: %s", err, out)
	}
	if err := g.run(ctx, s1, "run", "--replication-listen", s1.repl, "--member-name", s1.name); err != nil {
		return err
	}
	if err := g.waitLeading(ctx, s1); err != nil {
		return err
	}
	for _, m := range g.members[1:] {
		var res admin.CreateServerResult
		if err := s1.adm.Call(ctx, admin.OpCreateServer, admin.CreateServerArgs{Name: m.name, Address: m.repl, Control: m.control}, &res); err != nil {
			return fmt.Errorf("create server %s: %w", m.name, err)
		}
		if err := g.run(ctx, m, "join", "--token", res.Token); err != nil {
			return err
		}
		name := m.name
		if err := g.waitGroup(ctx, s1, func(gi *admin.GroupInfo) bool {
			for _, mi := range gi.Members {
				if mi.Name == name && mi.State == "alive" {
					return true
				}
			}
			return false
		}); err != nil {
			return fmt.Errorf("member %s: %w", name, err)
		}
		g.progress("member %s joined (control %s, replication %s)", m.name, m.control, m.repl)
	}
	return g.waitLeading(ctx, s1)
}

// run starts member m (momgate-server ARGS --state-dir --listen ...) and
// waits for its admin socket.
func (g *groupRunner) run(ctx context.Context, m *groupMember, args ...string) error {
	args = append(args, "--state-dir", m.dir, "--listen", m.control, "--log-level", "warn",
		"--audit-log", filepath.Join(g.cfg.Dir, m.name+"-audit.log"))
	m.cmd = exec.Command(g.cfg.ServerBin, args...)
	logf, err := os.OpenFile(filepath.Join(g.cfg.Dir, m.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("member %s log: %w", m.name, err)
	}
	defer logf.Close() // the child has its own descriptor
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		return fmt.Errorf("start member %s: %w", m.name, err)
	}
	m.exited = make(chan struct{})
	go func() { _ = m.cmd.Wait(); close(m.exited) }()
	c, err := waitAdmin(ctx, admin.SocketPath(m.dir), g.cfg.Timeout, m.alive)
	if errors.Is(err, errExited) {
		return fmt.Errorf("member %s exited (see %s)", m.name, filepath.Join(g.cfg.Dir, m.name+".log"))
	}
	if err != nil {
		return fmt.Errorf("member %s: %w", m.name, err)
	}
	m.adm = c
	return nil
}

// groupInfo is the group as member m sees it.
func (g *groupRunner) groupInfo(ctx context.Context, m *groupMember) (*admin.GroupInfo, error) {
	var rep admin.ServerReport
	cctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if err := m.adm.Call(cctx, admin.OpPrintServer, nil, &rep); err != nil {
		return nil, fmt.Errorf("print server on %s: %w", m.name, err)
	}
	if rep.Server.Group == nil {
		return nil, fmt.Errorf("print server on %s: not a member of a group", m.name)
	}
	return rep.Server.Group, nil
}

// waitLeading polls m until it leads and its server runs (answers list
// key, which a follower refuses as not_leader).
func (g *groupRunner) waitLeading(ctx context.Context, m *groupMember) error {
	if err := g.waitGroup(ctx, m, func(gi *admin.GroupInfo) bool { return gi.Leader == m.name }); err != nil {
		return err
	}
	deadline := time.Now().Add(2 * g.cfg.Timeout)
	for {
		err := m.adm.Call(ctx, admin.OpListKey, nil, nil)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s leads but does not serve within %s: %w", m.name, 2*g.cfg.Timeout, err)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// waitGroup polls print server on m until ok accepts the group it shows.
func (g *groupRunner) waitGroup(ctx context.Context, m *groupMember, ok func(*admin.GroupInfo) bool) error {
	deadline := time.Now().Add(2 * g.cfg.Timeout)
	for {
		gi, err := g.groupInfo(ctx, m)
		if err == nil && ok(gi) {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("group as %s sees it: leader %q, members %+v", m.name, gi.Leader, gi.Members)
			}
			return fmt.Errorf("not within %s: %w", 2*g.cfg.Timeout, err)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

// createNodes creates every node through the leader's admin socket,
// Workers/8 requests at a time (each committed through the group before
// it is answered), and makes the simulated nodes, each listing every
// member.
func (g *groupRunner) createNodes(ctx context.Context, rep *GroupReport, lead *groupMember) error {
	tokens := make([]string, g.cfg.Nodes)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	t0 := time.Now()
	for range max(1, min(g.cfg.Workers/8, 8)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= g.cfg.Nodes {
					return
				}
				var res admin.CreateNodeResult
				args := admin.CreateNodeArgs{Name: fmt.Sprintf("sim%05d", i), Mom: NodeAddr(i).String()}
				if err := lead.adm.Call(ctx, admin.OpCreateNode, args, &res); err != nil {
					select {
					case errs <- fmt.Errorf("create node %s: %w", args.Name, err):
					default:
					}
					next.Store(int64(g.cfg.Nodes))
					return
				}
				tokens[i] = res.Token
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	rep.Create = Phase{Count: g.cfg.Nodes, Duration: time.Since(t0)}
	g.progress("create node on the leader: %s", rep.Create)
	g.nodes = make([]*Node, g.cfg.Nodes)
	st := NewStats()
	for i := range g.nodes {
		n, err := NewNode(fmt.Sprintf("sim%05d", i), NodeAddr(i), tokens[i])
		if err != nil {
			return err
		}
		n.SetStats(st)
		g.nodes[i] = n
	}
	return nil
}

// enroll enrolls every node with the leader, Workers at a time; each
// stays connected.
func (g *groupRunner) enroll(ctx context.Context, rep *GroupReport, lead *groupMember) error {
	var next, errs atomic.Int64
	var first sync.Once
	t0 := time.Now()
	var wg sync.WaitGroup
	for range min(g.cfg.Workers, len(g.nodes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(g.nodes) {
					return
				}
				if err := g.nodes[i].Connect(ctx, lead.control, g.cfg.Timeout); err != nil {
					errs.Add(1)
					first.Do(func() { g.progress("first error: %v", err) })
				}
			}
		}()
	}
	wg.Wait()
	rep.Enroll = Phase{Count: len(g.nodes), Errors: int(errs.Load()), Duration: time.Since(t0)}
	g.progress("enroll at the leader: %s", rep.Enroll)
	if rep.Enroll.Errors > 0 {
		return fmt.Errorf("%d enrollments failed", rep.Enroll.Errors)
	}
	return ctx.Err()
}

// killLeader kills the leader with SIGKILL and measures, from that
// moment, the first write a survivor accepts and the reconnection of
// every node to the new leader.
func (g *groupRunner) killLeader(ctx context.Context, rep *GroupReport, b *board) error {
	lead := g.members[0]
	gi, err := g.groupInfo(ctx, lead)
	if err != nil {
		return err
	}
	if gi.Leader != lead.name {
		return fmt.Errorf("before the kill: %s leads, not %s (where every node enrolled)", gi.Leader, lead.name)
	}
	rep.Killed = lead.name
	rep.TermBefore = gi.Term
	rep.LoadBefore = loadavg()
	changes0 := map[string]uint64{}
	for _, m := range g.members[1:] {
		if gi, err := g.groupInfo(ctx, m); err == nil {
			changes0[m.name] = gi.LeaderChanges
		}
	}
	survivors := g.members[1:]
	cpu0 := map[string]time.Duration{}
	for _, m := range survivors {
		cpu0[m.name] = cpuTime(m.cmd.Process.Pid)
	}
	sim0 := cpuTime(os.Getpid())
	tcp0, _ := readListenCounters()
	b.killed.Store(1) // the first member of the list
	stopProfiles := g.startProfiles(survivors)
	defer stopProfiles()
	before := b.counted()
	t0 := time.Now()
	if err := lead.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("kill -9 %s: %w", lead.name, err)
	}
	lead.adm.Close()
	lead.adm = nil
	g.progress("kill -9 of the leader %s (pid %d)", lead.name, lead.cmd.Process.Pid)
	writeDone := make(chan struct{})
	go func() {
		defer close(writeDone)
		g.probeWrite(ctx, rep, survivors, t0)
	}()

	deadline := t0.Add(10 * g.cfg.Timeout)
	rep.NotReconnectedWithin = 10 * g.cfg.Timeout
	lastReport := t0
	var rc Reconnection
	for {
		on, since := b.snapshot()
		best, _ := mostOn(on, len(g.list))
		rc = reconnection(on, since, best, t0.UnixNano())
		if rc.Complete() {
			break
		}
		if time.Now().After(deadline) {
			rep.ReconnectErrors = rc.Nodes - rc.On
			break
		}
		if time.Since(lastReport) >= time.Second {
			lastReport = time.Now()
			g.progress("%.0fs after the kill: %d of %d nodes on one member, %d elsewhere, %d not connected", time.Since(t0).Seconds(),
				rc.On, rc.Nodes, rc.Elsewhere, rc.NotConnected)
		}
		if err := pause(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	stopProfiles()
	rep.Reconnect = rc
	rep.Attempts = b.counted().Sub(before)
	rep.CPUWall = time.Since(t0)
	rep.CPUSim = cpuTime(os.Getpid()) - sim0
	rep.CPU = map[string]time.Duration{}
	for _, m := range survivors {
		rep.CPU[m.name] = cpuTime(m.cmd.Process.Pid) - cpu0[m.name]
	}
	if tcp1, err := readListenCounters(); err == nil {
		rep.TCPListen = tcp1.Sub(tcp0)
	}
	b.mu.Lock()
	rep.FirstFailures = append([]string(nil), b.errors...)
	b.mu.Unlock()
	rep.LoadAfter = loadavg()
	<-writeDone
	if rc.Server >= 0 {
		m := g.members[rc.Server]
		rep.NewLeader = m.name
		if gi, err := g.groupInfo(ctx, m); err == nil {
			if gi.Leader != m.name {
				rep.NewLeader += fmt.Sprintf(" (which says %q leads now)", gi.Leader)
			}
			rep.TermAfter, rep.LeaderChanges = gi.Term, gi.LeaderChanges-changes0[m.name]
		}
		rep.LeaderRSS = rss(m.cmd.Process.Pid)
	}
	g.progress("every node back: %v; on %s: first %.2fs, median %.2fs, p99 %.2fs, last %.2fs after the kill",
		rc.Complete(), rep.NewLeader, rc.First.Seconds(), rc.P50.Seconds(), rc.P99.Seconds(), rc.Last.Seconds())
	if rep.ReconnectErrors > 0 {
		return fmt.Errorf("%d of %d nodes not back on one member within %s", rep.ReconnectErrors, rc.Nodes, rep.NotReconnectedWithin)
	}
	return nil
}

// probeWrite sends create node to the survivors in turn until one
// commits it, from t0 (the kill). Each request is a run of the
// momgate-qmgr binary, as an administrator's would be: in a process of its
// own, its answer is not held up behind the simulated MOMs' goroutines in
// this one (an in-process client measured up to 0.8 s more under the 10,000
// node reconnection storm than the member took to answer).
func (g *groupRunner) probeWrite(ctx context.Context, rep *GroupReport, survivors []*groupMember, t0 time.Time) {
	directive := fmt.Sprintf("create node failover-probe Mom=%s", probeAddr)
	deadline := t0.Add(10 * g.cfg.Timeout)
	for i := 0; ctx.Err() == nil; i++ {
		m := survivors[i%len(survivors)]
		cctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
		sent := time.Now()
		code, err := g.qmgr(cctx, m, directive)
		cancel()
		rep.WritePolls++
		switch {
		case err == nil, code == admin.CodeDuplicateNode:
			// A create whose answer was lost may have committed: the
			// next one finds it.
			rep.ToWrite, rep.WriteLatency = time.Since(t0), time.Since(sent)
			if rep.ToElected == 0 {
				rep.ToElected = rep.ToWrite
			}
			g.progress("create node committed by %s %.2fs after the kill (%d requests, %d not_leader)", m.name,
				rep.ToWrite.Seconds(), rep.WritePolls, rep.WriteNotLeader)
			return
		case code == admin.CodeNotLeader:
			rep.WriteNotLeader++
			if l := namedLeader(err.Error()); rep.ToElected == 0 && l != "" && l != rep.Killed {
				rep.ToElected = time.Since(t0)
				g.progress("%s names %s as the leader %.2fs after the kill", m.name, l, rep.ToElected.Seconds())
			}
		default:
			rep.WriteErrors++
			if rep.WriteFirstError == "" {
				rep.WriteFirstError = fmt.Sprintf("%s: %v", m.name, err)
				g.progress("write probe: %s", rep.WriteFirstError)
			}
		}
		if time.Now().After(deadline) {
			rep.WriteErrors++
			g.progress("write probe: no survivor committed a create node within %s", 10*g.cfg.Timeout)
			return
		}
		if pause(ctx, 10*time.Millisecond) != nil {
			return
		}
	}
}

// qmgr runs one directive with momgate-qmgr --json against member m's
// admin socket. A refusal returns the server's code and an error with its
// message; any other failure returns code "".
func (g *groupRunner) qmgr(ctx context.Context, m *groupMember, directive string) (code string, err error) {
	bin := g.cfg.QmgrBin
	if bin == "" {
		bin = filepath.Join(filepath.Dir(g.cfg.ServerBin), "momgate-qmgr")
	}
	cmd := exec.CommandContext(ctx, bin, "--json", "--socket", admin.SocketPath(m.dir), "-c", directive)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if runErr == nil {
		return "", nil
	}
	var refusal struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if json.Unmarshal(stdout.Bytes(), &refusal) == nil && refusal.Code != "" {
		return refusal.Code, errors.New(refusal.Error)
	}
	return "", fmt.Errorf("momgate-qmgr -c %q: %w: %s", directive, runErr, strings.TrimSpace(stderr.String()))
}

// stop ends every member still running (SIGINT, then SIGKILL after the
// timeout).
func (g *groupRunner) stop() {
	for _, n := range g.nodes {
		n.Close()
	}
	for _, m := range g.members {
		if m.adm != nil {
			m.adm.Close()
		}
		if !m.alive() {
			continue
		}
		_ = m.cmd.Process.Signal(os.Interrupt)
		select {
		case <-m.exited:
		case <-time.After(g.cfg.Timeout):
			_ = m.cmd.Process.Kill()
			<-m.exited
		}
	}
}

// startProfiles starts the profiles of the failover that the environment
// asks for: MOMGATE_SCALE_CPUPROFILE=FILE, this process's Go CPU profile
// (the simulated MOMs); MOMGATE_SCALE_PERF=DIR, `perf record -g` of each
// survivor into DIR/perf-NAME.data. The returned function stops them (once).
func (g *groupRunner) startProfiles(survivors []*groupMember) func() {
	var stops []func()
	if path := os.Getenv("MOMGATE_SCALE_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			g.progress("cpu profile: %v", err)
		} else {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close(); g.progress("cpu profile of the simulated MOMs: %s", path) })
		}
	}
	if dir := os.Getenv("MOMGATE_SCALE_PERF"); dir != "" {
		for _, m := range survivors {
			out := filepath.Join(dir, "perf-"+m.name+".data")
			cmd := exec.Command("perf", "record", "-F", "499", "-g", "-o", out, "-p", strconv.Itoa(m.cmd.Process.Pid))
			cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
			if err := cmd.Start(); err != nil {
				g.progress("perf record %s: %v", m.name, err)
				continue
			}
			stops = append(stops, func() {
				_ = cmd.Process.Signal(os.Interrupt)
				_ = cmd.Wait()
				g.progress("perf profile of %s: %s", m.name, out)
			})
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, stop := range stops {
				stop()
			}
		})
	}
}

// namedLeader is the leader a not_leader refusal names (server/join.go:
// "...; s2 leads (control address ...)"), or "".
func namedLeader(msg string) string {
	_, after, ok := strings.Cut(msg, "; ")
	if !ok {
		return ""
	}
	name, rest, ok := strings.Cut(after, " ")
	if !ok || !strings.HasPrefix(rest, "leads") {
		return ""
	}
	return name
}

// ListenCounters are the kernel's counts of connections a full listen
// queue turned away (TcpExt ListenOverflows and ListenDrops in
// /proc/net/netstat), for the whole machine.
type ListenCounters struct {
	Overflows, Drops int64
}

// Sub is c minus an earlier d.
func (c ListenCounters) Sub(d ListenCounters) ListenCounters {
	return ListenCounters{Overflows: c.Overflows - d.Overflows, Drops: c.Drops - d.Drops}
}

func readListenCounters() (ListenCounters, error) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return ListenCounters{}, err
	}
	return parseListenCounters(string(b))
}

// parseListenCounters reads the TcpExt lines of /proc/net/netstat: a line
// of names, then a line of values.
func parseListenCounters(netstat string) (ListenCounters, error) {
	var names []string
	for _, line := range strings.Split(netstat, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "TcpExt:" {
			continue
		}
		if names == nil {
			names = f[1:]
			continue
		}
		if len(f)-1 != len(names) {
			return ListenCounters{}, fmt.Errorf("/proc/net/netstat: %d TcpExt names, %d values", len(names), len(f)-1)
		}
		var c ListenCounters
		found := 0
		for i, name := range names {
			var dst *int64
			switch name {
			case "ListenOverflows":
				dst = &c.Overflows
			case "ListenDrops":
				dst = &c.Drops
			default:
				continue
			}
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return ListenCounters{}, fmt.Errorf("/proc/net/netstat: TcpExt %s: %w", name, err)
			}
			*dst = v
			found++
		}
		if found != 2 {
			return ListenCounters{}, fmt.Errorf("/proc/net/netstat: no ListenOverflows and ListenDrops")
		}
		return c, nil
	}
	return ListenCounters{}, fmt.Errorf("/proc/net/netstat: no TcpExt values")
}

// loadavg is /proc/loadavg's first three fields ("" if unknown).
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// PrintGroupReport writes rep as a Markdown table.
func PrintGroupReport(w io.Writer, rep *GroupReport) {
	fmt.Fprintf(w, "| measurement (N = %d, %d members) | value |\n| --- | --- |\n", rep.Nodes, rep.Members)
	row := func(k, v string) { fmt.Fprintf(w, "| %s | %s |\n", k, v) }
	row("create node on the leader (admin socket, committed through the group)", rep.Create.String())
	row("enrollment at the leader (token, key unwrap, PING swap)", rep.Enroll.String())
	row("kill -9 of the leader to a survivor naming a new leader (election)", fmt.Sprintf("%.2fs", rep.ToElected.Seconds()))
	row("raft term before the kill / after the reconnection; leaders the new leader saw take over meanwhile", fmt.Sprintf("%d / %d; %d", rep.TermBefore, rep.TermAfter, rep.LeaderChanges))
	row("kill -9 of the leader to a create node committed by a survivor (momgate-qmgr -c, one run per request)", fmt.Sprintf("**%.2fs** (%d requests, %d refused as not_leader, %d errors; the qmgr run that committed took %.2fs)",
		rep.ToWrite.Seconds(), rep.WritePolls, rep.WriteNotLeader, rep.WriteErrors, rep.WriteLatency.Seconds()))
	rc := rep.Reconnect
	row("kill -9 of the leader to every MOM in session with the new leader", fmt.Sprintf("**%.2fs** (%d of %d on %s; %d errors)",
		rc.Last.Seconds(), rc.On, rc.Nodes, rep.NewLeader, rep.ReconnectErrors+int(rep.Attempts.Failed)))
	row("sessions with the new leader after the kill: first / median / p99 / last", fmt.Sprintf("%.2fs / %.2fs / %.2fs / %.2fs",
		rc.First.Seconds(), rc.P50.Seconds(), rc.P99.Seconds(), rc.Last.Seconds()))
	a := rep.Attempts
	if rc.Last > rc.First {
		row("sessions with the new leader: rate from its first to its last (the MOMs' backoff bounds it at small N)", fmt.Sprintf("%.0f/s", float64(max(rc.On-1, 0))/(rc.Last-rc.First).Seconds()))
	}
	row("MOM control attempts until every MOM was back", fmt.Sprintf("%d sessions, %d lost, %d redirects followed, %d NotLeader naming no member, %d connects refused or timed out, %d failures at the killed member (reset), %d other failures",
		a.Sessions, a.Lost, a.Redirects, a.NoLeader, a.Refused, a.FailedAtKilled, a.Failed))
	if len(rep.FirstFailures) > 0 {
		row("first other failures", strings.ReplaceAll(strings.Join(rep.FirstFailures, "; "), "|", "/"))
	}
	if rep.WriteFirstError != "" {
		row("first write error", strings.ReplaceAll(rep.WriteFirstError, "|", "/"))
	}
	row("new leader RSS, every MOM connected", fmt.Sprintf("%.1f MiB", float64(rep.LeaderRSS)/(1<<20)))
	names := make([]string, 0, len(rep.CPU))
	for name := range rep.CPU {
		names = append(names, name)
	}
	slices.Sort(names)
	var cpu []string
	for _, name := range names {
		cpu = append(cpu, fmt.Sprintf("%s %.2fs", name, rep.CPU[name].Seconds()))
	}
	cpu = append(cpu, fmt.Sprintf("simulated MOMs %.2fs", rep.CPUSim.Seconds()))
	row("CPU time from the kill until every MOM was back", fmt.Sprintf("%s, over %.2fs (%d CPUs)", strings.Join(cpu, ", "), rep.CPUWall.Seconds(), runtime.NumCPU()))
	row("listen queue overflows / drops over that span (whole machine)", fmt.Sprintf("%d / %d", rep.TCPListen.Overflows, rep.TCPListen.Drops))
	row("load average (1, 5, 15 min) before the kill / after the reconnection", rep.LoadBefore+" / "+rep.LoadAfter)
}

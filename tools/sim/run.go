package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// Config sets up a scale run: one real server process, one real MOM daemon
// and Nodes simulated MOMs in this process, each on its own 127.1.x.y.
type Config struct {
	ServerBin  string // momgate-server binary
	MomBin     string // momgate-mom binary
	QmgrBin    string // momgate-qmgr binary (the group run's failover write); "" is momgate-qmgr beside ServerBin
	Dir        string // scratch directory (state dirs, logs)
	Nodes      int    // simulated MOMs
	Workers    int    // concurrent connections while enrolling and swapping
	Heartbeats int    // heartbeat PINGs per node
	Churn      int    // nodes deleted then created and enrolled again
	Timeout    time.Duration
	TokenTTL   time.Duration // token_ttl for the run; 0 leaves the default; negative: 1m or 10 ms per node, the longer
	KeyGrace   time.Duration // key_grace for the run; 0 leaves the default (30s)
	Progress   io.Writer     // progress lines; nil for none
	// MaxConnected bounds the control connections open at once (0: every
	// node), for a process whose descriptors cannot hold one per node:
	// nodes enroll in waves of MaxConnected, each wave disconnecting
	// before the next, and the last wave stays connected for the phases
	// that need connected nodes (heartbeats, rotation, churn).
	MaxConnected int
}

// Report is what a run measured.
type Report struct {
	Nodes             int
	Connected         int           // nodes connected for the heartbeats, the rotation and the churn
	Create            Phase         // create node through the admin socket, one request each
	Enroll            Phase         // enrollment + key unwrap + PING swap, Workers at a time
	Heartbeat         Phase         // heartbeat PINGs over the open control connections
	HeartbeatCPU      time.Duration // server CPU time (user + system) during the heartbeat phase
	HeartbeatSys      time.Duration // the system (kernel) part of HeartbeatCPU
	HeartbeatPinned   bool          // the server ran on CPU 0 and the simulator on CPU 1 during it
	EchoFloor         Phase         // the transport floor: request/response on kept connections to a trivial server
	EchoCPU, EchoSys  time.Duration // that server's CPU time, and its system part
	SisterSwap        Phase         // IM PING swaps with the real MOM daemon, new connection each
	Rotation          Rotation      // rotate key with every node connected
	Churn             Phase         // delete + create + enroll, all of them
	ChurnDelete       Phase         // the deletes, one after the other
	ChurnCreate       Phase         // the creates at the same addresses
	ChurnEnroll       Phase         // the new nodes' enrollment
	ChurnSettle       time.Duration // from the last churn step until no rotation runs and every up node is current
	ChurnRotations    uint64        // rotations the churn caused (rotation numbers used)
	ChurnTraffic      Traffic       // control traffic the nodes received during the churn and its settling
	ServerRSSIdle     int64         // server RSS with no nodes
	ServerRSSUp       int64         // with every node enrolled and connected
	ServerRSSRestart  int64         // after a restart with every node enrolled, none connected
	MomRSSBefore      int64         // real MOM RSS before the sister swaps
	MomRSSAfter       int64         // and after: one admitted peer per simulated node
	ServerCPU         time.Duration
	ServerStateBytes  int64 // state.json + state.journal
	PerNodeUpBytes    float64
	PerNodeStateBytes float64 // server RSS per enrolled node, not connected
	PerPeerMomBytes   float64
	HeapIdle          admin.MemStats // server after a GC, no nodes
	HeapUp            admin.MemStats // every node enrolled and connected, after the heartbeats
	HeapDown          admin.MemStats // the same nodes enrolled, disconnected
	Reconnect         Phase          // the connected nodes again: Hello by identity and PING swap
	HeapRestart       admin.MemStats // after a restart, none connected
}

// HeapPerNode is the server's live heap per enrolled node, not connected.
func (r *Report) HeapPerNode() float64 {
	return float64(int64(r.HeapRestart.HeapAlloc)-int64(r.HeapIdle.HeapAlloc)) / float64(r.Nodes)
}

// HeapPerConn is the server's live heap and stack per connected node.
func (r *Report) HeapPerConn() float64 {
	return r.heapPerConn() + r.stackPerConn()
}

func (r *Report) heapPerConn() float64 {
	return float64(int64(r.HeapUp.HeapAlloc)-int64(r.HeapDown.HeapAlloc)) / float64(max(r.Connected, 1))
}

func (r *Report) stackPerConn() float64 {
	return float64(int64(r.HeapUp.StackInuse)-int64(r.HeapDown.StackInuse)) / float64(max(r.Connected, 1))
}

// memStats reads the server's memory after the garbage collections a
// running server makes within minutes anyway: each mem_stats collects
// once, and a goroutine's stack shrinks by at most half per collection, so
// a stack grown during a handshake needs a few to come down to what the
// goroutine uses while it waits.
func (r *runner) memStats(ctx context.Context) admin.MemStats {
	var ms admin.MemStats
	for range memStatsGCs {
		if err := r.adm.Call(ctx, admin.OpMemStats, nil, &ms); err != nil {
			r.progress("mem_stats: %v", err)
			break
		}
	}
	return ms
}

// memStatsGCs is the number of collections before a memory reading.
const memStatsGCs = 4

// Rotation is what a `rotate key` with every simulated node connected
// took, as seen by the nodes.
type Rotation struct {
	Nodes      int           // nodes connected during it
	ToActivate time.Duration // request until the last node sealed with the new key
	ToRetire   time.Duration // request until the last node dropped the old key
	Settled    time.Duration // request until list key showed it idle with every up node current
	Grace      time.Duration // key_grace in force (part of ToRetire)
	Traffic    Traffic       // control traffic the nodes received and sent
	Down       int           // nodes not connected (key state needs sync), e.g. the stopped real MOM
}

// Phase is the count and duration of one step.
type Phase struct {
	Count    int
	Errors   int
	Duration time.Duration
}

// Rate is operations per second.
func (p Phase) Rate() float64 {
	if p.Duration <= 0 {
		return 0
	}
	return float64(p.Count) / p.Duration.Seconds()
}

func (p Phase) String() string {
	return fmt.Sprintf("%d in %.2fs (%.0f/s, %d errors)", p.Count, p.Duration.Seconds(), p.Rate(), p.Errors)
}

// MaxNodes is the most simulated nodes of a run: their addresses
// (NodeAddr) stay in 127.1.0.0-127.16.255.255.
const MaxNodes = 16 * 256 * 250

// NodeAddr is the loopback address of simulated node i (0-based):
// 127.1.0.1 to 127.1.255.250 for the first 64,000, then 127.2.0.1 and up.
func NodeAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + i/(256*250)), byte(i / 250 % 256), byte(i%250 + 1)})
}

type runner struct {
	cfg      Config
	srvDir   string
	srvAddr  string
	srv      *exec.Cmd
	adm      *admin.Client
	nodes    []*Node
	stats    *Stats
	progress func(format string, args ...any)
}

// Run performs a scale run and returns its report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Nodes <= 0 || cfg.Nodes > MaxNodes {
		return nil, fmt.Errorf("nodes %d: want 1..%d", cfg.Nodes, MaxNodes)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.TokenTTL < 0 {
		// Every node must enroll before its token expires.
		cfg.TokenTTL = max(time.Minute, time.Duration(cfg.Nodes)*10*time.Millisecond)
	}
	r := &runner{cfg: cfg, srvDir: filepath.Join(cfg.Dir, "server"), stats: NewStats(), progress: func(string, ...any) {}}
	if cfg.Progress != nil {
		r.progress = func(f string, a ...any) { fmt.Fprintf(cfg.Progress, "scale: "+f+"\n", a...) }
	}
	defer r.stopServer()
	defer func() {
		for _, n := range r.nodes {
			n.Close()
		}
	}()
	rep := &Report{Nodes: cfg.Nodes}
	if out, err := exec.CommandContext(ctx, cfg.ServerBin, "init", "--state-dir", r.srvDir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("server init: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	r.srvAddr = fmt.Sprintf("127.0.0.1:%d", port)
	if err := r.startServer(ctx); err != nil {
		return nil, err
	}
	rep.ServerRSSIdle = rss(r.srv.Process.Pid)
	rep.HeapIdle = r.memStats(ctx)
	// The simulated nodes send heartbeats only in the heartbeat phase; an
	// hour's interval keeps the server from closing their idle control
	// connections (after 3 missed heartbeats) during the later phases.
	set := admin.SetArgs{Attrs: []admin.Attr{{Name: "heartbeat", Value: "1h"}}}
	if cfg.TokenTTL > 0 {
		set.Attrs = append(set.Attrs, admin.Attr{Name: "token_ttl", Value: cfg.TokenTTL.String()})
	}
	if cfg.KeyGrace > 0 {
		set.Attrs = append(set.Attrs, admin.Attr{Name: "key_grace", Value: cfg.KeyGrace.String()})
	}
	if err := r.adm.Call(ctx, admin.OpSetServer, set, nil); err != nil {
		return nil, fmt.Errorf("set server attributes: %w", err)
	}

	// Create every node through the admin socket.
	tokens := make([]string, cfg.Nodes)
	var lastExpiry time.Time
	t0 := time.Now()
	for i := range cfg.Nodes {
		var res admin.CreateNodeResult
		args := admin.CreateNodeArgs{Name: fmt.Sprintf("sim%05d", i), Mom: NodeAddr(i).String()}
		if err := r.adm.Call(ctx, admin.OpCreateNode, args, &res); err != nil {
			return nil, fmt.Errorf("create node %s: %w", args.Name, err)
		}
		tokens[i], lastExpiry = res.Token, res.TokenExpires
	}
	rep.Create = Phase{Count: cfg.Nodes, Duration: time.Since(t0)}
	r.progress("create node: %s", rep.Create)

	r.nodes = make([]*Node, cfg.Nodes)
	for i := range r.nodes {
		if r.nodes[i], err = NewNode(fmt.Sprintf("sim%05d", i), NodeAddr(i), tokens[i]); err != nil {
			return nil, err
		}
		r.nodes[i].SetStats(r.stats)
	}
	// The transport floor first, while no control connection holds a
	// descriptor.
	if cfg.Heartbeats > 0 && runtime.NumCPU() >= 2 {
		if rep.EchoFloor, rep.EchoCPU, rep.EchoSys, err = r.echoFloor(ctx, min(cfg.Nodes, r.maxConnected(), maxEchoConns), cfg.Heartbeats); err != nil {
			return rep, fmt.Errorf("transport floor: %w", err)
		}
		r.progress("transport floor (echo server): %s; its CPU %.2fs (%.1f us per request)", rep.EchoFloor, rep.EchoCPU.Seconds(),
			perOp(rep.EchoCPU, rep.EchoFloor))
	}
	if rep.Enroll, err = r.enroll(ctx); err != nil {
		return rep, err
	}
	rep.ServerRSSUp = rss(r.srv.Process.Pid)
	rep.Connected = len(r.connected())

	r.heartbeats(ctx, rep)
	// Every session has served heartbeats: the steady state of a connected
	// node. Then the same server with the same nodes disconnected, and
	// the nodes back (Hello by identity): the difference is what a
	// connection costs.
	rep.HeapUp = r.memStats(ctx)
	if err := r.reconnect(ctx, rep); err != nil {
		return rep, err
	}

	if err := r.sisters(ctx, rep); err != nil {
		return rep, err
	}
	if err := r.rotate(ctx, rep); err != nil {
		return rep, err
	}
	if cfg.Churn > 0 {
		if err := r.churn(ctx, rep); err != nil {
			return rep, err
		}
	}
	rep.ServerCPU = cpuTime(r.srv.Process.Pid)

	// Memory of the registry alone: restart with every node enrolled and
	// none connected.
	for _, n := range r.nodes {
		n.Close()
	}
	r.stopServer()
	if cfg.TokenTTL > 0 {
		// Steady state: the used tokens have expired and are pruned at load.
		r.progress("waiting until the enrollment tokens expire at %s", lastExpiry.Format(time.TimeOnly))
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(time.Until(lastExpiry) + time.Second):
		}
	}
	if err := r.startServer(ctx); err != nil {
		return rep, err
	}
	rep.ServerRSSRestart = rss(r.srv.Process.Pid)
	rep.HeapRestart = r.memStats(ctx)
	for _, f := range []string{"state.json", "state.journal"} {
		if fi, err := os.Stat(filepath.Join(r.srvDir, f)); err == nil {
			rep.ServerStateBytes += fi.Size()
		}
	}
	n := float64(cfg.Nodes)
	rep.PerNodeUpBytes = float64(rep.ServerRSSUp-rep.ServerRSSIdle) / float64(max(rep.Connected, 1))
	rep.PerNodeStateBytes = float64(rep.ServerRSSRestart-rep.ServerRSSIdle) / n
	rep.PerPeerMomBytes = float64(rep.MomRSSAfter-rep.MomRSSBefore) / n
	return rep, nil
}

// reconnect disconnects the connected nodes, reads the server's memory
// without them, and connects them again (Hello and PING swap, as a MOM
// after a restart).
func (r *runner) reconnect(ctx context.Context, rep *Report) error {
	up := r.connected()
	for _, n := range up {
		n.Close()
	}
	deadline := time.Now().Add(r.cfg.Timeout)
	for {
		var ms admin.MemStats
		if err := r.adm.Call(ctx, admin.OpMemStats, nil, &ms); err != nil {
			return fmt.Errorf("mem_stats: %w", err)
		}
		if ms.Connections == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d control connections still open %s after the nodes closed them", ms.Connections, r.cfg.Timeout)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	rep.HeapDown = r.memStats(ctx)
	rep.Reconnect = r.each(ctx, up, func(n *Node) error { return n.Connect(ctx, r.srvAddr, r.cfg.Timeout) })
	r.progress("reconnect (Hello + PING swap): %s", rep.Reconnect)
	if rep.Reconnect.Errors > 0 {
		return fmt.Errorf("%d nodes could not reconnect", rep.Reconnect.Errors)
	}
	return nil
}

// maxConnected is how many nodes may be connected at once.
func (r *runner) maxConnected() int {
	if r.cfg.MaxConnected <= 0 {
		return r.cfg.Nodes
	}
	return r.cfg.MaxConnected
}

// connected returns the nodes whose control connection is up.
func (r *runner) connected() []*Node {
	var out []*Node
	for _, n := range r.nodes {
		if n.Up() {
			out = append(out, n)
		}
	}
	return out
}

// enroll enrolls every node, Workers at a time, in waves of at most
// maxConnected connected nodes: a wave disconnects before the next
// connects, and the last wave, the last maxConnected nodes, stays
// connected.
func (r *runner) enroll(ctx context.Context) (Phase, error) {
	all := Phase{Count: len(r.nodes)}
	wave := r.maxConnected()
	last := max(0, len(r.nodes)-wave) // the connected set starts here
	for start := 0; start < len(r.nodes); {
		end := min(start+wave, last)
		if start >= last {
			end = len(r.nodes)
		}
		nodes := r.nodes[start:end]
		ph := r.each(ctx, nodes, func(n *Node) error { return n.Connect(ctx, r.srvAddr, r.cfg.Timeout) })
		all.Errors += ph.Errors
		all.Duration += ph.Duration
		if end <= last {
			for _, n := range nodes {
				n.Close()
			}
			r.progress("enroll: wave of %d: %s (then disconnected: at most %d connected at once)", len(nodes), ph, wave)
		}
		if ctx.Err() != nil {
			return all, ctx.Err()
		}
		start = end
	}
	r.progress("enroll: %s", all)
	if all.Errors > 0 {
		return all, fmt.Errorf("%d enrollments failed", all.Errors)
	}
	return all, nil
}

// heartbeats has every node send Heartbeats heartbeat PINGs over its
// control connection, Workers at a time, and measures the server's CPU
// time over the phase: with 2 CPUs or more, the server is pinned to CPU 0
// and the simulator to CPU 1 meanwhile, so that the server's time is its
// own work and not a share of a CPU the simulator competes for.
func (r *runner) heartbeats(ctx context.Context, rep *Report) {
	var pins []*pinned
	if runtime.NumCPU() >= 2 {
		for cpu, pid := range []int{r.srv.Process.Pid, os.Getpid()} {
			p, err := pin(pid, cpu)
			if err != nil {
				r.progress("heartbeats not pinned: %v", err)
				break
			}
			pins = append(pins, p)
		}
	}
	rep.HeartbeatPinned = len(pins) == 2
	if rep.HeartbeatPinned {
		// The Go runtime of both processes re-reads its CPU affinity
		// about once a second and runs on one P from then on.
		if err := pause(ctx, 3*time.Second); err != nil {
			return
		}
	}
	u0, s0 := cpuTimes(r.srv.Process.Pid)
	t0 := time.Now()
	up := r.connected()
	hb := r.each(ctx, up, func(n *Node) error { return n.Heartbeats(r.cfg.Heartbeats, r.cfg.Timeout) })
	rep.Heartbeat = Phase{Count: len(up) * r.cfg.Heartbeats, Errors: hb.Errors, Duration: time.Since(t0)}
	u1, s1 := cpuTimes(r.srv.Process.Pid)
	rep.HeartbeatCPU, rep.HeartbeatSys = u1+s1-u0-s0, s1-s0
	for _, p := range pins {
		p.restore()
	}
	r.progress("heartbeats: %s; server CPU %.2fs (%.1f us per heartbeat)", rep.Heartbeat, rep.HeartbeatCPU.Seconds(), rep.CPUPerHeartbeat())
}

// maxEchoConns bounds the kept connections of the transport floor.
const maxEchoConns = 10000

// CPUPerHeartbeat is the server's CPU time per heartbeat answered, in
// microseconds.
func (r *Report) CPUPerHeartbeat() float64 { return perOp(r.HeartbeatCPU, r.Heartbeat) }

// perOp is CPU time d per successful operation of p, in microseconds.
func perOp(d time.Duration, p Phase) float64 {
	ok := p.Count - p.Errors
	if ok <= 0 {
		return 0
	}
	return float64(d) / float64(time.Microsecond) / float64(ok)
}

// each runs fn for every node, Workers at a time, and times it.
func (r *runner) each(ctx context.Context, nodes []*Node, fn func(*Node) error) Phase {
	var next, errs atomic.Int64
	var first sync.Once
	t0 := time.Now()
	var wg sync.WaitGroup
	for range min(r.cfg.Workers, len(nodes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= len(nodes) {
					return
				}
				if err := fn(nodes[i]); err != nil {
					errs.Add(1)
					first.Do(func() { r.progress("first error: %v", err) })
				}
			}
		}()
	}
	wg.Wait()
	return Phase{Count: len(nodes), Errors: int(errs.Load()), Duration: time.Since(t0)}
}

// sisters starts a real MOM daemon on 127.0.0.2 and has every simulated
// node run one IM swap with it.
func (r *runner) sisters(ctx context.Context, rep *Report) error {
	var res admin.CreateNodeResult
	if err := r.adm.Call(ctx, admin.OpCreateNode, admin.CreateNodeArgs{Name: "realmom", Mom: "127.0.0.2"}, &res); err != nil {
		return fmt.Errorf("create realmom: %w", err)
	}
	port, err := freePortOn("127.0.0.2")
	if err != nil {
		return err
	}
	imAddr := fmt.Sprintf("127.0.0.2:%d", port)
	momDir := filepath.Join(r.cfg.Dir, "realmom")
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mom := exec.CommandContext(mctx, r.cfg.MomBin, "run", "--state-dir", momDir, "--server", r.srvAddr,
		"--listen", imAddr, "--enroll", res.Token, "--log-level", "warn", "--audit-log", filepath.Join(r.cfg.Dir, "realmom-audit.log"))
	mom.Stdout, mom.Stderr = io.Discard, io.Discard
	if err := mom.Start(); err != nil {
		return fmt.Errorf("start mom: %w", err)
	}
	defer func() { _ = mom.Process.Signal(os.Interrupt); _ = mom.Wait() }()
	if err := r.waitNodeUp(ctx, "realmom"); err != nil {
		return err
	}
	rep.MomRSSBefore = rss(mom.Process.Pid)
	rep.SisterSwap = r.each(ctx, r.nodes, func(n *Node) error { return n.Swap(ctx, imAddr, r.cfg.Timeout) })
	rep.MomRSSAfter = rss(mom.Process.Pid)
	r.progress("sister swaps at one MOM: %s", rep.SisterSwap)
	return nil
}

// churn deletes the first Churn nodes, one admin request each, then
// creates them again under new names at the same addresses (each create
// lifting the address's deny) and enrolls them, Workers at a time. The
// deleted nodes stay connected until the server closes their connections.
func (r *runner) churn(ctx context.Context, rep *Report) error {
	// The churned nodes are connected ones: with a bound on connected
	// nodes, their replacements take the descriptors they leave.
	var idx []int
	for i, n := range r.nodes {
		if n.Up() && len(idx) < r.cfg.Churn {
			idx = append(idx, i)
		}
	}
	k := len(idx)
	var kl0 admin.KeyList
	if err := r.adm.Call(ctx, admin.OpListKey, nil, &kl0); err != nil {
		return fmt.Errorf("list key: %w", err)
	}
	seq0 := kl0.Rotation.Seq
	before := r.stats.Snapshot()
	t0 := time.Now()
	for _, i := range idx {
		if err := r.adm.Call(ctx, admin.OpDeleteNode, admin.NodeArgs{Name: r.nodes[i].Name}, nil); err != nil {
			return fmt.Errorf("delete %s: %w", r.nodes[i].Name, err)
		}
	}
	rep.ChurnDelete = Phase{Count: k, Duration: time.Since(t0)}
	r.progress("churn: delete node: %s", rep.ChurnDelete)
	t1 := time.Now()
	created := make([]*Node, k)
	for j, i := range idx {
		var res admin.CreateNodeResult
		name := fmt.Sprintf("churn%05d", j)
		if err := r.adm.Call(ctx, admin.OpCreateNode, admin.CreateNodeArgs{Name: name, Mom: NodeAddr(i).String()}, &res); err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		n, err := NewNode(name, NodeAddr(i), res.Token)
		if err != nil {
			return err
		}
		n.SetStats(r.stats)
		created[j] = n
	}
	rep.ChurnCreate = Phase{Count: k, Duration: time.Since(t1)}
	r.progress("churn: create node at the same addresses: %s", rep.ChurnCreate)
	for j, i := range idx {
		r.nodes[i].Close() // closed by the server at its delete
		r.nodes[i] = created[j]
	}
	rep.ChurnEnroll = r.each(ctx, created, func(n *Node) error { return n.Connect(ctx, r.srvAddr, r.cfg.Timeout) })
	rep.Churn = Phase{Count: k, Errors: rep.ChurnEnroll.Errors, Duration: time.Since(t0)}
	r.progress("churn: enroll the new nodes: %s; delete + create + enroll %s", rep.ChurnEnroll, rep.Churn)
	t2 := time.Now()
	kl, err := r.waitKeysSettled(ctx)
	if err != nil {
		return err
	}
	rep.ChurnSettle = time.Since(t2)
	rep.ChurnRotations = kl.Rotation.Seq - seq0
	rep.ChurnTraffic = r.stats.Snapshot().Sub(before)
	r.progress("churn settled %.2fs after its last step: %d rotations, %d key messages, %d deny messages received", rep.ChurnSettle.Seconds(),
		rep.ChurnRotations, rep.ChurnTraffic.keyFrames(), rep.ChurnTraffic.denyFrames())
	return nil
}

func (t Traffic) keyFrames() int64 {
	return t.Frames[proto.TypeKeyUpdate] + t.Frames[proto.TypeKeyActivate] + t.Frames[proto.TypeKeyRetire]
}

func (t Traffic) keyBytes() int64 {
	return t.Bytes[proto.TypeKeyUpdate] + t.Bytes[proto.TypeKeyActivate] + t.Bytes[proto.TypeKeyRetire]
}

func (t Traffic) denyFrames() int64 {
	return t.Frames[proto.TypeDeny] + t.Frames[proto.TypeDenySet] + t.Frames[proto.TypeDenyLift]
}

func (t Traffic) denyBytes() int64 {
	return t.Bytes[proto.TypeDeny] + t.Bytes[proto.TypeDenySet] + t.Bytes[proto.TypeDenyLift]
}

// rotate runs `rotate key` with every simulated node connected and waits
// until every node has retired the old key and list key shows the
// rotation finished.
func (r *runner) rotate(ctx context.Context, rep *Report) error {
	up := 0
	for _, n := range r.nodes {
		if n.Up() {
			up++
		} else if err := n.Err(); err != nil {
			r.progress("node %s is down before the rotation: %v", n.Name, err)
		}
	}
	var srv admin.ServerReport
	if err := r.adm.Call(ctx, admin.OpPrintServer, nil, &srv); err != nil {
		return fmt.Errorf("print server: %w", err)
	}
	grace, err := time.ParseDuration(srv.Server.Attrs["key_grace"])
	if err != nil {
		return fmt.Errorf("server key_grace %q: %w", srv.Server.Attrs["key_grace"], err)
	}
	before := r.stats.Snapshot()
	t0 := time.Now()
	var info admin.RotationInfo
	if err := r.adm.Call(ctx, admin.OpRotateKey, nil, &info); err != nil {
		return fmt.Errorf("rotate key: %w", err)
	}
	oldID, err1 := keys.ParseKeyID(info.OldKey)
	newID, err2 := keys.ParseKeyID(info.NewKey)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("rotate key: phase %s, keys %q -> %q: %w", info.Phase, info.OldKey, info.NewKey, err)
	}
	deadline := time.Now().Add(r.cfg.Timeout + grace)
	for {
		n, last := r.stats.Retired(oldID)
		if n >= up {
			_, act := r.stats.Activated(newID)
			rep.Rotation = Rotation{Nodes: up, ToActivate: act.Sub(t0), ToRetire: last.Sub(t0), Grace: grace}
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("rotation %d: %d of %d nodes retired key %s within %s", info.Seq, n, up, oldID, r.cfg.Timeout)
		}
		if err := pause(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
	kl, err := r.waitKeysSettled(ctx)
	if err != nil {
		return err
	}
	rep.Rotation.Settled = time.Since(t0)
	rep.Rotation.Traffic = r.stats.Snapshot().Sub(before)
	for _, n := range kl.Nodes {
		if !n.Up {
			rep.Rotation.Down++
		}
	}
	r.progress("rotate key: %d nodes activated in %.2fs, retired in %.2fs (key_grace %s), list key idle after %.2fs",
		up, rep.Rotation.ToActivate.Seconds(), rep.Rotation.ToRetire.Seconds(), rep.Rotation.Grace, rep.Rotation.Settled.Seconds())
	return nil
}

// waitKeysSettled polls list key until no rotation runs or is queued and
// every connected node holds the current keys.
func (r *runner) waitKeysSettled(ctx context.Context) (*admin.KeyList, error) {
	deadline := time.Now().Add(10 * r.cfg.Timeout)
	for {
		var kl admin.KeyList
		if err := r.adm.Call(ctx, admin.OpListKey, nil, &kl); err != nil {
			return nil, fmt.Errorf("list key: %w", err)
		}
		settled := kl.Rotation.Phase == "idle" && kl.Rotation.Queued == 0
		notCurrent := 0
		for _, n := range kl.Nodes {
			if n.Up && n.KeyState != admin.KeyCurrent {
				notCurrent++
			}
		}
		if settled && notCurrent == 0 {
			return &kl, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("rotation %d still %s (queued %d, %d up nodes not current) after %s",
				kl.Rotation.Seq, kl.Rotation.Phase, kl.Rotation.Queued, notCurrent, 10*r.cfg.Timeout)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// pause waits d (a polling interval) or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func (r *runner) waitNodeUp(ctx context.Context, name string) error {
	deadline := time.Now().Add(r.cfg.Timeout)
	for time.Now().Before(deadline) {
		var infos []admin.NodeInfo
		if err := r.adm.Call(ctx, admin.OpListNode, admin.ListNodeArgs{Name: name}, &infos); err == nil &&
			len(infos) == 1 && infos[0].State == admin.NodeUp {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling interval, not synchronisation
		}
	}
	return fmt.Errorf("node %s not up within %s", name, r.cfg.Timeout)
}

func (r *runner) startServer(ctx context.Context) error {
	r.srv = exec.Command(r.cfg.ServerBin, "run", "--state-dir", r.srvDir, "--listen", r.srvAddr,
		"--log-level", "warn", "--audit-log", filepath.Join(r.cfg.Dir, "server-audit.log"))
	logf, err := os.OpenFile(filepath.Join(r.cfg.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("server log: %w", err)
	}
	defer logf.Close() // the child has its own descriptor
	r.srv.Stdout, r.srv.Stderr = logf, logf
	if err := r.srv.Start(); err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	c, err := waitAdmin(ctx, filepath.Join(r.srvDir, "admin.sock"), r.cfg.Timeout, nil)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	r.adm = c
	return nil
}

// waitAdmin dials a daemon's admin socket until it answers print server,
// for at most timeout, and returns the connection; alive, if set, says
// whether the daemon still runs (a daemon that exited fails at once).
func waitAdmin(ctx context.Context, sock string, timeout time.Duration, alive func() bool) (*admin.Client, error) {
	deadline := time.Now().Add(timeout)
	for {
		c, err := admin.Dial(ctx, sock)
		if err == nil {
			if err = c.Call(ctx, admin.OpPrintServer, nil, nil); err == nil {
				return c, nil
			}
			c.Close()
		}
		if alive != nil && !alive() {
			return nil, errExited
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("admin socket %s not ready: %w", sock, err)
		}
		if err := pause(ctx, 50*time.Millisecond); err != nil { // polling interval, not synchronisation
			return nil, err
		}
	}
}

// errExited: the daemon waitAdmin waited for exited.
var errExited = errors.New("exited")

func (r *runner) stopServer() {
	if r.adm != nil {
		r.adm.Close()
		r.adm = nil
	}
	if r.srv != nil && r.srv.Process != nil {
		_ = r.srv.Process.Signal(os.Interrupt)
		_ = r.srv.Wait()
		r.srv = nil
	}
}

func freePort() (int, error) { return freePortOn("127.0.0.1") }

func freePortOn(ip string) (int, error) {
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// rss is the resident set size of pid in bytes, from /proc (0 if unknown).
func rss(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime is the user+system CPU time of pid, from /proc (0 if unknown).
func cpuTime(pid int) time.Duration {
	u, s := cpuTimes(pid)
	return u + s
}

// cpuTimes is the user and the system CPU time of pid, all its threads,
// from /proc/PID/stat (0 if unknown).
func cpuTimes(pid int) (user, sys time.Duration) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0
	}
	// Fields after the command name, which is in parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if errors.Join(err1, err2) != nil {
		return 0, 0
	}
	tick := time.Second / 100 // USER_HZ is 100 on Linux
	return time.Duration(ut) * tick, time.Duration(st) * tick
}

// PrintReport writes rep as a Markdown table.
func PrintReport(w io.Writer, rep *Report) {
	mib := func(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
	fmt.Fprintf(w, "| measurement (N = %d) | value |\n| --- | --- |\n", rep.Nodes)
	if rep.Connected != rep.Nodes {
		fmt.Fprintf(w, "| nodes connected at once (descriptor limit of one process) | %d: heartbeats, rotation and churn ran with these; enrollment in waves |\n", rep.Connected)
	}
	row := func(k, v string) { fmt.Fprintf(w, "| %s | %s |\n", k, v) }
	row("create node (admin socket, sequential)", rep.Create.String())
	row("enrollment (token, key unwrap, PING swap)", rep.Enroll.String())
	row("heartbeat PINGs at the server", rep.Heartbeat.String())
	pinned := "server and simulator not pinned"
	if rep.HeartbeatPinned {
		pinned = "server on CPU 0, simulator on CPU 1"
	}
	row("server CPU per heartbeat answered", fmt.Sprintf("%.1f us, %.0f%% of it in the kernel (%.2fs of CPU over the phase, /proc resolution 10 ms; %s)",
		rep.CPUPerHeartbeat(), 100*rep.HeartbeatSys.Seconds()/max(rep.HeartbeatCPU.Seconds(), 1e-9), rep.HeartbeatCPU.Seconds(), pinned))
	if rep.EchoFloor.Count > 0 {
		row("transport floor: a trivial echo server, kept connections, same concurrency and pinning", fmt.Sprintf("%.1f us per request, %.0f%% in the kernel (%d connections, %s)",
			perOp(rep.EchoCPU, rep.EchoFloor), 100*rep.EchoSys.Seconds()/max(rep.EchoCPU.Seconds(), 1e-9), min(rep.Nodes, maxEchoConns), rep.EchoFloor))
	}
	row("reconnection of the connected nodes (Hello by identity + PING swap)", rep.Reconnect.String())
	row("sister admissions at one MOM (new connection + swap)", rep.SisterSwap.String())
	rt := rep.Rotation
	row("rotate key, every node connected: request to all activated / all retired", fmt.Sprintf("%.2fs / %.2fs (%d nodes, key_grace %s; list key idle at %.2fs)",
		rt.ToActivate.Seconds(), rt.ToRetire.Seconds(), rt.Nodes, rt.Grace, rt.Settled.Seconds()))
	row("rotation traffic at the nodes (KeyUpdate+KeyActivate+KeyRetire in / KeyAck out)", fmt.Sprintf("%d frames, %d bytes / %d frames, %d bytes",
		rt.Traffic.keyFrames(), rt.Traffic.keyBytes(), rt.Traffic.Acks, rt.Traffic.AckBytes))
	row("churn: delete node, one after the other", rep.ChurnDelete.String())
	row("churn: create node again at the same addresses", rep.ChurnCreate.String())
	row("churn: enroll the new nodes", rep.ChurnEnroll.String())
	row("churn: deletes, creates and enrollments in all", rep.Churn.String())
	row("churn: settled after its last step / rotations / key frames / deny frames at the nodes", fmt.Sprintf("%.2fs / %d / %d (%d bytes) / %d (%d bytes)",
		rep.ChurnSettle.Seconds(), rep.ChurnRotations, rep.ChurnTraffic.keyFrames(), rep.ChurnTraffic.keyBytes(),
		rep.ChurnTraffic.denyFrames(), rep.ChurnTraffic.denyBytes()))
	row("server CPU time, whole run", fmt.Sprintf("%.2fs", rep.ServerCPU.Seconds()))
	row("server RSS: idle / all connected / restarted, none connected", mib(rep.ServerRSSIdle)+" / "+mib(rep.ServerRSSUp)+" / "+mib(rep.ServerRSSRestart))
	row("server RSS per enrolled node (restarted, none connected)", fmt.Sprintf("%.0f bytes", rep.PerNodeStateBytes))
	row("server RSS per connected node", fmt.Sprintf("%.0f bytes", rep.PerNodeUpBytes))
	row("server live heap per enrolled node (after GC)", fmt.Sprintf("%.0f bytes (heap %s idle, %s with N nodes)", rep.HeapPerNode(),
		mib(int64(rep.HeapIdle.HeapAlloc)), mib(int64(rep.HeapRestart.HeapAlloc))))
	row("server live heap + stacks per connection (after GC; connected minus the same nodes disconnected)", fmt.Sprintf("%.0f bytes: heap %.0f + stacks %.0f; %.2f goroutines per connection",
		rep.HeapPerConn(), rep.heapPerConn(), rep.stackPerConn(), float64(rep.HeapUp.Goroutines-rep.HeapDown.Goroutines)/float64(max(rep.Connected, 1))))
	row("server state on disk", fmt.Sprintf("%s (%.0f bytes per node)", mib(rep.ServerStateBytes), float64(rep.ServerStateBytes)/float64(rep.Nodes)))
	row("MOM memory per admitted peer", fmt.Sprintf("%.0f bytes (RSS %s -> %s)", rep.PerPeerMomBytes, mib(rep.MomRSSBefore), mib(rep.MomRSSAfter)))
}

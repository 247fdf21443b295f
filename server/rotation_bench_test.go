package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"
	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/rotation"
)

// The loopback rotation benchmark: a real server (this process) and N
// simulated MOMs (a child process running TestSimulatedMOMs, because N
// connections need 2N descriptors in one process and the limit here is
// 20,000) over TCP on 127.0.0.0/8, each MOM on its own address. A
// simulated MOM does what momgate-mom does on the wire: Hello, Welcome,
// PING swap, then KeyUpdate (unwrap, store, KeyAck), KeyActivate and
// KeyRetire. It does not write its keyring to disk: on a real cluster each
// MOM writes its own disk, in parallel.
//
//	go test -run '^$' -bench RotationLoopback -benchtime 5x ./server

const simEnv = "MOMGATE_BENCH_SIM_SPEC"

type simSpec struct {
	Server    string    `json:"server"`
	ServerKey []byte    `json:"server_key"`
	Nodes     []simNode `json:"nodes"`
}

type simNode struct {
	ID   uuid.UUID `json:"id"`
	Addr string    `json:"addr"`
	Priv []byte    `json:"priv"`
}

// benchAddr is the loopback address of simulated node i: 127.1.0.1 on.
func benchAddr(i int) string {
	i++
	return fmt.Sprintf("127.%d.%d.%d", 1+i/65536, (i/256)%256, i%256)
}

// benchEnv is a running server with N connected simulated MOMs.
type benchEnv struct {
	srv    *Server
	cancel context.CancelFunc
	done   chan error
	child  *exec.Cmd
	stdin  io.Closer
	lines  chan string
	dir    string
}

func newBenchEnv(tb testing.TB, n int) *benchEnv {
	dir, err := os.MkdirTemp("", "momgate-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	env := &benchEnv{dir: dir, lines: make(chan string, 64)}
	if _, err := Init(dir, rand.Reader, time.Now()); err != nil {
		tb.Fatal(err)
	}
	p, err := loadState(dir)
	if err != nil {
		tb.Fatal(err)
	}
	p.Attrs.Heartbeat = Duration(time.Hour) // no heartbeats during the benchmark
	p.Attrs.KeyGrace = Duration(time.Second)
	spec := simSpec{}
	now := time.Now().UTC()
	for i := range n {
		pub, priv, err := box.GenerateKey(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		id := uuid.New()
		addr := benchAddr(i)
		// Upgraded: a cluster that has finished migrating (otherwise each
		// MOM's first PING-only login marks it, a registry save each).
		p.Nodes = append(p.Nodes, nodeRecord{Name: fmt.Sprintf("sim%05d", i), ID: id.String(), Mom: addr, Port: DefaultMomPort,
			Pub: base64.StdEncoding.EncodeToString(pub[:]), Created: now, Enrolled: &now, Upgraded: true})
		spec.Nodes = append(spec.Nodes, simNode{ID: id, Addr: addr, Priv: priv[:]})
	}
	if err := saveState(dir, p); err != nil {
		tb.Fatal(err)
	}
	log := logrus.New()
	log.SetLevel(logrus.ErrorLevel)
	srv, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: log, KeyTimeout: time.Minute, HandshakeTimeout: time.Minute,
		Replicate: benchReplicate(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	env.srv = srv
	ctx, cancel := context.WithCancel(context.Background())
	env.cancel, env.done = cancel, make(chan error, 1)
	go func() { env.done <- srv.Run(ctx) }()
	spec.Server = srv.Addr().String()
	spec.ServerKey = srv.ident.Public[:]
	data, _ := json.Marshal(spec)
	specPath := filepath.Join(dir, "sim.json")
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		tb.Fatal(err)
	}
	env.child = exec.Command(os.Args[0], "-test.run=^TestSimulatedMOMs$", "-test.v=false")
	env.child.Env = append(os.Environ(), simEnv+"="+specPath)
	env.child.Stderr = os.Stderr
	out, err := env.child.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	in, err := env.child.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	env.stdin = in
	if err := env.child.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			env.lines <- sc.Text()
		}
		close(env.lines)
	}()
	env.expect(tb, "ready", 5*time.Minute)
	// Every MOM is registered once the machine has seen it connect.
	deadline := time.Now().Add(time.Minute)
	for {
		srv.mu.Lock()
		up := len(srv.conns)
		srv.mu.Unlock()
		if up == n {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d simulated MOMs registered", up, n)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not synchronisation
	}
	return env
}

// expect waits for the child to print want (a line prefix).
func (e *benchEnv) expect(tb testing.TB, want string, timeout time.Duration) {
	tb.Helper()
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case l, ok := <-e.lines:
			if !ok {
				tb.Fatalf("simulated MOMs exited before %q", want)
			}
			if strings.HasPrefix(l, "error") {
				tb.Fatalf("simulated MOMs: %s", l)
			}
			if strings.HasPrefix(l, want) {
				return
			}
		case <-t.C:
			tb.Fatalf("no %q from the simulated MOMs within %s", want, timeout)
		}
	}
}

func (e *benchEnv) close() {
	e.stdin.Close()
	_ = e.child.Wait()
	e.cancel()
	<-e.done
	os.RemoveAll(e.dir)
}

// rotateOnce runs one full rotation and returns the time to every MOM
// having activated the new key (distribute, ack, activate) and to every
// MOM having retired the old one. With skipGrace the grace period is
// ended at once; otherwise the server's clock ends it (key_grace is 1 s,
// its minimum).
func (e *benchEnv) rotateOnce(tb testing.TB, skipGrace bool) (activated, retired time.Duration) {
	start := time.Now()
	info, err := e.srv.rot.rotate("bench")
	if err != nil {
		tb.Fatal(err)
	}
	e.expect(tb, "activated "+info.NewKey, 5*time.Minute)
	activated = time.Since(start)
	t1 := time.Now()
	if !skipGrace {
		e.expect(tb, "retired "+info.OldKey, 5*time.Minute)
		return activated, time.Since(t1)
	}
	if err := e.srv.rot.event(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) {
		return m.Tick(now.Add(time.Hour))
	}); err != nil {
		tb.Fatal(err)
	}
	e.expect(tb, "retired "+info.OldKey, 5*time.Minute)
	retired = time.Since(t1)
	if in := e.srv.rot.info(); in.Phase != string(rotation.Idle) {
		tb.Fatalf("phase %s after the rotation", in.Phase)
	}
	return activated, retired
}

// BenchmarkRotationLoopback: a full rotation of N MOMs over loopback TCP.
// ns/op is distribute to retire without the grace period; the metrics
// split it, and count the bytes the server wrote and read.
func BenchmarkRotationLoopback(b *testing.B) { benchLoopback(b, true) }

// BenchmarkRotationLoopbackWithGrace is the same with the grace period
// (key_grace=1s, its minimum) run by the server's own clock: wall time
// from rotate key to the old key retired on every MOM.
func BenchmarkRotationLoopbackWithGrace(b *testing.B) { benchLoopback(b, false) }

func benchLoopback(b *testing.B, skipGrace bool) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			env := newBenchEnv(b, n)
			defer env.close()
			st := &env.srv.rot.stats
			out0, in0 := st.bytesOut.Load(), st.bytesIn.Load()
			var act, ret time.Duration
			b.ResetTimer()
			for range b.N {
				a, r := env.rotateOnce(b, skipGrace)
				act += a
				ret += r
			}
			b.StopTimer()
			b.ReportMetric(float64(act.Milliseconds())/float64(b.N), "ms-to-activate")
			b.ReportMetric(float64(ret.Milliseconds())/float64(b.N), "ms-to-retire")
			b.ReportMetric(float64(st.bytesOut.Load()-out0)/float64(b.N), "B-sent/rotation")
			b.ReportMetric(float64(st.bytesIn.Load()-in0)/float64(b.N), "B-received/rotation")
			if d := st.dropped.Load(); d != 0 {
				b.Fatalf("%d sends to nodes not connected", d)
			}
		})
	}
}

// TestRotationLoopback runs the benchmark's setup and two rotations with a
// few simulated MOMs, as a test.
func TestRotationLoopback(t *testing.T) {
	env := newBenchEnv(t, 20)
	defer env.close()
	first := env.srv.ring.Load().Active().ID
	env.rotateOnce(t, true)
	env.rotateOnce(t, false)
	ring := env.srv.ring.Load()
	if ring.Len() != 1 || ring.Active().ID == first {
		t.Fatalf("server keyring after two rotations: %v", ring.Keys())
	}
	if in := env.srv.rot.info(); in.Seq != 2 || in.Behind != 0 {
		t.Fatalf("rotation info %+v", in)
	}
}

// TestSimulatedMOMs is the child process of the loopback benchmark; it is
// skipped unless MOMGATE_BENCH_SIM_SPEC names a spec. It prints "ready"
// when every MOM is connected, "activated KEY" when every MOM seals with
// KEY, "retired KEY" when every MOM has dropped KEY, and exits when its
// standard input closes.
func TestSimulatedMOMs(t *testing.T) {
	path := os.Getenv(simEnv)
	if path == "" {
		t.Skip("child process of BenchmarkRotationLoopback")
	}
	err := runSimulatedMOMs(path)
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	os.Exit(0)
}

type simMOM struct {
	node    simNode
	id      proto.NodeID
	conn    net.Conn
	ring    *keys.Holder
	wrapper *keys.Wrapper
}

type simCounters struct {
	mu        sync.Mutex
	n         int
	activated map[keys.KeyID]int
	retired   map[keys.KeyID]int
}

func (c *simCounters) count(m map[keys.KeyID]int, what string, id keys.KeyID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m[id]++
	if m[id] == c.n {
		fmt.Printf("%s %s\n", what, id)
	}
}

func runSimulatedMOMs(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var spec simSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return err
	}
	var serverKey [32]byte
	copy(serverKey[:], spec.ServerKey)
	moms := make([]*simMOM, len(spec.Nodes))
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(moms))
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(moms) {
					return
				}
				m, err := connectSim(spec.Server, &serverKey, spec.Nodes[i])
				if err != nil {
					errs <- fmt.Errorf("node %d (%s): %w", i, spec.Nodes[i].Addr, err)
					return
				}
				moms[i] = m
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	counters := &simCounters{n: len(moms), activated: map[keys.KeyID]int{}, retired: map[keys.KeyID]int{}}
	fail := make(chan error, 1)
	for _, m := range moms {
		go func() {
			if err := m.serve(counters); err != nil {
				select {
				case fail <- err:
				default:
				}
			}
		}()
	}
	fmt.Println("ready")
	stdin := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdin)
	}()
	select {
	case <-stdin:
		return nil
	case err := <-fail:
		return err
	}
}

// connectSim runs a MOM's handshake: Hello, Welcome, PING swap.
func connectSim(server string, serverKey *[32]byte, nd simNode) (*simMOM, error) {
	d := net.Dialer{Timeout: time.Minute, LocalAddr: &net.TCPAddr{IP: net.ParseIP(nd.Addr)}}
	c, err := d.Dial("tcp", server)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	_ = c.SetDeadline(deadline)
	var priv [32]byte
	copy(priv[:], nd.Priv)
	m := &simMOM{node: nd, id: proto.NodeID(nd.ID), conn: c, wrapper: keys.NewWrapper(serverKey, &priv)}
	frame, err := proto.ReadFrameLimit(c, nil, handshake.PreAuthMaxFrame)
	if err != nil {
		return nil, err
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, err
	}
	sh, ok := msg.(*proto.ServerHello)
	if !ok {
		return nil, fmt.Errorf("got %s, want ServerHello", msg.Type())
	}
	proof := proto.HelloProof{Challenge: sh.Challenge, IMPort: DefaultMomPort, Versions: proto.VersionBitV2}
	h := &proto.Hello{NodeID: m.id}
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		return nil, err
	}
	h.Sealed = box.Seal(nil, proof.Marshal(), &h.Nonce, serverKey, &priv)
	if err := proto.WriteFrame(c, h); err != nil {
		return nil, err
	}
	if frame, err = proto.ReadFrameLimit(c, nil, handshake.PreAuthMaxFrame); err != nil {
		return nil, err
	}
	if msg, err = proto.Unmarshal(frame); err != nil {
		return nil, err
	}
	w, ok := msg.(*proto.Welcome)
	if !ok {
		return nil, fmt.Errorf("got %v, want Welcome", msg)
	}
	ring := keys.NewKeyring()
	for _, pw := range w.Keys {
		k, err := m.wrapper.Unwrap(keys.WrappedKey{ID: keys.KeyID(pw.KeyID), State: keys.State(pw.State), Nonce: pw.Nonce, Sealed: pw.Sealed}, time.Now())
		if err != nil {
			return nil, err
		}
		if ring, err = ring.WithKey(k); err != nil {
			return nil, err
		}
	}
	m.ring = keys.NewHolder(ring)
	stamper, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
	if err != nil {
		return nil, err
	}
	sealer := &ping.Sealer{Keys: m.ring, Stamper: stamper, Rand: rand.Reader, Node: m.id}
	verifier := &ping.Verifier{Keys: m.ring, Guard: ping.NewGuard(ping.GuardConfig{}, nil), Now: time.Now}
	var res ping.Result
	if err := daemon.InitiateSwap(c, sealer, verifier, deadline, &res); err != nil {
		return nil, err
	}
	return m, c.SetDeadline(time.Time{})
}

// serve applies the server's key messages until the connection ends.
func (m *simMOM) serve(counters *simCounters) error {
	buf := make([]byte, 0, 256)
	for {
		frame, err := proto.ReadFrameLimit(m.conn, buf[:cap(buf)], 1<<20)
		if err != nil {
			return nil // the benchmark is over
		}
		msg, err := proto.Unmarshal(frame)
		if err != nil {
			return err
		}
		ring := m.ring.Load()
		switch v := msg.(type) {
		case *proto.KeyUpdate:
			k, err := m.wrapper.Unwrap(keys.WrappedKey{ID: keys.KeyID(v.Key.KeyID), State: keys.State(v.Key.State),
				Nonce: v.Key.Nonce, Sealed: v.Key.Sealed}, time.Now())
			if err != nil {
				return err
			}
			if ring, _, err = rotation.ApplyUpdate(ring, k); err != nil {
				return err
			}
			m.ring.Store(ring)
			if err := proto.WriteFrame(m.conn, &proto.KeyAck{Rotation: v.Rotation, KeyID: v.Key.KeyID}); err != nil {
				return err
			}
		case *proto.KeyActivate:
			if ring, _, err = rotation.ApplyActivate(ring, keys.KeyID(v.KeyID)); err != nil {
				return err
			}
			m.ring.Store(ring)
			counters.count(counters.activated, "activated", keys.KeyID(v.KeyID))
		case *proto.KeyRetire:
			if ring, _, err = rotation.ApplyRetire(ring, keys.KeyID(v.KeyID)); err != nil {
				return err
			}
			m.ring.Store(ring)
			counters.count(counters.retired, "retired", keys.KeyID(v.KeyID))
		}
	}
}

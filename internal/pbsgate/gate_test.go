package pbsgate

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/pbsauth"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// members is a registry of node ids and addresses, with a deny set.
type members struct {
	mu     sync.Mutex
	addrs  map[proto.NodeID]proto.Addr
	names  map[proto.NodeID]string
	denied map[proto.NodeID]bool
	gen    uint64
}

func (m *members) Admit(id proto.NodeID, a proto.Addr, _ uint32) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.denied[id]:
		return "", ping.ErrRevoked
	case m.addrs[id] == (proto.Addr{}):
		return "", pbsauth.ErrUnknownNode
	case m.addrs[id] != a:
		return "", ping.ErrAddrMismatch
	}
	return m.names[id], nil
}

// Generation counts the changes to the deny set (deny).
func (m *members) Generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// Still admits a named node at its address unless it is denied.
func (m *members) Still(name string, a proto.Addr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, n := range m.names {
		if n != name {
			continue
		}
		switch {
		case m.denied[id]:
			return ping.ErrRevoked
		case m.addrs[id] != a:
			return ping.ErrAddrMismatch
		}
		return nil
	}
	return pbsauth.ErrUnknownNode
}

// deny denies node id, as a delete node does.
func (m *members) deny(id proto.NodeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.denied[id] = true
	m.gen++
}

// daemon is one host's engine served on its own socket.
type daemon struct {
	sock  string
	addr  proto.Addr
	audit *audit.Log
	out   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func ring(t testing.TB) *keys.Holder {
	k, err := keys.NewKey(bytes.NewReader(bytes.Repeat([]byte{7}, 64)), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	r, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return keys.NewHolder(r)
}

// startDaemon serves an engine for node id at ip on a socket in dir.
func startDaemon(t testing.TB, ctx context.Context, wg *sync.WaitGroup, dir, name, ip string, id byte, kr *keys.Holder, m *members, tweaks ...func(*Config)) *daemon {
	t.Helper()
	d := &daemon{sock: filepath.Join(dir, name+".sock"), addr: proto.AddrFrom(netip.MustParseAddr(ip)), out: &syncBuffer{}}
	d.audit = audit.New(audit.Config{Out: d.out})
	st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	self := &pbsauth.Self{Sealer: &ping.Sealer{Keys: kr, Stamper: st, Rand: rand.Reader, Node: proto.NodeID{15: id}}, Name: name}
	eng, err := pbsauth.NewEngine(pbsauth.Config{Keys: kr, Self: func() *pbsauth.Self { return self }, Addr: d.addr,
		Directory: m, Rand: rand.Reader, Freshness: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	hosts := map[string][]netip.Addr{"pbssrv": {netip.MustParseAddr("127.0.0.1")}, "pbsn1": {netip.MustParseAddr("127.0.0.11")}}
	cfg := Config{Path: d.sock, Engine: eng, Audit: d.audit, Log: log,
		Resolve: func(_ context.Context, h string) ([]netip.Addr, error) {
			if a, ok := hosts[h]; ok {
				return a, nil
			}
			return nil, errors.New("no such host")
		},
		Names: func(uid, gid uint32) (string, string, error) { return "root", "root", nil },
	}
	for _, f := range tweaks {
		f(&cfg)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := Serve(ctx, cfg); err != nil {
			t.Errorf("serve %s: %v", name, err)
		}
	}()
	waitSocket(t, d.sock)
	return d
}

func waitSocket(t testing.TB, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.Dial("unix", path)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("socket %s never answered: %v", path, err)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

type fixture struct {
	ctx            context.Context
	members        *members
	server, n1     *daemon
	stopAndWaitAll func()
}

func newFixture(t testing.TB, tweaks ...func(*Config)) *fixture {
	dir, err := os.MkdirTemp("", "pbsgate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	m := &members{addrs: map[proto.NodeID]proto.Addr{}, names: map[proto.NodeID]string{}, denied: map[proto.NodeID]bool{}}
	kr := ring(t)
	f := &fixture{ctx: ctx, members: m}
	f.server = startDaemon(t, ctx, &wg, dir, "pbssrv", "127.0.0.1", 1, kr, m, tweaks...)
	f.n1 = startDaemon(t, ctx, &wg, dir, "pbsn1", "127.0.0.11", 11, kr, m, tweaks...)
	m.addrs[proto.NodeID{15: 1}], m.names[proto.NodeID{15: 1}] = f.server.addr, "pbssrv"
	m.addrs[proto.NodeID{15: 11}], m.names[proto.NodeID{15: 11}] = f.n1.addr, "pbsn1"
	f.stopAndWaitAll = func() { cancel(); wg.Wait() }
	t.Cleanup(f.stopAndWaitAll)
	return f
}

func ask(t *testing.T, f *fixture, d *daemon, q pbsauth.Request) pbsauth.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(f.ctx, 5*time.Second)
	defer cancel()
	r, err := Ask(ctx, d.sock, &q)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// handshake runs the four requests, pbsn1 to the server host; source is
// the peer host the server's plugin names.
func handshake(t *testing.T, f *fixture, source string) (pbsauth.Response, string) {
	_, r, step := handshakeEnc(t, f, source, false)
	return r, step
}

// handshakeEnc is handshake, asking for encryption or not; it also returns
// the initiator's Continue answer.
func handshakeEnc(t *testing.T, f *fixture, source string, encrypt bool) (pbsauth.Response, pbsauth.Response, string) {
	var r3 pbsauth.Response
	r1 := ask(t, f, f.n1, pbsauth.Request{Op: pbsauth.OpInitiate, Kind: pbsauth.KindService, Host: "pbssrv", Encrypt: encrypt})
	if r1.Status != pbsauth.StatusOK {
		return r3, r1, "initiate"
	}
	r2 := ask(t, f, f.server, pbsauth.Request{Op: pbsauth.OpAccept, Kind: pbsauth.KindService, Host: source, Token: r1.Token})
	if r2.Status != pbsauth.StatusOK {
		return r3, r2, "accept"
	}
	r3 = ask(t, f, f.n1, pbsauth.Request{Op: pbsauth.OpContinue, ID: r1.ID, Token: r2.Token})
	if r3.Status != pbsauth.StatusOK {
		return r3, r3, "continue"
	}
	if r3.PeerName != "pbssrv" {
		t.Fatalf("initiator learned responder %q", r3.PeerName)
	}
	return r3, ask(t, f, f.server, pbsauth.Request{Op: pbsauth.OpConfirm, ID: r2.ID, Token: r3.Token}), "confirm"
}

// The keys of an encrypted connection reach both plugins, mirrored; the
// admission says it is encrypted.
func TestEncryptedHandshakeOverSockets(t *testing.T) {
	f := newFixture(t)
	ini, resp, step := handshakeEnc(t, f, "127.0.0.11", true)
	if resp.Status != pbsauth.StatusOK {
		t.Fatalf("refused at %s: %s: %s", step, resp.Reason, resp.Message)
	}
	if ini.Keys == nil || resp.Keys == nil || ini.Keys.Send != resp.Keys.Recv || ini.Keys.Recv != resp.Keys.Send {
		t.Fatalf("keys: initiator %v, responder %v", ini.Keys, resp.Keys)
	}
	f.server.audit.Flush()
	if out := f.server.out.String(); !bytes.Contains([]byte(out), []byte("service connection of root (uid 0), encrypted")) {
		t.Fatalf("audit log %q", out)
	}
	if _, plain, _ := handshakeEnc(t, f, "127.0.0.11", false); plain.Status != pbsauth.StatusOK || plain.Keys != nil {
		t.Fatalf("plain handshake: %+v", plain)
	}
}

func TestHandshakeOverSockets(t *testing.T) {
	f := newFixture(t)
	for _, source := range []string{"127.0.0.11", "pbsn1"} {
		r, step := handshake(t, f, source)
		if r.Status != pbsauth.StatusOK {
			t.Fatalf("%s refused at %s: %s: %s", source, step, r.Reason, r.Message)
		}
		if r.Peer.User != "root" || r.Peer.NodeName != "pbsn1" {
			t.Fatalf("peer %+v", r.Peer)
		}
	}
	if got := f.server.audit.Counters().Accepted; got != 2 {
		t.Fatalf("server audit: %d accepted, want 2", got)
	}
}

func TestRefusalIsAnsweredAndAudited(t *testing.T) {
	f := newFixture(t)
	f.members.mu.Lock()
	f.members.denied[proto.NodeID{15: 11}] = true
	f.members.mu.Unlock()
	r, step := handshake(t, f, "127.0.0.11")
	if step != "accept" || r.Status != pbsauth.StatusRefused || r.Reason != "revoked" {
		t.Fatalf("%s: %+v", step, r)
	}
	if want := "refused 127.0.0.11 (node"; !bytes.Contains([]byte(r.Message), []byte(want)) {
		t.Fatalf("message %q", r.Message)
	}
	f.server.audit.Flush()
	if c := f.server.audit.Counters(); c.Rejected["revoked"] != 1 {
		t.Fatalf("audit counters %+v", c)
	}
	if out := f.server.out.String(); !bytes.Contains([]byte(out), []byte("pbs")) || !bytes.Contains([]byte(out), []byte("revoked")) {
		t.Fatalf("audit log %q", out)
	}
	// A spoofed address: the server sees the connection from elsewhere.
	f.members.mu.Lock()
	delete(f.members.denied, proto.NodeID{15: 11})
	f.members.mu.Unlock()
	if r, step := handshake(t, f, "127.0.0.12"); step != "accept" || r.Reason != "addr_mismatch" {
		t.Fatalf("%s: %+v", step, r)
	}
	// A host nobody can resolve.
	r = ask(t, f, f.n1, pbsauth.Request{Op: pbsauth.OpInitiate, Kind: pbsauth.KindService, Host: "nowhere"})
	if r.Reason != "resolve" {
		t.Fatalf("%+v", r)
	}
}

func TestBadRequestIsClosed(t *testing.T) {
	f := newFixture(t)
	c, err := net.Dial("unix", f.n1.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET / HTTP/1.0\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	// Closed without an answer (EOF, or a reset for the unread bytes).
	n, err := c.Read(make([]byte, 16))
	var ne net.Error
	if n != 0 || err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("read %d bytes, %v: want the connection closed", n, err)
	}
}

func TestListenChecks(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(filepath.Join(open, "pbs.sock")); err == nil {
		t.Fatal("listened in a world-writable directory")
	}
	path := filepath.Join(dir, "pbs.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o666 {
		t.Fatalf("socket mode %v %v", fi.Mode(), err)
	}
	if _, err := Listen(path); err == nil {
		t.Fatal("listened on a live socket")
	}
	// A stale socket (the file without a listener) is replaced.
	ln.SetUnlinkOnClose(false)
	ln.Close()
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(path); err == nil {
		t.Fatal("replaced a regular file")
	}
}

// pbs_comm's check of an open connection: valid, then unchanged while
// nothing changes, revoked (and audited) once the node is denied; a
// daemon asked about an address that is not one refuses to check.
func TestCheckOverSockets(t *testing.T) {
	f := newFixture(t)
	if r, step := handshake(t, f, "127.0.0.11"); r.Status != pbsauth.StatusOK {
		t.Fatalf("refused at %s: %+v", step, r)
	}
	check := func(gen uint64, node, host string) pbsauth.Response {
		return ask(t, f, f.server, pbsauth.Request{Op: pbsauth.OpCheck, Gen: gen, Node: node, Host: host})
	}
	r := check(0, "pbsn1", "127.0.0.11")
	if r.Status != pbsauth.StatusOK || r.Verdict != pbsauth.VerdictValid || r.Gen == 0 {
		t.Fatalf("first check: %+v", r)
	}
	gen := r.Gen
	if r := check(gen, "pbsn1", "127.0.0.11"); r.Verdict != pbsauth.VerdictUnchanged || r.Gen != gen {
		t.Fatalf("quiet check: %+v, want unchanged at %d", r, gen)
	}
	if r := check(gen+1, "pbsn1", "127.0.0.12"); r.Verdict != pbsauth.VerdictRevoked || r.Reason != "addr_mismatch" {
		t.Fatalf("another address, another generation: %+v", r)
	}
	f.members.deny(proto.NodeID{15: 11})
	r = check(gen, "pbsn1", "127.0.0.11")
	if r.Verdict != pbsauth.VerdictRevoked || r.Reason != "revoked" || r.Gen == gen ||
		!bytes.Contains([]byte(r.Message), []byte("revoked the open connection of 127.0.0.11 (node pbsn1)")) {
		t.Fatalf("after the deny: %+v", r)
	}
	if r := check(0, "pbsn9", "127.0.0.19"); r.Verdict != pbsauth.VerdictRevoked || r.Reason != "unknown_node" {
		t.Fatalf("unknown node: %+v", r)
	}
	f.server.audit.Flush()
	if c := f.server.audit.Counters(); c.Rejected["revoked"] != 1 || c.Rejected["unknown_node"] != 1 {
		t.Fatalf("audit counters %+v", c)
	}
	if out := f.server.out.String(); !bytes.Contains([]byte(out), []byte("open connection, check")) {
		t.Fatalf("audit log %q", out)
	}
	if r := check(0, "pbsn1", "pbsn1"); r.Status != pbsauth.StatusRefused || r.Reason != "malformed" {
		t.Fatalf("a name for an address: %+v", r)
	}
}

// A connection carries a whole handshake's requests, and is closed after
// MaxRequests and when idle past IdleTimeout.
func TestSeveralRequestsOneConnection(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxRequests = 2; c.IdleTimeout = 50 * time.Millisecond })
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	ini, err := Dial(ctx, f.n1.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ini.Close()
	res, err := Dial(ctx, f.server.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	must := func(r pbsauth.Response, err error) pbsauth.Response {
		t.Helper()
		if err != nil || r.Status != pbsauth.StatusOK {
			t.Fatalf("%+v %v", r, err)
		}
		return r
	}
	r1 := must(ini.Ask(ctx, &pbsauth.Request{Op: pbsauth.OpInitiate, Kind: pbsauth.KindService, Host: "pbssrv"}))
	r2 := must(res.Ask(ctx, &pbsauth.Request{Op: pbsauth.OpAccept, Kind: pbsauth.KindService, Host: "127.0.0.11", Token: r1.Token}))
	r3 := must(ini.Ask(ctx, &pbsauth.Request{Op: pbsauth.OpContinue, ID: r1.ID, Token: r2.Token}))
	r4 := must(res.Ask(ctx, &pbsauth.Request{Op: pbsauth.OpConfirm, ID: r2.ID, Token: r3.Token}))
	if r4.Peer.NodeName != "pbsn1" || r4.Peer.User != "root" {
		t.Fatalf("peer %+v", r4.Peer)
	}
	// Two requests each: both connections are done.
	if _, err := ini.Ask(ctx, &pbsauth.Request{Op: pbsauth.OpInitiate, Kind: pbsauth.KindService, Host: "pbssrv"}); err == nil {
		t.Fatal("a third request on one connection was answered")
	}
	// Idle past IdleTimeout: closed (the read ends with EOF, not the
	// test's deadline).
	idle, err := Dial(ctx, f.server.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	must(idle.Ask(ctx, &pbsauth.Request{Op: pbsauth.OpCheck, Node: "pbsn1", Host: "127.0.0.11"}))
	_ = idle.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := idle.c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("idle connection: read %d, %v; want EOF", n, err)
	}
}

// BenchmarkHandshake: one service handshake through both daemons' sockets,
// the plugin's four requests, on connections kept between requests (as
// the plugin keeps one per thread) or one connection per request.
func BenchmarkHandshake(b *testing.B) {
	for _, kept := range []bool{true, false} {
		name := "kept"
		if !kept {
			name = "per_request"
		}
		b.Run(name, func(b *testing.B) {
			f := newFixture(b, func(c *Config) { c.MaxRequests = 1 << 30 })
			ctx := context.Background()
			var ini, res *Conn
			ask := func(c **Conn, sock string, q *pbsauth.Request) pbsauth.Response {
				if *c == nil || !kept {
					if *c != nil {
						(*c).Close()
					}
					var err error
					if *c, err = Dial(ctx, sock); err != nil {
						b.Fatal(err)
					}
				}
				r, err := (*c).Ask(ctx, q)
				if err != nil || r.Status != pbsauth.StatusOK {
					b.Fatalf("%+v %v", r, err)
				}
				return r
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r1 := ask(&ini, f.n1.sock, &pbsauth.Request{Op: pbsauth.OpInitiate, Kind: pbsauth.KindService, Host: "127.0.0.1"})
				r2 := ask(&res, f.server.sock, &pbsauth.Request{Op: pbsauth.OpAccept, Kind: pbsauth.KindService, Host: "127.0.0.11", Token: r1.Token})
				r3 := ask(&ini, f.n1.sock, &pbsauth.Request{Op: pbsauth.OpContinue, ID: r1.ID, Token: r2.Token})
				ask(&res, f.server.sock, &pbsauth.Request{Op: pbsauth.OpConfirm, ID: r2.ID, Token: r3.Token})
			}
			b.StopTimer()
			for _, c := range []*Conn{ini, res} {
				if c != nil {
					c.Close()
				}
			}
		})
	}
}

// The caller's names are looked up once per connection, not per request.
func TestNamesOncePerConnection(t *testing.T) {
	var mu sync.Mutex
	lookups := 0
	f := newFixture(t, func(c *Config) {
		c.Names = func(uint32, uint32) (string, string, error) {
			mu.Lock()
			defer mu.Unlock()
			lookups++
			return "root", "root", nil
		}
	})
	ctx, cancel := context.WithTimeout(f.ctx, 10*time.Second)
	defer cancel()
	count := func() int { mu.Lock(); defer mu.Unlock(); return lookups }
	for conn := 1; conn <= 2; conn++ {
		c, err := Dial(ctx, f.n1.sock)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			if r, err := c.Ask(ctx, &pbsauth.Request{Op: pbsauth.OpInitiate, Kind: pbsauth.KindService, Host: "pbssrv"}); err != nil || r.Status != pbsauth.StatusOK {
				t.Fatalf("%+v %v", r, err)
			}
		}
		c.Close()
		if got := count(); got != conn {
			t.Fatalf("after %d connections of 3 requests: %d lookups", conn, got)
		}
	}
}

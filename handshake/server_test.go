package handshake

import (
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

var (
	serverAddr = proto.AddrFrom(netip.MustParseAddr("127.0.0.1"))
	momAddr    = proto.AddrFrom(netip.MustParseAddr("127.0.0.2"))
	otherAddr  = proto.AddrFrom(netip.MustParseAddr("127.0.0.3"))
)

// peer is one side's PING state over a shared keyring.
type peer struct {
	sealer   *ping.Sealer
	verifier *ping.Verifier
}

func newPeer(t *testing.T, ring *keys.Holder, node proto.NodeID) *peer {
	t.Helper()
	st, err := ping.NewStamper(time.Now, &ping.MemCeiling{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &peer{
		sealer:   &ping.Sealer{Keys: ring, Stamper: st, Rand: rand.Reader, Node: node},
		verifier: &ping.Verifier{Keys: ring, Guard: ping.NewGuard(ping.GuardConfig{}, nil), Now: time.Now},
	}
}

// fakeRegistry is a registry of one node, n1 at momAddr.
type fakeRegistry struct {
	t       *testing.T
	srv     *fakeServer
	mode    proto.Mode
	node    proto.NodeID
	nodePub [32]byte
	refuse  error // returned by Enroll, NodeKey and LegacyHello when set
	// sealedBefore plays a node marked as speaking sealed sessions.
	sealedBefore bool
	// what the server half told it
	enrolled, helloed, legacy, speaks bool
}

func (r *fakeRegistry) Mode() proto.Mode { return r.mode }

func (r *fakeRegistry) LegacyHello(h *proto.LegacyHello, src netip.Addr, mode proto.Mode) error {
	r.legacy = true
	return r.refuse
}

func (r *fakeRegistry) Enroll(e *proto.Enroll, proof *proto.EnrollProof, src netip.Addr) error {
	r.enrolled = true
	r.nodePub = e.NodeKey
	return r.refuse
}

func (r *fakeRegistry) NodeKey(id proto.NodeID, src netip.Addr) ([32]byte, string, error) {
	if id != r.node {
		return [32]byte{}, "", Refuse(reasons.UnknownNode, "no enrolled node with id %x", id)
	}
	return r.nodePub, "n1", r.refuse
}

func (r *fakeRegistry) Hello(proof *proto.HelloProof) { r.helloed = true }

func (r *fakeRegistry) Sessions(speaks bool) (uint8, error) {
	r.speaks = speaks
	if r.sealedBefore && !speaks {
		return 0, Refuse(reasons.SessionDowngrade, "node spoke sealed sessions before")
	}
	return 2, nil
}

func (r *fakeRegistry) Welcome(enrolling bool, claims []uint32) (*proto.Welcome, error) {
	w := r.srv.welcome(r.t, r.nodePub)
	w.NodeID = r.node
	return w, nil
}

// cluster is a server and a MOM sharing the fake server's cluster key.
type cluster struct {
	srv      *fakeServer
	ring     *keys.Holder
	serverID proto.NodeID
	server   *peer
	mom      *peer
	reg      *fakeRegistry
}

func newCluster(t *testing.T) *cluster {
	srv := newFakeServer(t)
	srv.key.State = keys.StateActive
	ring, err := keys.NewKeyring().WithKey(srv.key)
	if err != nil {
		t.Fatal(err)
	}
	h := keys.NewHolder(ring)
	c := &cluster{srv: srv, ring: h, serverID: proto.NodeID{1}}
	c.server = newPeer(t, h, c.serverID)
	c.mom = newPeer(t, h, proto.NodeID{9})
	c.reg = &fakeRegistry{t: t, srv: srv, mode: proto.ModePing, node: proto.NodeID{9}}
	return c
}

func (c *cluster) params() *ServerParams {
	return &ServerParams{ID: c.serverID, Ident: c.srv.ident, Rand: rand.Reader, Sealer: c.server.sealer, Verifier: c.server.verifier}
}

// serve runs Serve on one end of a pipe; the test plays the MOM on the other.
func (c *cluster) serve(t *testing.T) (net.Conn, chan result) {
	t.Helper()
	return c.serveWith(t, c.params())
}

// serveWith is serve with the server's parameters p.
func (c *cluster) serveWith(t *testing.T, p *ServerParams) (net.Conn, chan result) {
	t.Helper()
	return c.serveReg(t, p, c.reg)
}

// serveReg is serveWith against the registry reg.
func (c *cluster) serveReg(t *testing.T, p *ServerParams, reg Registry) (net.Conn, chan result) {
	t.Helper()
	momEnd, srvEnd := net.Pipe()
	t.Cleanup(func() { momEnd.Close(); srvEnd.Close() })
	_ = momEnd.SetDeadline(time.Now().Add(10 * time.Second))
	_ = srvEnd.SetDeadline(time.Now().Add(10 * time.Second))
	done := make(chan result, 1)
	go func() {
		a, err := Serve(srvEnd, momAddr, serverAddr, p, reg)
		if rj, ok := err.(*Rejection); ok && rj.Answer != nil {
			_ = proto.WriteFrame(srvEnd, rj.Answer)
		}
		srvEnd.Close()
		done <- result{a, err}
	}()
	return momEnd, done
}

type result struct {
	a   *Admitted
	err error
}

func TestServeEnrollHelloAndSwap(t *testing.T) {
	c := newCluster(t)
	p := params(t, c.srv.ident.Public)
	// First start: Enroll, Welcome, swap.
	conn, done := c.serve(t)
	sh, w, err := Authenticate(conn, p)
	if err != nil {
		t.Fatal(err)
	}
	if sh.ServerID != c.serverID || sh.Versions != migration.ServerVersions(proto.ModePing) {
		t.Fatalf("server hello %+v", sh)
	}
	if _, err := Keyring(w, &sh.ServerKey, p.Ident, time.Now()); err != nil {
		t.Fatal(err)
	}
	var res ping.Result
	if err := Initiate(conn, serverAddr, momAddr, c.mom.sealer, c.mom.verifier, &res); err != nil {
		t.Fatal(err)
	}
	if res.Node != c.serverID {
		t.Fatalf("server's reply names %x", res.Node)
	}
	r := <-done
	if r.err != nil || r.a.Version != proto.V2 || r.a.Node != w.NodeID || !r.a.Enrolled || keys.KeyID(r.a.KeyID) != c.srv.key.ID || !c.reg.enrolled {
		t.Fatalf("enrollment: %+v %v", r.a, r.err)
	}
	// Later start: Hello by identity.
	p.Token, p.NodeID, p.ServerKey = nil, c.reg.node, c.srv.ident.Public
	conn, done = c.serve(t)
	if _, _, err := Authenticate(conn, p); err != nil {
		t.Fatal(err)
	}
	if err := Initiate(conn, serverAddr, momAddr, c.mom.sealer, c.mom.verifier, &res); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || r.a.Version != proto.V2 || r.a.Enrolled || !c.reg.helloed {
		t.Fatalf("hello: %+v %v", r.a, r.err)
	}
}

// TestServeRefusals: each refusal of the server half has its reason, and
// the Reject the peer reads has the reason's code.
func TestServeRefusals(t *testing.T) {
	type mom func(t *testing.T, c *cluster, conn net.Conn) error
	sendFrame := func(m proto.Message) mom {
		return func(t *testing.T, c *cluster, conn net.Conn) error {
			if _, err := ReadServerHello(conn); err != nil {
				return err
			}
			return proto.WriteFrame(conn, m)
		}
	}
	hello := func(t *testing.T, c *cluster, conn net.Conn) error {
		p := params(t, c.srv.ident.Public)
		p.Token, p.NodeID, p.ServerKey = nil, c.reg.node, c.srv.ident.Public
		_, _, err := Authenticate(conn, p)
		return err
	}
	for _, tc := range []struct {
		name   string
		mode   proto.Mode
		refuse error
		mom    mom
		want   reasons.Reason
		code   proto.RejectCode // 0: no Reject is sent
	}{
		{"v1 in ping mode", proto.ModePing, nil, sendFrame(&proto.LegacyHello{Versions: proto.VersionBitV1}), reasons.V1Refused, proto.RejectNotAllowed},
		{"v2 in legacy mode", proto.ModeLegacy, nil, hello, reasons.V2Refused, proto.RejectNotAllowed},
		{"not a hello", proto.ModePing, nil, sendFrame(&proto.IMPoll{Ver: proto.V2, Job: "j"}), reasons.Malformed, proto.RejectMalformed},
		{"registry refuses", proto.ModePing, Refuse(reasons.Revoked, "node n1 is revoked"), hello, reasons.Revoked, proto.RejectRevoked},
		{"hello of an unknown node", proto.ModePing, nil, sendFrame(&proto.Hello{NodeID: proto.NodeID{7}}), reasons.UnknownNode, proto.RejectUnknownNode},
		{"hello that does not open", proto.ModePing, nil, sendFrame(&proto.Hello{NodeID: proto.NodeID{9}, Sealed: []byte("not a box")}), reasons.Auth, proto.RejectAuth},
		{"peer closes", proto.ModePing, nil, func(t *testing.T, c *cluster, conn net.Conn) error {
			_, err := ReadServerHello(conn)
			conn.Close()
			return err
		}, reasons.Closed, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t)
			c.reg.mode, c.reg.refuse = tc.mode, tc.refuse
			conn, done := c.serve(t)
			err := tc.mom(t, c, conn)
			var got *proto.Reject
			var peerRj *RejectError
			if errors.As(err, &peerRj) {
				got = &proto.Reject{Code: peerRj.Code, Reason: peerRj.Reason}
			} else if err != nil {
				t.Fatal(err)
			} else if tc.code != 0 {
				frame, err := proto.ReadFrame(conn, nil)
				if err == nil {
					m, _ := proto.Unmarshal(frame)
					got, _ = m.(*proto.Reject)
				}
			}
			r := <-done
			var rj *Rejection
			if !errors.As(r.err, &rj) || rj.Reason != tc.want {
				t.Fatalf("Serve: %v, want a %s rejection", r.err, tc.want)
			}
			if tc.code == 0 {
				if rj.Answer != nil {
					t.Fatalf("answer %+v to a peer that left", rj.Answer)
				}
				return
			}
			if got == nil || got.Code != tc.code || !strings.Contains(got.Reason, rj.Err.Error()) {
				t.Fatalf("peer read %+v, want code %d with %q", got, tc.code, rj.Err)
			}
		})
	}
}

// TestServeNodeMismatch: a swap whose PING names another node than the
// hello is refused after the swap.
func TestServeNodeMismatch(t *testing.T) {
	c := newCluster(t)
	p := params(t, c.srv.ident.Public)
	conn, done := c.serve(t)
	if _, _, err := Authenticate(conn, p); err != nil {
		t.Fatal(err)
	}
	impostor := newPeer(t, c.ring, proto.NodeID{5})
	var res ping.Result
	if err := Initiate(conn, serverAddr, momAddr, impostor.sealer, impostor.verifier, &res); err != nil {
		t.Fatal(err)
	}
	frame, err := proto.ReadFrame(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := proto.Unmarshal(frame)
	if rj, ok := m.(*proto.Reject); !ok || rj.Code != proto.RejectAuth {
		t.Fatalf("after the swap: %v, want Reject code %d", m, proto.RejectAuth)
	}
	r := <-done
	var rj *Rejection
	if !errors.As(r.err, &rj) || rj.Reason != reasons.NodeMismatch {
		t.Fatalf("Serve: %v, want node_mismatch", r.err)
	}
}

func TestSwapRefusalIsAnsweredOnce(t *testing.T) {
	c := newCluster(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	done := make(chan error, 1)
	go func() {
		frame, err := proto.ReadFrameLimit(b, nil, PreAuthMaxFrame)
		if err == nil {
			var res ping.Result
			// The Ping names momAddr; the responder sees it from otherAddr.
			err = Respond(b, frame, otherAddr, serverAddr, c.server.sealer, c.server.verifier, &res)
		}
		b.Close()
		done <- err
	}()
	var res ping.Result
	err := Initiate(a, serverAddr, momAddr, c.mom.sealer, c.mom.verifier, &res)
	var rj *RejectError
	if !errors.As(err, &rj) || rj.Code != proto.RejectAddrMismatch {
		t.Fatalf("initiator: %v, want an address mismatch Reject", err)
	}
	if rerr := <-done; !errors.Is(rerr, ping.ErrAddrMismatch) {
		t.Fatalf("responder: %v", rerr)
	}
	if _, err := proto.ReadFrame(a, nil); !errors.Is(err, io.EOF) {
		t.Fatalf("after the Reject: %v, want the end of the connection", err)
	}
}

// gatedRegistry is fakeRegistry with a HelloGate that counts its calls
// and releases, or refuses.
type gatedRegistry struct {
	*fakeRegistry
	taken, released int
	refuse          *Rejection
	opened          int // OpenHello calls
}

// OpenHello is a HelloOpener with the precomputed key of the fake node.
func (g *gatedRegistry) OpenHello(sealed []byte, nonce *[24]byte) ([]byte, bool) {
	g.opened++
	return box.Open(nil, sealed, nonce, &g.nodePub, &g.srv.ident.Private)
}

func (g *gatedRegistry) AfterHello() (func(), *Rejection) {
	if g.refuse != nil {
		return nil, g.refuse
	}
	g.taken++
	return func() { g.released++ }, nil
}

// A registry's HelloGate is asked once per handshake, after the first
// frame and before the work, and its slot is released when the handshake
// ends; its refusal reaches the MOM as the Reject of its reason.
func TestServeHelloGate(t *testing.T) {
	c := newCluster(t)
	p := params(t, c.srv.ident.Public)
	run := func(reg *gatedRegistry) (net.Conn, chan result) { return c.serveReg(t, c.params(), reg) }
	reg := &gatedRegistry{fakeRegistry: c.reg}
	conn, done := run(reg)
	sh, w, err := Authenticate(conn, p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Keyring(w, &sh.ServerKey, p.Ident, time.Now()); err != nil {
		t.Fatal(err)
	}
	var res ping.Result
	if err := Initiate(conn, serverAddr, momAddr, c.mom.sealer, c.mom.verifier, &res); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || reg.taken != 1 || reg.released != 1 {
		t.Fatalf("gated enrollment: %v, slot taken %d released %d, want 1 and 1", r.err, reg.taken, reg.released)
	}
	busy := &gatedRegistry{fakeRegistry: c.reg, refuse: Refuse(reasons.HandshakeTimeout, "server busy")}
	conn, done = run(busy)
	p.Token, p.NodeID, p.ServerKey = nil, c.reg.node, c.srv.ident.Public
	_, _, err = Authenticate(conn, p)
	if r := <-done; RejectionOf(r.err).Reason != reasons.HandshakeTimeout {
		t.Fatalf("gate refusal on the server: %v", r.err)
	}
	if err == nil || !strings.Contains(err.Error(), "server busy") {
		t.Fatalf("gate refusal at the MOM: %v, want the Reject naming it", err)
	}
	// A Hello through a registry that opens it (HelloOpener) is opened by
	// the registry, once.
	opener := &gatedRegistry{fakeRegistry: c.reg}
	conn, done = run(opener)
	if _, _, err := Authenticate(conn, p); err != nil {
		t.Fatal(err)
	}
	if err := Initiate(conn, serverAddr, momAddr, c.mom.sealer, c.mom.verifier, &res); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.err != nil || opener.opened != 1 || opener.taken != 1 || opener.released != 1 {
		t.Fatalf("hello through the opener: %v, opened %d, slot %d/%d", r.err, opener.opened, opener.taken, opener.released)
	}
}

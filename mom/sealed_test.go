package mom

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
	"github.com/momgate/momgate/tools/fuzzcorpus"
)

// sessionsMom is a MOM with only what its sealed-session state needs.
func sessionsMom(t *testing.T) *Mom {
	t.Helper()
	m := &Mom{cfg: Config{StateDir: t.TempDir()}, log: testLogger()}
	if err := m.loadSessions(); err != nil {
		t.Fatal(err)
	}
	return m
}

func testLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

var (
	nodeA = proto.NodeID{0xa}
	nodeB = proto.NodeID{0xb}
	addrA = markAddr("127.0.0.10")
	addrB = markAddr("127.0.0.11")
)

func markAddr(s string) proto.Addr {
	a, err := proto.ParseAddr(s)
	if err != nil {
		panic(err)
	}
	return a
}

// TestSessionsStatePersists: im_security, the server's mark and the
// sisters' marks survive a restart; a replace from the server is exact.
func TestSessionsStatePersists(t *testing.T) {
	m := sessionsMom(t)
	if m.imMin() != session.None || m.serverSealed() {
		t.Fatal("a new MOM has state")
	}
	if err := m.setIMSecurity(uint8(session.Encrypt)); err != nil {
		t.Fatal(err)
	}
	m.markServerSealed()
	m.markPeer(nodeA, addrA)
	if err := m.setIMSecurity(7); err == nil {
		t.Fatal("im_security 7 accepted")
	}
	again := &Mom{cfg: m.cfg, log: m.log}
	if err := again.loadSessions(); err != nil {
		t.Fatal(err)
	}
	if again.imMin() != session.Encrypt || !again.serverSealed() || again.sess.marks.MayFallback(addrA) {
		t.Fatalf("after a restart: im_security %s, server sealed %v", again.imMin(), again.serverSealed())
	}
	// The server's set replaces the MOM's own marks; remove forgets.
	if err := again.applySealedNodes(&proto.SealedNodes{Op: proto.UpgradedReplace, Entries: []proto.NodeAddr{{Node: nodeB, Addr: addrB}}}); err != nil {
		t.Fatal(err)
	}
	if !again.sess.marks.MayFallback(addrA) || again.sess.marks.MayFallback(addrB) {
		t.Fatal("replace is not the whole set")
	}
	if err := again.sess.marks.CheckPlain(nodeB, proto.Addr{}); err == nil {
		t.Fatal("a node of the server's set may send a plain Ping")
	}
	if err := again.applySealedNodes(&proto.SealedNodes{Op: proto.UpgradedRemove, Entries: []proto.NodeAddr{{Node: nodeB, Addr: addrB}}}); err != nil {
		t.Fatal(err)
	}
	if err := again.sess.marks.CheckPlain(nodeB, addrB); err != nil {
		t.Fatalf("removed mark still refuses: %v", err)
	}
	if err := again.applySealedNodes(&proto.SealedNodes{Op: 9}); err == nil {
		t.Fatal("op 9 accepted")
	}
}

// TestSecurityFrames: the frames refused on an unsealed connection both
// ends could have sealed, and those refused on any unsealed one.
func TestSecurityFrames(t *testing.T) {
	for _, msg := range []proto.Message{&proto.Deny{}, &proto.DenySet{}, &proto.DenyLift{}, &proto.ModeMsg{Mode: proto.ModePing},
		&proto.NodeUpgraded{Op: 1}, &proto.KeyActivate{}, &proto.KeyRetire{}, &proto.IMSecurity{}, &proto.SealedNodes{Op: 1}, &proto.ClusterAddrs{}} {
		if !securityFrame(msg) {
			t.Errorf("%s is not a security frame", msg.Type())
		}
	}
	for _, msg := range []proto.Message{&proto.NodeAddress{}, &proto.KeyUpdate{}, &proto.FloorAnswer{}} {
		if securityFrame(msg) {
			t.Errorf("%s is a security frame", msg.Type())
		}
	}
	if !sealedOnly(&proto.IMSecurity{}) || !sealedOnly(&proto.SealedNodes{}) || sealedOnly(&proto.Deny{}) {
		t.Fatal("sealed-only frames")
	}
}

func sessionsSeeds() []fuzzcorpus.Seed {
	good, _ := json.Marshal(sessionsState{Format: 1, ServerSealed: true, IMSecurity: "encrypt",
		Marks: []markEntry{{Node: "0a000000-0000-0000-0000-000000000000"}, {Addr: "127.0.0.10"}}})
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("valid", good),
		fuzzcorpus.Bytes("never_heard", []byte(`{"format":1,"server_sealed":false,"marks":[]}`)),
		fuzzcorpus.Bytes("bad_protection", []byte(`{"format":1,"server_sealed":false,"im_security":"strong","marks":[]}`)),
		fuzzcorpus.Bytes("empty_mark", []byte(`{"format":1,"server_sealed":false,"marks":[{}]}`)),
		fuzzcorpus.Bytes("bad_addr", []byte(`{"format":1,"server_sealed":false,"marks":[{"addr":"10.0.0"}]}`)),
		fuzzcorpus.Bytes("format_2", []byte(`{"format":2,"server_sealed":false,"marks":[]}`)),
		fuzzcorpus.Bytes("unknown_field", []byte(`{"format":1,"server_sealed":false,"marks":[],"x":1}`)),
	}
}

// FuzzDecodeSessions: no sessions.json crashes the loader; one that loads
// saves and loads again to the same state.
func FuzzDecodeSessions(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var st sessionsState
		if err := strictjson.Decode(b, &st); err != nil {
			return
		}
		d, err := decodeSessions(st)
		if err != nil {
			return
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, sessionsFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		m := &Mom{cfg: Config{StateDir: dir}, log: testLogger()}
		if err := m.loadSessions(); err != nil {
			t.Fatalf("decodes but does not load: %v", err)
		}
		m.sess.mu.Lock()
		err = m.saveSessionsLocked()
		m.sess.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		again := &Mom{cfg: m.cfg, log: m.log}
		if err := again.loadSessions(); err != nil {
			t.Fatalf("saved state does not load: %v", err)
		}
		if again.sess.imSecurity != d.imSecurity || again.sess.heard != d.heard || again.sess.serverSealed != st.ServerSealed ||
			len(again.sess.marks.Snapshot()) != len(m.sess.marks.Snapshot()) {
			t.Fatal("round trip changed the state")
		}
	})
}

func TestSessionsSeedCorpus(t *testing.T) { fuzzcorpus.Check(t, "FuzzDecodeSessions", sessionsSeeds()) }

// fakeConn is a net.Conn with only its addresses, for mayFallback.
type fakeConn struct {
	net.Conn
	remote, local net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.remote }
func (c fakeConn) LocalAddr() net.Addr  { return c.local }

// TestSessionsStateHeldAfterLoss: a MOM whose sessions.json was lost
// (statecheck.StepSessionsHold) refuses every fallback to an unsealed
// swap and asks the strongest IM protection until it hears im_security,
// saves nothing meanwhile, and is released by the server's replace of
// the set of sealed nodes, which it then saves.
func TestSessionsStateHeldAfterLoss(t *testing.T) {
	dir := t.TempDir()
	st := &daemon.State{Verdict: statecheck.Verdict{Action: statecheck.Recover, Steps: []statecheck.Step{statecheck.StepSessionsHold}}}
	m := &Mom{cfg: Config{StateDir: dir}, log: testLogger(), base: &daemon.Base{State: st}}
	if err := m.loadSessions(); err != nil {
		t.Fatal(err)
	}
	if m.imMin() != session.Encrypt {
		t.Fatalf("imMin while held and not heard: %v", m.imMin())
	}
	c := fakeConn{remote: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 9), Port: 1}, local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 2}}
	refusal := &handshake.RejectError{Code: proto.RejectMalformed}
	if ok, why := m.mayFallback(c, refusal); ok || !errors.Is(why, session.ErrDowngrade) {
		t.Fatalf("fallback while held: %v %v", ok, why)
	}
	if err := m.setIMSecurity(uint8(session.None)); err != nil {
		t.Fatal(err)
	}
	if m.imMin() != session.None {
		t.Fatalf("imMin once heard: %v", m.imMin())
	}
	m.markServerSealed()
	if _, err := os.Stat(filepath.Join(dir, sessionsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("sessions.json written while held: %v", err)
	}
	if err := m.applySealedNodes(&proto.SealedNodes{Op: proto.UpgradedReplace}); err != nil {
		t.Fatal(err)
	}
	if ok, why := m.mayFallback(c, refusal); !ok || why != nil {
		t.Fatalf("fallback to a sister not in the server's set, released: %v %v", ok, why)
	}
	if _, err := os.Stat(filepath.Join(dir, sessionsFile)); err != nil {
		t.Fatalf("sessions.json not saved once released: %v", err)
	}
}

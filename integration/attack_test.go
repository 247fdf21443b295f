package integration

// The attack suite of docs/SECURITY.md: each case attacks the real daemons
// on loopback and checks that the attack was refused with the right
// reason, in the audit log and in the counters, and that nothing was
// admitted. Helpers are in attackkit_test.go.

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// TestAttackReplay: a captured PING of MOM a for MOM b, replayed from a's
// address, sent to another receiver, sent from another address, and
// replayed after b was killed and restarted.
func TestAttackReplay(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	other := c.addMom("c", "127.0.0.4")
	target := b.imAddr(c.imPort)
	thief := stealKeys(t, a)

	// PINGs of a for b: older, sealed more than the replay window
	// (WindowTime) before the rest, and recent are kept, never delivered;
	// cp is delivered once and admitted, as the genuine a would be.
	older := thief.sealAged("127.0.0.2", "127.0.0.3", ping.WindowTime+time.Minute)
	recent := thief.seal("127.0.0.2", "127.0.0.3")
	cp := thief.seal("127.0.0.2", "127.0.0.3")
	if err := thief.deliver("127.0.0.2", target, cp); err != nil {
		t.Fatalf("first delivery of the capture refused: %v", err)
	}
	momCounters := func(m *momProc) func() counters { return func() counters { return c.momCounters(m) } }

	t.Run("same_address", func(t *testing.T) {
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		wantReject(t, "replay from the sender's address", thief.deliver("127.0.0.2", target, cp), proto.RejectReplay)
		waitRejected(t, "b", momCounters(b), base, "replay", 1)
		waitAudit(t, b.auditPath(), mark, "replay", "127.0.0.2", "replay")
		c.requirePeersUnchanged(t, b, peers)
	})
	t.Run("older_capture", func(t *testing.T) {
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		wantReject(t, "never-delivered older capture", thief.deliver("127.0.0.2", target, older), proto.RejectReplay)
		waitRejected(t, "b", momCounters(b), base, "replay", 1)
		waitAudit(t, b.auditPath(), mark, "replay", "127.0.0.2", "high-water mark")
		c.requirePeersUnchanged(t, b, peers)
	})
	t.Run("overtaken_capture_once", func(t *testing.T) {
		// Sealed just before cp, inside the window: what a PING overtaken
		// by a later one of the same sender looks like. Admitted once, as
		// it would have been on time, and a replay ever after.
		if err := thief.deliver("127.0.0.2", target, recent); err != nil {
			t.Fatalf("overtaken capture inside the window refused: %v", err)
		}
		base, mark := c.momCounters(b), auditMark(t, b.auditPath())
		wantReject(t, "overtaken capture again", thief.deliver("127.0.0.2", target, recent), proto.RejectReplay)
		waitRejected(t, "b", momCounters(b), base, "replay", 1)
		waitAudit(t, b.auditPath(), mark, "replay", "127.0.0.2", "replay")
	})
	t.Run("wrong_dest", func(t *testing.T) {
		peers, base, mark := c.peers(other), c.momCounters(other), auditMark(t, other.auditPath())
		wantReject(t, "capture for b sent to c", thief.deliver("127.0.0.2", other.imAddr(c.imPort), cp), proto.RejectWrongDest)
		waitRejected(t, "c", momCounters(other), base, "wrong_dest", 1)
		waitAudit(t, other.auditPath(), mark, "wrong_dest", "127.0.0.2", "another receiver")
		c.requirePeersUnchanged(t, other, peers)
	})
	t.Run("other_source", func(t *testing.T) {
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		wantReject(t, "capture sent from 127.0.0.9", thief.deliver("127.0.0.9", target, cp), proto.RejectAddrMismatch)
		waitRejected(t, "b", momCounters(b), base, "addr_mismatch", 1)
		waitAudit(t, b.auditPath(), mark, "addr_mismatch", "127.0.0.9", "source")
		c.requirePeersUnchanged(t, b, peers)
	})
	t.Run("after_receiver_restart", func(t *testing.T) {
		b.kill() // kill -9: the marks must already be on disk
		b = c.startMom("b", "127.0.0.3", "")
		c.waitUp("b")
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		wantReject(t, "capture after b restarted", thief.deliver("127.0.0.2", target, cp), proto.RejectReplay)
		wantReject(t, "older capture after b restarted", thief.deliver("127.0.0.2", target, older), proto.RejectReplay)
		waitRejected(t, "restarted b", momCounters(b), base, "replay", 2)
		waitAudit(t, b.auditPath(), mark, "replay", "127.0.0.2", "replay")
		c.requirePeersUnchanged(t, b, peers)
		if got := c.momCounters(b).Accepted; got != base.Accepted {
			t.Fatalf("restarted b accepted %d admissions during the replay", got-base.Accepted)
		}
		// The genuine a is still admitted: its timestamps are past the mark.
		if pr, r := c.ping(a, target); !pr.Admitted {
			t.Fatalf("genuine a -> restarted b: %+v %s", pr, r.stderr)
		}
	})
}

// TestAttackAddressTakeover: MOM a stops and another process, without the
// cluster key, takes its address 127.0.0.2: it answers b's PINGs, pings b
// itself, and tries to log in to the server as a.
func TestAttackAddressTakeover(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	aAddr, bAddr := a.imAddr(c.imPort), b.imAddr(c.imPort)
	if pr, r := c.ping(b, aAddr); !pr.Admitted {
		t.Fatalf("genuine b -> a: %+v %s", pr, r.stderr)
	}
	thief := stealKeys(t, a) // only for the replayed-reply case and the checks
	// A PingReply of a for b captured earlier (its echo answers another Ping).
	var oldEcho [ping.RandomSize]byte
	_, _ = rand.Read(oldEcho[:])
	capturedReply := thief.sealReply("127.0.0.2", "127.0.0.3", oldEcho)
	aNode, ok := c.node("a")
	if !ok {
		t.Fatal("node a not listed")
	}
	a.stop()
	waitFor(t, "a down at the server", 30*time.Second, func() bool {
		n, _ := c.node("a")
		return n.State == "down"
	})

	// The impostor listens on a's IM address and answers every Ping with
	// the frame answer() makes.
	ln, err := net.Listen("tcp", aAddr)
	if err != nil {
		t.Fatalf("take over %s: %v", aAddr, err)
	}
	answer := make(chan func(echoUnknown [ping.RandomSize]byte) []byte, 1)
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
			if _, err := proto.ReadFrameLimit(conn, nil, 4096); err == nil {
				// Without the key it cannot read the Ping's random bytes.
				var guess [ping.RandomSize]byte
				_, _ = rand.Read(guess[:])
				select {
				case f := <-answer:
					_, _ = conn.Write(f(guess))
				default:
				}
			}
			conn.Close()
		}
	}()
	stopImpostor := func() {
		ln.Close()
		<-served
	}
	defer stopImpostor()

	outbound := func(t *testing.T, name, reason string, reply func([ping.RandomSize]byte) []byte) {
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		answer <- reply
		pr, _ := c.ping(b, aAddr)
		if pr.Admitted || pr.Reason != reason {
			t.Fatalf("%s: b's ping of the impostor: admitted=%v reason %q, want refused as %q (%s)", name, pr.Admitted, pr.Reason, reason, pr.Error)
		}
		waitRejected(t, "b", func() counters { return c.momCounters(b) }, base, reason, 1)
		waitAudit(t, b.auditPath(), mark, reason, "127.0.0.2", "outbound")
		c.requirePeersUnchanged(t, b, peers)
	}
	t.Run("answers_without_key", func(t *testing.T) {
		forged := thief.withRing(foreignRing(t))
		outbound(t, "reply under another cluster's key", "key_mismatch", func(echo [ping.RandomSize]byte) []byte {
			return forged.sealReply("127.0.0.2", "127.0.0.3", echo)
		})
	})
	t.Run("answers_with_guessed_secret", func(t *testing.T) {
		forged := thief.withRing(guessedSecretRing(t, thief.ring))
		outbound(t, "reply under the right key id, wrong secret", "auth", func(echo [ping.RandomSize]byte) []byte {
			return forged.sealReply("127.0.0.2", "127.0.0.3", echo)
		})
	})
	t.Run("answers_with_captured_reply", func(t *testing.T) {
		outbound(t, "a's old reply replayed", "echo", func([ping.RandomSize]byte) []byte {
			return append([]byte(nil), capturedReply...)
		})
	})
	t.Run("pings_without_key", func(t *testing.T) {
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		forged := thief.withRing(foreignRing(t))
		wantReject(t, "impostor's ping", forged.deliver("127.0.0.2", bAddr, forged.seal("127.0.0.2", "127.0.0.3")), proto.RejectUnknownKey)
		waitRejected(t, "b", func() counters { return c.momCounters(b) }, base, "key_mismatch", 1)
		waitAudit(t, b.auditPath(), mark, "key_mismatch", "127.0.0.2", "key mismatch")
		c.requirePeersUnchanged(t, b, peers)
	})
	t.Run("pings_with_guessed_secret", func(t *testing.T) {
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		forged := thief.withRing(guessedSecretRing(t, thief.ring))
		wantReject(t, "impostor's ping", forged.deliver("127.0.0.2", bAddr, forged.seal("127.0.0.2", "127.0.0.3")), proto.RejectAuth)
		waitRejected(t, "b", func() counters { return c.momCounters(b) }, base, "auth", 1)
		waitAudit(t, b.auditPath(), mark, "auth", "127.0.0.2", "authentication failed")
		c.requirePeersUnchanged(t, b, peers)
	})
	t.Run("hello_to_server", func(t *testing.T) {
		base, mark := c.serverCounters(), auditMark(t, c.serverAudit())
		ident, err := keys.GenerateIdentity(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		conn := sendHello(t, "127.0.0.2", c.srvAddr, proto.NodeID(uuid.MustParse(aNode.ID)), ident)
		rj, err := readReject(conn)
		if err != nil || rj.Code != proto.RejectAuth {
			t.Fatalf("impostor's Hello as a: %+v %v, want Reject code %d", rj, err, proto.RejectAuth)
		}
		waitRejected(t, "server", c.serverCounters, base, "auth", 1)
		waitAudit(t, c.serverAudit(), mark, "auth", "127.0.0.2", "identity key")
		if n, _ := c.node("a"); n.State != "down" {
			t.Fatalf("node a is %q after the impostor's Hello, want down", n.State)
		}
	})

	// The real a comes back and is admitted again.
	stopImpostor()
	a = c.startMom("a", "127.0.0.2", "")
	c.waitUp("a")
	if pr, r := c.ping(b, aAddr); !pr.Admitted {
		t.Fatalf("b -> the real a back: %+v %s", pr, r.stderr)
	}
}

// TestAttackForgedPing: PINGs from a's own address that were forged or
// sealed with a wrong key. The log must name the key mismatch.
func TestAttackForgedPing(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	target := b.imAddr(c.imPort)
	thief := stealKeys(t, a)
	attempt := func(t *testing.T, cp capture, code proto.RejectCode, reason, detail string) auditLine {
		t.Helper()
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		wantReject(t, reason, thief.deliver("127.0.0.2", target, cp), code)
		waitRejected(t, "b", func() counters { return c.momCounters(b) }, base, reason, 1)
		l := waitAudit(t, b.auditPath(), mark, reason, "127.0.0.2", detail)
		c.requirePeersUnchanged(t, b, peers)
		return l
	}

	t.Run("foreign_key", func(t *testing.T) {
		ring := foreignRing(t)
		l := attempt(t, thief.withRing(ring).seal("127.0.0.2", "127.0.0.3"), proto.RejectUnknownKey, "key_mismatch", "key mismatch")
		if l["key_id"] != ring.Active().ID.String() {
			t.Fatalf("audit line names key %q, want the foreign key %s: %v", l["key_id"], ring.Active().ID, l)
		}
	})
	t.Run("known_key_id_wrong_secret", func(t *testing.T) {
		attempt(t, thief.withRing(guessedSecretRing(t, thief.ring)).seal("127.0.0.2", "127.0.0.3"), proto.RejectAuth, "auth", "authentication failed")
	})
	t.Run("ciphertext_bit_flipped", func(t *testing.T) {
		cp := thief.seal("127.0.0.2", "127.0.0.3")
		cp.frame[proto.HeaderSize+4+ping.NonceSize+20] ^= 0x01 // inside the timestamp
		attempt(t, cp, proto.RejectAuth, "auth", "authentication failed")
	})
	t.Run("header_key_id_swapped", func(t *testing.T) {
		// A genuine PING relabelled with another key id: the id is
		// associated data, so even a known id would not open it.
		cp := thief.seal("127.0.0.2", "127.0.0.3")
		binary.BigEndian.PutUint32(cp.frame[proto.HeaderSize:], uint32(thief.ring.Active().ID)^0x5a5a5a5a)
		attempt(t, cp, proto.RejectUnknownKey, "key_mismatch", "key mismatch")
	})
	// The genuine a is unaffected.
	if pr, r := c.ping(a, target); !pr.Admitted {
		t.Fatalf("genuine a -> b after the forgeries: %+v %s", pr, r.stderr)
	}
}

// nodeFingerprint returns the identity fingerprint the server has for name.
func (c *cluster) nodeFingerprint(name string) (state, fp string) {
	c.t.Helper()
	r := c.qmgr("--json", "-c", "list node "+name)
	var ns []struct {
		State       string `json:"state"`
		Fingerprint string `json:"fingerprint"`
	}
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ns) != nil || len(ns) != 1 {
		c.t.Fatalf("list node %s: %q %q", name, r.stdout, r.stderr)
	}
	return ns[0].State, ns[0].Fingerprint
}

// TestAttackEnrollToken: enrollment tokens reused, expired, for another
// node, with a guessed secret, or made up.
func TestAttackEnrollToken(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.6")
	tokA := c.createNode("a", "127.0.0.2")
	a := c.startMom("a", "127.0.0.2", tokA)
	c.waitUp("a")
	_, fpA := c.nodeFingerprint("a")
	tokB := c.createNode("b", "127.0.0.3")

	// refused starts a fresh MOM with token at ip and checks the server
	// refused it once, under reason, and enrolled nothing.
	refused := func(t *testing.T, name, ip, token, reason, detail string) {
		t.Helper()
		base, mark := c.serverCounters(), auditMark(t, c.serverAudit())
		m := c.startMom(name, ip, token)
		if code := m.waitExit(t, 60*time.Second); code == 0 {
			t.Fatalf("MOM %s with a bad token exited 0", name)
		}
		waitRejected(t, "server", c.serverCounters, base, reason, 1)
		waitAudit(t, c.serverAudit(), mark, reason, ip, detail)
		if got := c.serverCounters().Accepted; got != base.Accepted {
			t.Fatalf("server accepted %d connections during the attempt", got-base.Accepted)
		}
	}

	t.Run("reused", func(t *testing.T) {
		a.stop()
		refused(t, "a-again", "127.0.0.2", tokA, "token_used", "already used")
		if _, fp := c.nodeFingerprint("a"); fp != fpA {
			t.Fatalf("node a's identity changed from %s to %s", fpA, fp)
		}
	})
	t.Run("expired", func(t *testing.T) {
		if r := c.qmgr("set server token_ttl=1s"); r.code != 0 {
			t.Fatalf("set token_ttl: %s", r.stderr)
		}
		tokE := c.createNode("e", "127.0.0.5")
		if r := c.qmgr("set server token_ttl=1h"); r.code != 0 {
			t.Fatalf("set token_ttl: %s", r.stderr)
		}
		expiry := time.Now().Add(2 * time.Second) // expiry is truncated to the second
		waitFor(t, "token expiry", 10*time.Second, func() bool { return time.Now().After(expiry) })
		refused(t, "e", "127.0.0.5", tokE, "token_expired", "expired")
		if st, fp := c.nodeFingerprint("e"); st != "enrolling" || fp != "" {
			t.Fatalf("node e is %q with identity %q after an expired token", st, fp)
		}
	})
	t.Run("other_node", func(t *testing.T) {
		refused(t, "thief", "127.0.0.6", tokB, "addr_mismatch", "used from 127.0.0.6")
		if st, fp := c.nodeFingerprint("b"); st != "enrolling" || fp != "" {
			t.Fatalf("node b is %q with identity %q after its token was used elsewhere", st, fp)
		}
	})
	t.Run("guessed_secret", func(t *testing.T) {
		tok, err := keys.ParseToken(tokB)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = rand.Read(tok.Secret[:])
		refused(t, "b-guess", "127.0.0.3", tok.String(), "token_secret", "secret")
	})
	t.Run("made_up", func(t *testing.T) {
		tok, err := keys.ParseToken(tokB)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = rand.Read(tok.ID[:])
		_, _ = rand.Read(tok.Secret[:])
		refused(t, "b-made-up", "127.0.0.3", tok.String(), "token_unknown", "unknown")
	})
	// None of it burnt b's genuine token.
	c.startMom("b", "127.0.0.3", tokB)
	c.waitUp("b")
}

// TestAttackMalformedFrames: truncated, oversized, random and misplaced
// frames on the server's control port and a MOM's IM port are refused as
// malformed, and both daemons go on serving.
func TestAttackMalformedFrames(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.20")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")

	header := func(v proto.Version, typ proto.Type, n uint32) []byte {
		return proto.AppendHeader(nil, proto.Header{Version: v, Type: typ, Length: n})
	}
	random := make([]byte, 256)
	_, _ = rand.Read(random)
	random[0] = 0 // not the magic
	frames := []struct {
		name, detail string
		data         []byte
	}{
		{"truncated_header", "truncated", []byte("MG\x02")},
		{"truncated_body", "truncated", append(header(proto.V2, proto.TypePing, ping.FrameSize-proto.HeaderSize), make([]byte, 40)...)},
		{"oversized", "too large", header(proto.V2, proto.TypePing, 2<<20)},
		{"over_preauth_cap", "limit 4096", header(proto.V2, proto.TypePing, 8192)},
		{"random_bytes", "magic", random},
		{"bad_version", "version", []byte("MG\x07\x10\x00\x00\x00\x00")},
		{"unknown_type", "type", []byte("MG\x02\x7f\x00\x00\x00\x00")},
		{"ping_wrong_length", "Ping", append(header(proto.V2, proto.TypePing, 50), make([]byte, 50)...)},
		{"wrong_message", "IMReply", proto.Marshal(&proto.IMReply{Ver: proto.V2, Job: "1.server", Seq: 1})},
	}
	ports := []struct {
		name, addr, audit string
		counters          func() counters
	}{
		{"server_control", c.srvAddr, c.serverAudit(), c.serverCounters},
		{"mom_im", b.imAddr(c.imPort), b.auditPath(), func() counters { return c.momCounters(b) }},
	}
	peers := c.peers(b)
	for _, p := range ports {
		for _, f := range frames {
			t.Run(p.name+"/"+f.name, func(t *testing.T) {
				base, mark := p.counters(), auditMark(t, p.audit)
				conn := dialFrom(t, "127.0.0.20", p.addr)
				if _, err := conn.Write(f.data); err != nil {
					t.Fatal(err)
				}
				_ = conn.CloseWrite()
				rj, err := readReject(conn)
				if err != nil || rj.Code != proto.RejectMalformed {
					t.Fatalf("answer %+v %v, want Reject code %d", rj, err, proto.RejectMalformed)
				}
				waitRejected(t, p.name, p.counters, base, "malformed", 1)
				waitAudit(t, p.audit, mark, "malformed", "127.0.0.20", f.detail)
			})
		}
	}
	c.requirePeersUnchanged(t, b, peers)
	// Both daemons still serve: a sister admission, and a MOM reconnecting
	// to the server.
	if pr, r := c.ping(a, b.imAddr(c.imPort)); !pr.Admitted {
		t.Fatalf("a -> b after the garbage: %+v %s", pr, r.stderr)
	}
	a.stop()
	c.startMom("a", "127.0.0.2", "")
	c.waitUp("a")
}

// TestAttackSilentConnection: connections that never send, or send a few
// bytes and stall, are closed at the handshake deadline (1 s here, by the
// hidden --handshake-timeout flag) and counted as handshake_timeout.
func TestAttackSilentConnection(t *testing.T) {
	const deadline = time.Second
	flag := []string{"--handshake-timeout", deadline.String()}
	c := newClusterWith(t, flag, "127.0.0.2", "127.0.0.3", "127.0.0.21")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMomWith("b", "127.0.0.3", flag...)
	ports := []struct {
		name, addr, audit string
		counters          func() counters
	}{
		{"server_control", c.srvAddr, c.serverAudit(), c.serverCounters},
		{"mom_im", b.imAddr(c.imPort), b.auditPath(), func() counters { return c.momCounters(b) }},
	}
	for _, p := range ports {
		for _, sends := range []struct {
			name string
			data []byte
		}{{"never_sends", nil}, {"slow_drip", []byte("MG\x02")}} {
			t.Run(p.name+"/"+sends.name, func(t *testing.T) {
				base, mark := p.counters(), auditMark(t, p.audit)
				began := time.Now()
				conn := dialFrom(t, "127.0.0.21", p.addr)
				if len(sends.data) > 0 {
					if _, err := conn.Write(sends.data); err != nil {
						t.Fatal(err)
					}
				}
				waitClosed(t, conn, 30*time.Second)
				if held := time.Since(began); held < deadline {
					t.Fatalf("closed after %s, before the %s handshake deadline", held, deadline)
				}
				waitRejected(t, p.name, p.counters, base, "handshake_timeout", 1)
				waitAudit(t, p.audit, mark, "handshake_timeout", "127.0.0.21", "timeout")
			})
		}
	}
	if pr, r := c.ping(a, b.imAddr(c.imPort)); !pr.Admitted {
		t.Fatalf("a -> b after the silent connections: %+v %s", pr, r.stderr)
	}
}

// TestAttackConnectionFlood: one source opens many connections and holds
// them, or opens them as fast as it can. Past the per-source limits they
// are refused as rate_limited, and admissions from other addresses keep
// flowing during the flood.
func TestAttackConnectionFlood(t *testing.T) {
	const (
		maxPending = 8
		burst      = 40
		flood      = 30
		bursts     = 60
	)
	limits := []string{"--max-preauth-per-source", fmt.Sprint(maxPending), "--handshake-timeout", "2m"}
	c := newClusterWith(t, limits, "127.0.0.2", "127.0.0.3", "127.0.0.66", "127.0.0.67", "127.0.0.68")
	a := c.addMom("a", "127.0.0.2")
	// b refills a source's bucket at one connection per 1000 s, so the
	// burst is all a source gets during the test.
	b := c.addMomWith("b", "127.0.0.3", append(limits, "--accept-rate-per-source", "0.001", "--accept-burst-per-source", fmt.Sprint(burst))...)
	bAddr := b.imAddr(c.imPort)
	momCounters := func() counters { return c.momCounters(b) }

	hold := func(t *testing.T, local, target string) []*net.TCPConn {
		var held []*net.TCPConn
		for range flood {
			held = append(held, dialFrom(t, local, target)) // closed by t's cleanup at the latest
		}
		return held
	}
	t.Run("mom_held_connections", func(t *testing.T) {
		base, mark := momCounters(), auditMark(t, b.auditPath())
		held := hold(t, "127.0.0.66", bAddr)
		waitRejected(t, "b", momCounters, base, "rate_limited", flood-maxPending)
		waitAuditFlood(t, b.auditPath(), mark, "rate_limited", "127.0.0.66", "unauthenticated connections")
		// During the flood a sister is admitted.
		if pr, r := c.ping(a, bAddr); !pr.Admitted {
			t.Fatalf("a -> b during the flood: %+v %s", pr, r.stderr)
		}
		// And the flooding source itself is refused even with a valid PING.
		thief := stealKeys(t, a)
		wantReject(t, "valid ping from the flooding source", thief.deliver("127.0.0.66", bAddr, thief.seal("127.0.0.66", "127.0.0.3")), proto.RejectRateLimited)
		// The flood ends: the connections b let into the handshake are
		// counted closed, and b holds none of them when the next test
		// counts.
		for _, c := range held {
			c.Close()
		}
		waitRejected(t, "b", momCounters, base, "closed", maxPending)
	})
	t.Run("mom_connect_rate", func(t *testing.T) {
		base, mark := momCounters(), auditMark(t, b.auditPath())
		// One connection at a time as b sees it: each is over (refused, or
		// admitted to the handshake and then counted closed) before the
		// next, so only the rate refuses, never the limit on connections
		// pending at once that a loaded b would otherwise reach.
		ended := func(now counters) uint64 {
			return now.Rejected["rate_limited"] - base.Rejected["rate_limited"] + now.Rejected["closed"] - base.Rejected["closed"]
		}
		for i := range bursts {
			dialFrom(t, "127.0.0.67", bAddr).Close()
			waitFor(t, fmt.Sprintf("b to end connection %d of the burst", i+1), 30*time.Second, func() bool {
				return ended(momCounters()) == uint64(i+1)
			})
		}
		if now := momCounters(); now.Rejected["closed"]-base.Rejected["closed"] != burst {
			t.Fatalf("b let %d of %d connections into the handshake, want the burst %d (counters %v)",
				now.Rejected["closed"]-base.Rejected["closed"], bursts, burst, now.Rejected)
		}
		waitRejected(t, "b", momCounters, base, "rate_limited", bursts-burst)
		waitAuditFlood(t, b.auditPath(), mark, "rate_limited", "127.0.0.67", "rate")
		if pr, r := c.ping(a, bAddr); !pr.Admitted {
			t.Fatalf("a -> b right after the burst: %+v %s", pr, r.stderr)
		}
	})
	t.Run("server_held_connections", func(t *testing.T) {
		base, mark := c.serverCounters(), auditMark(t, c.serverAudit())
		hold(t, "127.0.0.68", c.srvAddr)
		waitRejected(t, "server", c.serverCounters, base, "rate_limited", flood-maxPending)
		waitAuditFlood(t, c.serverAudit(), mark, "rate_limited", "127.0.0.68", "unauthenticated connections")
		// During the flood a MOM reconnects and is admitted.
		a.stop()
		waitFor(t, "a down", 30*time.Second, func() bool {
			n, _ := c.node("a")
			return n.State == "down"
		})
		a = c.startMom("a", "127.0.0.2", "")
		c.waitUp("a")
		if pr, r := c.ping(a, bAddr); !pr.Admitted {
			t.Fatalf("a -> b during the server flood: %+v %s", pr, r.stderr)
		}
	})
}

// probeStamp makes m send a PING to a listener of the test's at probe and
// returns the PING's timestamp, read with the stolen key.
func probeStamp(t *testing.T, c *cluster, m *momProc, thief *insider, probe string) uint64 {
	t.Helper()
	ln, err := net.Listen("tcp", probe)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan any, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			got <- err
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
		frame, err := proto.ReadFrameLimit(conn, nil, 4096)
		if err != nil {
			got <- err
			return
		}
		var p ping.Payload
		var ext [ping.ExtSize]byte // a MOM that speaks sealed sessions sends a SessionPing
		if _, _, err := ping.OpenExt(frame, keys.NewHolder(thief.ring), &p, &ext); err != nil {
			got <- err
			return
		}
		got <- p.Timestamp
	}()
	c.ping(m, probe) // refused: the probe does not answer
	ln.Close()
	switch v := (<-got).(type) {
	case uint64:
		return v
	default:
		t.Fatalf("probe: %v", v)
		return 0
	}
}

// TestAttackClockStep: a sender whose wall clock steps back one hour (it
// restarts with the hidden --test-clock-offset=-1h) is still admitted and
// never reissues an old timestamp, so no replay window opens; a receiver
// whose clock steps back still refuses replays.
func TestAttackClockStep(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.5", "127.0.0.30")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	bAddr := b.imAddr(c.imPort)
	probe := fmt.Sprintf("127.0.0.30:%d", c.imPort)
	thief := stealKeys(t, a)
	cp := thief.seal("127.0.0.2", "127.0.0.3")
	if err := thief.deliver("127.0.0.2", bAddr, cp); err != nil {
		t.Fatalf("first delivery: %v", err)
	}
	if pr, r := c.ping(a, bAddr); !pr.Admitted {
		t.Fatalf("a -> b before the step: %+v %s", pr, r.stderr)
	}
	before := probeStamp(t, c, a, thief, probe)

	t.Run("sender_back_one_hour", func(t *testing.T) {
		a.stop()
		a = c.startMomWith("a", "127.0.0.2", "", "--test-clock-offset", "-1h")
		c.waitUp("a") // the server admitted its control PING
		after := probeStamp(t, c, a, thief, probe)
		if after <= before {
			t.Fatalf("timestamp went back with the clock: %d after the step, %d before", after, before)
		}
		if lag := time.Since(time.Unix(0, int64(after))); lag > 30*time.Minute {
			t.Fatalf("timestamp %s behind real time: it followed the stepped clock", lag)
		}
		if pr, r := c.ping(a, bAddr); !pr.Admitted {
			t.Fatalf("a -> b after a's clock stepped back: %+v %s", pr, r.stderr)
		}
		peers, base := c.peers(b), c.momCounters(b)
		wantReject(t, "old capture after a's step", thief.deliver("127.0.0.2", bAddr, cp), proto.RejectReplay)
		waitRejected(t, "b", func() counters { return c.momCounters(b) }, base, "replay", 1)
		c.requirePeersUnchanged(t, b, peers)
	})
	t.Run("receiver_back_one_hour", func(t *testing.T) {
		b.stop()
		b = c.startMomWith("b", "127.0.0.3", "", "--test-clock-offset", "-1h")
		c.waitUp("b")
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		wantReject(t, "old capture after b's step", thief.deliver("127.0.0.2", bAddr, cp), proto.RejectReplay)
		waitRejected(t, "b", func() counters { return c.momCounters(b) }, base, "replay", 1)
		waitAudit(t, b.auditPath(), mark, "replay", "127.0.0.2", "replay")
		c.requirePeersUnchanged(t, b, peers)
		if pr, r := c.ping(a, bAddr); !pr.Admitted {
			t.Fatalf("a -> b after b's clock stepped back: %+v %s", pr, r.stderr)
		}
	})
	t.Run("first_contact_fails_closed", func(t *testing.T) {
		// A sender b has no mark for, stamped with the real time, is an
		// hour ahead of b's stepped clock: outside the freshness window.
		stranger := *thief
		s := *thief.sealer
		s.Node = proto.NodeID(uuid.New())
		stranger.sealer = &s
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		wantReject(t, "first contact an hour ahead", stranger.deliver("127.0.0.5", bAddr, stranger.seal("127.0.0.5", "127.0.0.3")), proto.RejectStale)
		waitRejected(t, "b", func() counters { return c.momCounters(b) }, base, "stale", 1)
		waitAudit(t, b.auditPath(), mark, "stale", "127.0.0.5", "freshness")
		c.requirePeersUnchanged(t, b, peers)
	})
}

// TestAttackRemovedMember: `delete node a` denies a at once on every MOM,
// by node id and by address, before any key rotation, and the denial
// survives a restart of the receiver. The server refuses a's MOM by name,
// and the MOM stops for good with exit status 4. (That a also loses the
// cluster key is rotation's job: integration/rotation_test.go.)
func TestAttackRemovedMember(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3")
	// delete node rotates the key; a long grace period keeps a's old key
	// accepted (as previous) for the whole test, so what refuses a here is
	// the deny, not the key (TestDeleteNodeRevokesAtOnceThenByKey covers both).
	if r := c.qmgr("set server key_grace=1h"); r.code != 0 {
		t.Fatalf("set key_grace: %s", r.stderr)
	}
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	bAddr := b.imAddr(c.imPort)
	if pr, r := c.ping(a, bAddr); !pr.Admitted {
		t.Fatalf("a -> b before the delete: %+v %s", pr, r.stderr)
	}
	thief := stealKeys(t, a) // a's key material, as a itself still holds it
	srvMark := auditMark(t, c.serverAudit())
	if r := c.qmgr("delete node a"); r.code != 0 {
		t.Fatalf("delete node a: %s", r.stderr)
	}
	// a's MOM reconnects, is refused as revoked, and stops: no retry.
	if code := a.waitExit(t, 30*time.Second); code != 4 {
		t.Fatalf("deleted MOM exited %d, want 4; output:\n%s", code, a.out.String())
	}
	if out := a.out.String(); !strings.Contains(out, "this node was deleted from the cluster: the MOM stops and will not retry") ||
		!strings.Contains(out, `create node a Mom=HOST`) || strings.Contains(out, "exited with an error") {
		t.Fatalf("deleted MOM's last words:\n%s", out)
	}
	l := waitAudit(t, c.serverAudit(), srvMark, "revoked", "127.0.0.2", "was deleted and is revoked")
	if l["node"] != "a" || l["node_id"] == "" {
		t.Fatalf("server's refusal of the deleted MOM does not name it: %v", l)
	}
	// The removed daemon, restarted where it cannot reach the server,
	// still tries its sisters.
	a = c.startMomCutOff("a", a.ip)
	waitFor(t, "b to drop a from its peers (deny applied)", 30*time.Second, func() bool {
		for _, p := range c.peers(b) {
			if strings.HasPrefix(p.Addr, "127.0.0.2:") {
				return false
			}
		}
		return true
	})
	refused := func(t *testing.T, attempt func()) {
		t.Helper()
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		attempt()
		waitRejected(t, "b", func() counters { return c.momCounters(b) }, base, "revoked", 1)
		waitAudit(t, b.auditPath(), mark, "revoked", "127.0.0.2", "revoked")
		c.requirePeersUnchanged(t, b, peers)
	}
	t.Run("removed_daemon_pings", func(t *testing.T) {
		refused(t, func() {
			if pr, _ := c.ping(a, bAddr); pr.Admitted || pr.Reason != "refused_by_peer" {
				t.Fatalf("deleted a -> b: %+v, want refused_by_peer", pr)
			}
		})
	})
	t.Run("other_node_id_from_removed_address", func(t *testing.T) {
		s := *thief.sealer
		s.Node = proto.NodeID(uuid.New())
		forged := &insider{t: t, ring: thief.ring, sealer: &s}
		refused(t, func() {
			wantReject(t, "fresh node id from a's address", forged.deliver("127.0.0.2", bAddr, forged.seal("127.0.0.2", "127.0.0.3")), proto.RejectRevoked)
		})
	})
	t.Run("server_forgets_removed_node", func(t *testing.T) {
		if _, ok := c.node("a"); ok {
			t.Fatal("node a still listed after delete")
		}
	})
	t.Run("after_receiver_restart", func(t *testing.T) {
		b.kill()
		b = c.startMom("b", "127.0.0.3", "")
		c.waitUp("b")
		refused(t, func() {
			wantReject(t, "a's ping after b restarted", thief.deliver("127.0.0.2", bAddr, thief.seal("127.0.0.2", "127.0.0.3")), proto.RejectRevoked)
		})
	})
}

// TestAttackRemovedMemberAfterRotation: once the rotation that `delete
// node a` starts has completed, a's key material opens nothing: the
// removed daemon's own PINGs, and PINGs under its old key with a fresh
// node id from an address nobody denied, are refused by key
// (key_mismatch, the audit line naming the retired key), not only by the
// deny that TestAttackRemovedMember covers.
func TestAttackRemovedMemberAfterRotation(t *testing.T) {
	c := newCluster(t, "127.0.0.2", "127.0.0.3", "127.0.0.9")
	c.mustQmgr("set server key_grace=1s")
	a := c.addMom("a", "127.0.0.2")
	b := c.addMom("b", "127.0.0.3")
	bAddr := b.imAddr(c.imPort)
	thief := stealKeys(t, a) // a's key material, as a itself keeps it
	oldKey := thief.ring.Active().ID.String()
	a.stop()
	c.mustQmgr("delete node a")
	if kl := c.waitRotated(1); kl.active() == oldKey || kl.Rotation.Reason != "delete node a" {
		t.Fatalf("rotation %+v keys %s", kl.Rotation, kl.ring())
	}
	c.waitConverged(b) // b holds the new key only: the old one is retired and gone
	refused := func(t *testing.T, ip string, attempt func()) {
		t.Helper()
		peers, base, mark := c.peers(b), c.momCounters(b), auditMark(t, b.auditPath())
		attempt()
		waitRejected(t, "b", func() counters { return c.momCounters(b) }, base, "key_mismatch", 1)
		l := waitAudit(t, b.auditPath(), mark, "key_mismatch", ip, "key mismatch")
		if l["key_id"] != oldKey {
			t.Fatalf("audit line names key %q, want a's retired key %s: %v", l["key_id"], oldKey, l)
		}
		c.requirePeersUnchanged(t, b, peers)
	}
	t.Run("removed_daemon_pings", func(t *testing.T) {
		// From its own state directory, cut off from the server, which
		// would stop it (exit 4).
		a = c.startMomCutOff("a", "127.0.0.2")
		waitFor(t, "the removed MOM's daemon to answer", 20*time.Second, func() bool {
			_, ok := c.momStatus(a)
			return ok
		})
		refused(t, "127.0.0.2", func() {
			if pr, _ := c.ping(a, bAddr); pr.Admitted || pr.Reason != "refused_by_peer" {
				t.Fatalf("removed a -> b: %+v, want refused_by_peer", pr)
			}
		})
	})
	t.Run("old_key_fresh_node_id_undenied_address", func(t *testing.T) {
		forged := thief.asFreshSender()
		refused(t, "127.0.0.9", func() {
			wantReject(t, "old key from 127.0.0.9", forged.deliver("127.0.0.9", bAddr, forged.seal("127.0.0.9", "127.0.0.3")), proto.RejectUnknownKey)
		})
	})
}

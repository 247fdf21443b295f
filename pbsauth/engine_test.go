package pbsauth

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

func TestServiceHandshake(t *testing.T) {
	w := newWorld(t)
	res, tr, err := handshake(w.n1, w.server, root, KindService, w.n1.addr)
	if err != nil {
		t.Fatal(err)
	}
	want := PeerUser{UID: 0, GID: 0, User: "root", Group: "root", NodeName: "pbsn1"}
	if res.User != want {
		t.Fatalf("responder learned %+v, want %+v", res.User, want)
	}
	if res.Node != w.n1.node || res.Peer != w.n1.addr || res.KeyID != 7 || res.Kind != KindService {
		t.Fatalf("result %+v", res)
	}
	if s, _ := Step(tr.step1); s != StepPing || len(tr.step1) != tokenHeaderSize+ping.FrameSize {
		t.Fatalf("step 1 token: step %d, %d bytes", s, len(tr.step1))
	}
	if s, _ := Step(tr.step2); s != StepReply || len(tr.step2) != tokenHeaderSize+ping.ReplyFrameSize {
		t.Fatalf("step 2 token: step %d, %d bytes", s, len(tr.step2))
	}
	if w.server.engine.pending.len() != 0 || w.n1.engine.pending.len() != 0 {
		t.Fatal("a finished handshake is still pending")
	}
}

func TestUserHandshakeNamesTheResponder(t *testing.T) {
	w := newWorld(t)
	r1, err := w.n2.engine.Initiate(jobUser, KindUser, w.server.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := w.server.engine.Accept(root, KindUser, []proto.Addr{addr("127.0.0.99"), w.n2.addr}, r1.Token)
	if err != nil {
		t.Fatal(err)
	}
	r3, err := w.n2.engine.Continue(jobUser, r1.ID, r2.Token)
	if err != nil {
		t.Fatal(err)
	}
	if r3.NodeName != "pbssrv" || r3.Node != w.server.node {
		t.Fatalf("initiator learned responder %q %x", r3.NodeName, r3.Node)
	}
	r4, err := w.server.engine.Confirm(root, r2.ID, r3.Token)
	if err != nil {
		t.Fatal(err)
	}
	if r4.User.User != "pbsuser" || r4.User.UID != 5001 || r4.User.NodeName != "pbsn2" {
		t.Fatalf("responder learned %+v", r4.User)
	}
}

// The server host is both ends when pbs_server joins its own pbs_comm.
func TestHandshakeWithItself(t *testing.T) {
	w := newWorld(t)
	res, _, err := handshake(w.server, w.server, root, KindService, w.server.addr)
	if err != nil || res.User.NodeName != "pbssrv" {
		t.Fatalf("%+v %v", res.User, err)
	}
}

func TestRefusals(t *testing.T) {
	cases := []struct {
		name string
		run  func(w *world) error
		want error
	}{
		{"other cluster", func(w *world) error {
			_, _, err := handshake(w.other, w.server, root, KindService, w.other.addr)
			return err
		}, ping.ErrAuth},
		{"spoofed address", func(w *world) error {
			_, _, err := handshake(w.n1, w.server, root, KindService, w.n2.addr)
			return err
		}, ping.ErrAddrMismatch},
		{"for another host", func(w *world) error {
			r1, _ := w.n1.engine.Initiate(root, KindService, w.n2.addr, false)
			_, err := w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, r1.Token)
			return err
		}, ping.ErrWrongDest},
		{"stale", func(w *world) error {
			r1, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, false)
			w.clock.Add(6 * time.Minute)
			_, err := w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, r1.Token)
			return err
		}, ping.ErrStale},
		{"deleted node", func(w *world) error {
			w.dir.remove(w.n1.node)
			_, _, err := handshake(w.n1, w.server, root, KindService, w.n1.addr)
			return err
		}, ping.ErrRevoked},
		{"deleted between steps", func(w *world) error {
			r1, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, false)
			r2, err := w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, r1.Token)
			if err != nil {
				return err
			}
			r3, err := w.n1.engine.Continue(root, r1.ID, r2.Token)
			if err != nil {
				return err
			}
			w.dir.remove(w.n1.node)
			_, err = w.server.engine.Confirm(root, r2.ID, r3.Token)
			return err
		}, ping.ErrRevoked},
		{"unknown node", func(w *world) error {
			stranger := newHost(t, "pbsn9", "127.0.0.19", 19, w.n1.keys, w.dir, w.clock)
			_, _, err := handshake(stranger, w.server, root, KindService, stranger.addr)
			return err
		}, ErrUnknownNode},
		{"copy of a node's state on another host", func(w *world) error {
			// Same node id and keys as pbsn1, another address.
			thief := newHost(t, "pbsn1", "127.0.0.66", 11, w.n1.keys, w.dir, w.clock)
			_, _, err := handshake(thief, w.server, root, KindService, thief.addr)
			return err
		}, ping.ErrAddrMismatch},
		{"kind", func(w *world) error {
			r1, _ := w.n1.engine.Initiate(jobUser, KindUser, w.server.addr, false)
			r2, err := w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, r1.Token)
			if err != nil {
				return err
			}
			r3, err := w.n1.engine.Continue(jobUser, r1.ID, r2.Token)
			if err != nil {
				return err
			}
			_, err = w.server.engine.Confirm(root, r2.ID, r3.Token)
			return err
		}, ErrKind},
		{"not enrolled", func(w *world) error {
			w.n1.self = nil
			_, err := w.n1.engine.Initiate(root, KindService, w.server.addr, false)
			return err
		}, ErrNotEnrolled},
		{"responder of another cluster", func(w *world) error {
			r1, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, false)
			// An impostor read the ping (say it has the random bytes) and
			// answers under its own cluster's key.
			frame, _, _ := UnwrapFrame(StepPing, r1.Token)
			var p ping.Payload
			if _, _, err := ping.Open(frame, w.n1.keys, &p); err != nil {
				return err
			}
			id, aead := w.other.keys.Seal()
			reply := ping.Payload{Timestamp: p.Timestamp + 1, Sender: w.server.addr, Dest: w.n1.addr, Node: w.server.node, Echo: p.Random}
			forged := ping.SealPayload(nil, true, id, aead, &[ping.NonceSize]byte{}, &reply)
			_, err := w.n1.engine.Continue(root, r1.ID, WrapFrame(StepReply, forged))
			return err
		}, ping.ErrAuth},
		{"reply to another ping", func(w *world) error {
			a, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, false)
			b, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, false)
			ra, err := w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, a.Token)
			if err != nil {
				return err
			}
			_, err = w.n1.engine.Continue(root, b.ID, ra.Token)
			return err
		}, ping.ErrEcho},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantErr(t, c.run(newWorld(t)), c.want)
		})
	}
}

func TestReplayedHandshakeRefused(t *testing.T) {
	w := newWorld(t)
	_, old, err := handshake(w.n1, w.server, root, KindService, w.n1.addr)
	if err != nil {
		t.Fatal(err)
	}
	// The whole recording, again: step 1 was answered before.
	_, err = w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, old.step1)
	wantErr(t, err, ErrReplay)
	// A fresh step 1 (the attacker cannot make one; say it is pbsn1's own)
	// and the recorded step 3: its echo is another handshake's.
	r1, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, false)
	r2, err := w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, r1.Token)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.server.engine.Confirm(root, r2.ID, old.step3)
	wantErr(t, err, ErrReplay)
	if Reason(err) != "replay" {
		t.Fatalf("reason %q", Reason(err))
	}
	// The responder forgot the recorded ping (a restart): step 3 still holds.
	w.server.engine.seen = newExpiring[[ping.RandomSize]byte, struct{}](time.Minute, 16)
	r2, err = w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, old.step1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.server.engine.Confirm(root, r2.ID, old.step3)
	wantErr(t, err, ErrReplay)
}

// Only a service user's daemon may join pbs_comm, also where PBS does not
// check (an encryption handshake that authenticates too).
func TestServiceUsers(t *testing.T) {
	w := newWorld(t)
	for _, enc := range []bool{false, true} {
		_, _, _, err := handshakeEnc(w.n1, w.server, jobUser, KindService, w.n1.addr, enc)
		wantErr(t, err, ErrKind)
		if !strings.Contains(err.Error(), "pbsuser (uid 5001), who is not a service user (root)") {
			t.Fatalf("message %q", err)
		}
	}
	w.server.engine.cfg.ServiceUsers = []string{"root", "pbsuser"}
	if _, _, _, err := handshakeEnc(w.n1, w.server, jobUser, KindService, w.n1.addr, true); err != nil {
		t.Fatal(err)
	}
	// A user connection of anyone is the server's to judge.
	w.server.engine.cfg.ServiceUsers = []string{"root"}
	if _, _, err := handshake(w.n1, w.server, jobUser, KindUser, w.n1.addr); err != nil {
		t.Fatal(err)
	}
}

func TestHandshakeIDs(t *testing.T) {
	w := newWorld(t)
	r1, _ := w.n1.engine.Initiate(jobUser, KindUser, w.server.addr, false)
	r2, err := w.server.engine.Accept(root, KindUser, []proto.Addr{w.n1.addr}, r1.Token)
	if err != nil {
		t.Fatal(err)
	}
	// Another local user cannot go on with the handshake, and the try uses it up.
	_, err = w.n1.engine.Continue(root, r1.ID, r2.Token)
	wantErr(t, err, ErrNoHandshake)
	_, err = w.n1.engine.Continue(jobUser, r1.ID, r2.Token)
	wantErr(t, err, ErrNoHandshake)
	// An initiator's id is not a responder's.
	r1, _ = w.n1.engine.Initiate(root, KindService, w.server.addr, false)
	_, err = w.n1.engine.Confirm(root, r1.ID, nil)
	wantErr(t, err, ErrNoHandshake)
	// Expired.
	r1, _ = w.n1.engine.Initiate(root, KindService, w.server.addr, false)
	r2, err = w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, r1.Token)
	if err != nil {
		t.Fatal(err)
	}
	w.clock.Add(DefaultTTL)
	_, err = w.n1.engine.Continue(root, r1.ID, r2.Token)
	wantErr(t, err, ErrNoHandshake)
}

func TestTokensOutOfOrder(t *testing.T) {
	w := newWorld(t)
	r1, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, false)
	r2, err := w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, r1.Token)
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range [][]byte{nil, r1.Token, r2.Token[:10], append(bytes.Clone(r2.Token), 0)} {
		if _, err := w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, tok); err == nil && !bytes.Equal(tok, r1.Token) {
			t.Fatalf("accepted %x", tok)
		}
	}
	_, err = w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, r2.Token)
	wantErr(t, err, ErrMalformed)
	_, err = w.server.engine.Confirm(root, r2.ID, r1.Token)
	wantErr(t, err, ErrMalformed)
}

func TestPendingIsBounded(t *testing.T) {
	w := newWorld(t)
	w.n1.engine.pending = newExpiring[HandshakeID, pending](time.Minute, 4)
	var first HandshakeID
	for i := 0; i < 10; i++ {
		r, err := w.n1.engine.Initiate(root, KindService, w.server.addr, false)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = r.ID
		}
	}
	if n := w.n1.engine.pending.len(); n != 4 {
		t.Fatalf("%d pending, want 4", n)
	}
	_, err := w.n1.engine.Continue(root, first, nil)
	wantErr(t, err, ErrNoHandshake)
}

package pbsauth

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"sync"
	"testing"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

func TestEncryptedHandshake(t *testing.T) {
	w := newWorld(t)
	for kind, c := range map[Kind]Caller{KindService: root, KindUser: jobUser} {
		ini, resp, tr, err := handshakeEnc(w.n1, w.server, c, kind, w.n1.addr, true)
		if err != nil {
			t.Fatal(err)
		}
		if ini.Keys == nil || resp.Keys == nil {
			t.Fatalf("%s: keys: initiator %v, responder %v", kind, ini.Keys, resp.Keys)
		}
		if ini.Keys.Send != resp.Keys.Recv || ini.Keys.Recv != resp.Keys.Send || ini.Keys.Send == ini.Keys.Recv {
			t.Fatalf("%s: the two sides' keys do not mirror each other", kind)
		}
		if resp.User.User != c.User || resp.User.NodeName != "pbsn1" {
			t.Fatalf("%s: responder learned %+v", kind, resp.User)
		}
		if len(tr.step1) != tokenHeaderSize+ping.ExtFrameSize || len(tr.step2) != tokenHeaderSize+ping.ExtReplyFrameSize {
			t.Fatalf("%s: step 1 of %d bytes, step 2 of %d", kind, len(tr.step1), len(tr.step2))
		}
	}
	// A handshake that does not ask for encryption gets no keys.
	ini, resp, tr, err := handshakeEnc(w.n1, w.server, root, KindService, w.n1.addr, false)
	if err != nil || ini.Keys != nil || resp.Keys != nil || len(tr.step1) != tokenHeaderSize+ping.FrameSize {
		t.Fatalf("plain handshake: keys %v %v, %v", ini.Keys, resp.Keys, err)
	}
	if w.server.engine.pending.len() != 0 || w.n1.engine.pending.len() != 0 {
		t.Fatal("a finished handshake is still pending")
	}
}

func TestEncryptedKeysAreFreshPerConnection(t *testing.T) {
	w := newWorld(t)
	seen := map[[32]byte]bool{}
	for i := 0; i < 4; i++ {
		ini, _, _, err := handshakeEnc(w.n1, w.server, root, KindService, w.n1.addr, true)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range [][32]byte{ini.Keys.Send, ini.Keys.Recv} {
			if seen[k] {
				t.Fatal("a key came back in another handshake")
			}
			seen[k] = true
		}
	}
}

// recorder remembers every byte an engine drew, so that the test knows its
// ephemeral private keys and shares.
type recorder struct {
	mu  sync.Mutex
	buf []byte
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := rand.Read(p)
	r.mu.Lock()
	r.buf = append(r.buf, p[:n]...)
	r.mu.Unlock()
	return n, err
}

func (r *recorder) drawn() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.buf)
}

// The keys are the schedule of docs/PROTOCOL.md 6.3 over the transcript
// layout of its table with channel 3, computed here from the tokens and
// the drawn randomness, by hand, without package session.
func TestEncryptedKeysFollowTheSchedule(t *testing.T) {
	w := newWorld(t)
	var ir, rr recorder
	w.n1.engine.cfg.Rand, w.server.engine.cfg.Rand = &ir, &rr
	ini, _, tr, err := handshakeEnc(w.n1, w.server, root, KindService, w.n1.addr, true)
	if err != nil {
		t.Fatal(err)
	}
	// Initiate draws the share, then the ephemeral private key; Accept the
	// reply's random bytes and nonce (40), then its share and private key.
	iDrawn, rDrawn := ir.drawn(), rr.drawn()
	iShare, iPriv := iDrawn[0:32], iDrawn[32:64]
	rShare, rPriv := rDrawn[40:72], rDrawn[72:104]

	open := func(tok []byte) (ping.Payload, uint32, [ping.ExtSize]byte) {
		var p ping.Payload
		var ext [ping.ExtSize]byte
		id, _, err := ping.OpenExt(bytes.Clone(tok[tokenHeaderSize:]), w.n1.keys, &p, &ext)
		if err != nil {
			t.Fatal(err)
		}
		return p, id, ext
	}
	p1, id1, ext1 := open(tr.step1)
	p2, id2, ext2 := open(tr.step2)
	wantOffer := append([]byte{1, 3, 0x04, 0}, iShare...)
	if !bytes.Equal(ext1[:36], wantOffer) || !bytes.Equal(ext2[:4], []byte{1, 3, 0x04, 2}) || !bytes.Equal(ext2[4:36], rShare) {
		t.Fatalf("offer %x, answer %x", ext1[:4], ext2[:4])
	}
	iPub, _ := curve25519.X25519(iPriv, curve25519.Basepoint)
	rPub, _ := curve25519.X25519(rPriv, curve25519.Basepoint)
	if !bytes.Equal(ext1[36:], iPub) || !bytes.Equal(ext2[36:], rPub) {
		t.Fatal("the extensions do not carry the drawn keys' public halves")
	}

	var tb []byte
	tb = append(tb, "momgate session v1"...)
	tb = append(tb, 2, 1, 3, 0x04, 2)
	tb = binary.BigEndian.AppendUint32(tb, id1)
	tb = binary.BigEndian.AppendUint32(tb, id2)
	tb = append(tb, p1.Random[:]...)
	tb = append(tb, p2.Random[:]...)
	tb = binary.BigEndian.AppendUint64(tb, p1.Timestamp)
	tb = binary.BigEndian.AppendUint64(tb, p2.Timestamp)
	tb = append(tb, p1.Sender[:]...)
	tb = append(tb, p2.Sender[:]...)
	tb = append(tb, p1.Node[:]...)
	tb = append(tb, p2.Node[:]...)
	tb = append(tb, iPub...)
	tb = append(tb, rPub...)
	tb = append(tb, make([]byte, 32)...)
	if len(tb) != 239 {
		t.Fatalf("transcript of %d bytes", len(tb))
	}
	th := sha256.Sum256(tb)
	ee, _ := curve25519.X25519(iPriv, rPub)
	ikm := append(append(append([]byte{}, iShare...), rShare...), ee...)
	s0 := make([]byte, 32)
	if _, err := io.ReadFull(hkdf.New(sha256.New, ikm, th[:], []byte("momgate session v1 secret")), s0); err != nil {
		t.Fatal(err)
	}
	expand := func(label string) [32]byte {
		var k [32]byte
		if _, err := io.ReadFull(hkdf.Expand(sha256.New, s0, []byte(label)), k[:]); err != nil {
			t.Fatal(err)
		}
		return k
	}
	if ini.Keys.Send != expand("momgate session v1 i2r") || ini.Keys.Recv != expand("momgate session v1 r2i") {
		t.Fatal("the initiator's keys are not K_I2R and K_R2I of the transcript")
	}
}

// forgeReply seals, with pbsn1's cluster key, a step 2 for r1 from the
// server: plain, or with ext.
func forgeReply(t *testing.T, w *world, step1 []byte, ext *[ping.ExtSize]byte) []byte {
	t.Helper()
	frame, _, err := UnwrapFrame(StepPing, step1)
	if err != nil {
		t.Fatal(err)
	}
	var p ping.Payload
	var e [ping.ExtSize]byte
	if len(frame) == ping.ExtFrameSize {
		_, _, err = ping.OpenExt(frame, w.n1.keys, &p, &e)
	} else {
		_, _, err = ping.Open(frame, w.n1.keys, &p)
	}
	if err != nil {
		t.Fatal(err)
	}
	id, aead := w.server.keys.Seal()
	reply := ping.Payload{Timestamp: p.Timestamp + 1, Sender: w.server.addr, Dest: w.n1.addr, Node: w.server.node, Echo: p.Random}
	if ext == nil {
		return WrapFrame(StepReply, ping.SealPayload(nil, true, id, aead, &[ping.NonceSize]byte{}, &reply))
	}
	return WrapFrame(StepReply, ping.SealPayloadExt(nil, true, id, aead, &[ping.NonceSize]byte{}, &reply, ext))
}

// A step 2 of the other form than step 1 is refused: an encrypted
// handshake never ends without keys, and a plain one never gets any.
func TestEncryptedFormMismatch(t *testing.T) {
	w := newWorld(t)
	r1, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, true)
	_, err := w.n1.engine.Continue(root, r1.ID, forgeReply(t, w, r1.Token, nil))
	wantErr(t, err, ErrMalformed)

	r1, _ = w.n1.engine.Initiate(root, KindService, w.server.addr, false)
	eph, _ := newEphemeral(rand.Reader)
	ans := encodeAnswer(&eph)
	_, err = w.n1.engine.Continue(root, r1.ID, forgeReply(t, w, r1.Token, &ans))
	wantErr(t, err, ErrMalformed)
}

// The extension's checks, at both ends.
func TestEncryptedExtensionChecks(t *testing.T) {
	w := newWorld(t)
	eph, _ := newEphemeral(rand.Reader)
	good := encodeOffer(&eph)
	var imOffer session.Ext
	(&session.Offer{Channel: session.ChannelIM, Offered: pbsOffered, Share: eph.share, Ephemeral: eph.pub}).Encode(&imOffer)
	bad := map[string]session.Ext{
		"an IM session's offer": imOffer,
		"version 2":             func() session.Ext { b := good; b[0] = 2; return b }(),
		"offers auth too":       func() session.Ext { b := good; b[2] = 0x06; return b }(),
		"an answer as offer":    encodeAnswer(&eph),
		"no ephemeral key":      func() session.Ext { b := good; clear(b[36:]); return b }(),
		"low-order key":         func() session.Ext { b := good; clear(b[36:]); b[36] = 1; return b }(),
	}
	for name, ext := range bad {
		frame, err := w.n1.self.Sealer.PingExt(nil, w.n1.addr, w.server.addr, &ext, &ping.Result{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, WrapFrame(StepPing, frame))
		if err == nil || Reason(err) != "malformed" {
			t.Errorf("step 1 with %s: %v", name, err)
		}
	}
	// The initiator's side: an answer that does not choose encrypt.
	r1, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, true)
	_, err := w.n1.engine.Continue(root, r1.ID, forgeReply(t, w, r1.Token, &good))
	wantErr(t, err, ErrMalformed)
}

// Refusals hold for encrypted handshakes, and a refused one yields no keys.
func TestEncryptedRefusals(t *testing.T) {
	w := newWorld(t)
	_, _, _, err := handshakeEnc(w.other, w.server, root, KindService, w.other.addr, true)
	wantErr(t, err, ping.ErrAuth)
	_, _, _, err = handshakeEnc(w.n1, w.server, root, KindService, w.n2.addr, true)
	wantErr(t, err, ping.ErrAddrMismatch)

	// Recorded and replayed: refused at step 1, then (forgotten) at step 3.
	_, _, old, err := handshakeEnc(w.n1, w.server, root, KindService, w.n1.addr, true)
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, old.step1)
	wantErr(t, err, ErrReplay)
	w.server.engine.seen = newExpiring[[ping.RandomSize]byte, struct{}](DefaultTTL, 16)
	r2, err := w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, old.step1)
	if err != nil {
		t.Fatal(err)
	}
	r4, err := w.server.engine.Confirm(root, r2.ID, old.step3)
	wantErr(t, err, ErrReplay)
	if r4.Keys != nil {
		t.Fatal("a refused step 3 returned keys")
	}

	// Deleted between steps: no keys for the responder.
	r1, _ := w.n1.engine.Initiate(root, KindService, w.server.addr, true)
	if r2, err = w.server.engine.Accept(root, KindService, []proto.Addr{w.n1.addr}, r1.Token); err != nil {
		t.Fatal(err)
	}
	r3, err := w.n1.engine.Continue(root, r1.ID, r2.Token)
	if err != nil {
		t.Fatal(err)
	}
	w.dir.remove(w.n1.node)
	r4, err = w.server.engine.Confirm(root, r2.ID, r3.Token)
	wantErr(t, err, ping.ErrRevoked)
	if r4.Keys != nil {
		t.Fatal("a deleted node's connection got keys")
	}
}

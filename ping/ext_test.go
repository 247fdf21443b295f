package ping

import (
	"bytes"
	"errors"
	"testing"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/tools/fuzzcorpus"
)

func testExt(b byte) *[ExtSize]byte {
	var e [ExtSize]byte
	for i := range e {
		e[i] = b + byte(i)
	}
	return &e
}

// TestExtSizesMatchProto: the frame sizes ping checks are the ones proto
// decodes.
func TestExtSizesMatchProto(t *testing.T) {
	if ExtSize != proto.SessionExtLen {
		t.Fatalf("ExtSize %d, proto.SessionExtLen %d", ExtSize, proto.SessionExtLen)
	}
	if got := len(proto.Marshal(&proto.SessionPing{})); got != ExtFrameSize {
		t.Fatalf("SessionPing frame %d bytes, ExtFrameSize %d", got, ExtFrameSize)
	}
	if got := len(proto.Marshal(&proto.SessionReply{})); got != ExtReplyFrameSize {
		t.Fatalf("SessionReply frame %d bytes, ExtReplyFrameSize %d", got, ExtReplyFrameSize)
	}
}

// TestExtSwap: a SessionPing and SessionReply pass every check and carry
// their extensions; each family is refused by the other's opener.
func TestExtSwap(t *testing.T) {
	keys := newTestKeys(t, 7)
	clock := &fakeClock{t: epoch}
	a := newEndpoint(t, keys, "127.0.0.2", 2, clock)
	b := newEndpoint(t, keys, "127.0.0.3", 3, clock)
	var sent Result
	frame, err := a.sealer.PingExt(nil, a.addr, b.addr, testExt(1), &sent)
	if err != nil {
		t.Fatal(err)
	}
	rnd := sent.Random
	if sent.KeyID != 7 || sent.Node != nodeID(2) || sent.Timestamp == 0 || sent.Sender != a.addr || sent.Dest != b.addr {
		t.Fatalf("sent ping: %+v", sent)
	}
	if len(frame) != ExtFrameSize || proto.Type(frame[3]) != proto.TypeSessionPing {
		t.Fatalf("SessionPing: %d bytes, type %s", len(frame), proto.Type(frame[3]))
	}
	if m, err := proto.Unmarshal(frame); err != nil || m.Type() != proto.TypeSessionPing {
		t.Fatalf("proto.Unmarshal: %v %v", m, err)
	}
	var p Payload
	if _, _, err := Open(bytes.Clone(frame), keys, &p); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Open of a SessionPing: %v, want ErrMalformed", err)
	}
	var res Result
	var ext [ExtSize]byte
	if err := b.verif.VerifyPingExt(bytes.Clone(frame), a.addr, b.addr, &res, &ext); err != nil {
		t.Fatal(err)
	}
	if ext != *testExt(1) || res != sent {
		t.Fatalf("opened ping: %+v, sent %+v, ext %x", res, sent, ext)
	}
	reply, err := b.sealer.ReplyExt(nil, b.addr, a.addr, res.Random, testExt(9), &sent)
	if err != nil {
		t.Fatal(err)
	}
	if len(reply) != ExtReplyFrameSize || proto.Type(reply[3]) != proto.TypeSessionReply {
		t.Fatalf("SessionReply: %d bytes, type %s", len(reply), proto.Type(reply[3]))
	}
	if err := a.verif.VerifyReplyExt(bytes.Clone(reply), b.addr, a.addr, &rnd, &res, &ext); err != nil {
		t.Fatal(err)
	}
	if ext != *testExt(9) || res != sent || res.Echo != rnd {
		t.Fatalf("opened reply: %+v, sent %+v, ext %x", res, sent, ext)
	}
	plain, _, err := a.sealer.Ping(nil, a.addr, b.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenExt(plain, keys, &p, &ext); !errors.Is(err, ErrMalformed) {
		t.Fatalf("OpenExt of a Ping: %v, want ErrMalformed", err)
	}
	// A replayed SessionPing is refused like a replayed Ping.
	if err := b.verif.VerifyPingExt(frame, a.addr, b.addr, &res, &ext); !errors.Is(err, ErrReplay) {
		t.Fatalf("second delivery: %v", err)
	}
}

// TestExtAuthenticated: a bit flipped anywhere in the extension's ciphertext
// fails authentication.
func TestExtAuthenticated(t *testing.T) {
	keys := newTestKeys(t, 7)
	clock := &fakeClock{t: epoch}
	a := newEndpoint(t, keys, "127.0.0.2", 2, clock)
	var sent Result
	frame, err := a.sealer.PingExt(nil, a.addr, addr("127.0.0.3"), testExt(1), &sent)
	if err != nil {
		t.Fatal(err)
	}
	for _, off := range []int{ExtFrameSize - TagSize - 1, ExtFrameSize - TagSize - ExtSize} {
		c := bytes.Clone(frame)
		c[off] ^= 0x80
		var p Payload
		var ext [ExtSize]byte
		if _, _, err := OpenExt(c, keys, &p, &ext); !errors.Is(err, ErrAuth) {
			t.Fatalf("flip at %d: %v, want ErrAuth", off, err)
		}
	}
}

// FuzzOpenExt: no input crashes OpenExt or the Ext verifiers, and only the
// sealed seeds are admitted.
func FuzzOpenExt(f *testing.F) {
	x := newFuzzOpenFixture(f)
	var sent Result
	ping, err := x.sender.sealer.PingExt(nil, x.sender.addr, x.recv, testExt(1), &sent)
	if err != nil {
		f.Fatal(err)
	}
	rnd := sent.Random
	f.Fuzz(func(t *testing.T, frame []byte) {
		v := &Verifier{Keys: x.keys, Guard: NewGuard(GuardConfig{Freshness: 0}, nil), Now: x.clock.Now}
		var res Result
		var ext [ExtSize]byte
		err := v.VerifyPingExt(bytes.Clone(frame), x.sender.addr, x.recv, &res, &ext)
		if err == nil && !bytes.Equal(frame, ping) {
			t.Fatalf("admitted a frame that is not the sealed seed: %x", frame)
		}
		_ = v.VerifyReplyExt(bytes.Clone(frame), x.sender.addr, x.recv, &rnd, &res, &ext)
	})
}

func openExtSeeds(t *testing.T) []fuzzcorpus.Seed {
	x := newFuzzOpenFixture(t)
	var sent Result
	ping, err := x.sender.sealer.PingExt(nil, x.sender.addr, x.recv, testExt(1), &sent)
	if err != nil {
		t.Fatal(err)
	}
	reply, err := x.sender.sealer.ReplyExt(nil, x.sender.addr, x.recv, sent.Random, testExt(2), &sent)
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(ping)
	flipped[len(flipped)-TagSize-1] ^= 1
	retyped := bytes.Clone(ping)
	retyped[3] = byte(proto.TypePing)
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("session_ping", ping),
		fuzzcorpus.Bytes("session_reply", reply),
		fuzzcorpus.Bytes("session_ping_cut", ping[:len(ping)-1]),
		fuzzcorpus.Bytes("session_ping_trailing", append(bytes.Clone(ping), 0)),
		fuzzcorpus.Bytes("session_ping_ext_flipped", flipped),
		fuzzcorpus.Bytes("session_ping_typed_ping", retyped),
		fuzzcorpus.Bytes("plain_ping", x.ping),
		fuzzcorpus.Bytes("empty", []byte{}),
	}
}

// TestExtSeedCorpus keeps testdata/fuzz/FuzzOpenExt in step with openExtSeeds.
func TestExtSeedCorpus(t *testing.T) {
	fuzzcorpus.Check(t, "FuzzOpenExt", openExtSeeds(t))
}

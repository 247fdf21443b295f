package session

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/tools/fuzzcorpus"
)

// The seed corpora are checked in under testdata/fuzz/<Target>/ and kept in
// step with the seed functions below by TestSeedCorpus
// (MOMGATE_UPDATE_CORPUS=1 rewrites them).

var sentinels = []error{ErrAuth, ErrReplay, ErrSize, ErrExpired, ErrProtocol, ErrOffer, ErrPolicy, ErrDowngrade, ErrNode}

// oneSentinel fails unless err wraps exactly one of this package's reasons.
func oneSentinel(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q wraps %d session sentinels, want 1", err, n)
	}
}

func extSeeds() []fuzzcorpus.Seed {
	var o, a Ext
	so, sa := sampleOffer(), sampleAnswer()
	so.Encode(&o)
	sa.Encode(&a)
	ctl := Offer{Channel: ChannelControl, Offered: 1 << Encrypt, Ephemeral: so.Ephemeral}
	var c Ext
	ctl.Encode(&c)
	none := Answer{Channel: ChannelIM, Offered: OfferMask(None), Chosen: None}
	var n Ext
	none.Encode(&n)
	return []fuzzcorpus.Seed{
		{Name: "offer", Args: []any{o[:], false}},
		{Name: "answer", Args: []any{a[:], true}},
		{Name: "control_offer", Args: []any{c[:], false}},
		{Name: "answer_none", Args: []any{n[:], true}},
		{Name: "offer_as_answer", Args: []any{o[:], true}},
		{Name: "zero", Args: []any{make([]byte, ping.ExtSize), false}},
		{Name: "short", Args: []any{o[:10], false}},
	}
}

// FuzzDecodeExt: offers and answers decode strictly: an error wraps
// ErrOffer alone, an accepted extension re-encodes to the same bytes and
// obeys the rules of section 6.2.
func FuzzDecodeExt(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte, answer bool) {
		if len(b) != ping.ExtSize {
			return
		}
		var e, again Ext
		copy(e[:], b)
		if !answer {
			o, err := DecodeOffer(&e)
			if err != nil {
				if !errors.Is(err, ErrOffer) {
					t.Fatalf("offer error %v", err)
				}
				oneSentinel(t, err)
				return
			}
			o.Encode(&again)
			if again != e || !o.Offered.valid() || isZero(&o.Ephemeral) == o.Offered.Has(Encrypt) {
				t.Fatalf("accepted offer %+v from %x", o, b)
			}
			return
		}
		a, err := DecodeAnswer(&e)
		if err != nil {
			if !errors.Is(err, ErrOffer) {
				t.Fatalf("answer error %v", err)
			}
			oneSentinel(t, err)
			return
		}
		a.Encode(&again)
		if again != e || !a.Offered.Has(a.Chosen) || isZero(&a.Ephemeral) == (a.Chosen == Encrypt) {
			t.Fatalf("accepted answer %+v from %x", a, b)
		}
	})
}

func controlSeeds() []fuzzcorpus.Seed {
	rk := AppendControl(nil, &Control{Type: RekeyType, Gen: 7, Ephemeral: [32]byte{9}})
	sw := AppendControl(nil, &Control{Type: SwitchType, Gen: 7})
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("rekey", rk),
		fuzzcorpus.Bytes("switch", sw),
		fuzzcorpus.Bytes("rekey_cut", rk[:len(rk)-1]),
		fuzzcorpus.Bytes("switch_trailing", append(bytes.Clone(sw), 0)),
		fuzzcorpus.Bytes("switch_typed_rekey", append(bytes.Clone(sw[:3]), byte(RekeyType), 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1)),
		fuzzcorpus.Bytes("app_frame", imFrame(40, 0)),
		fuzzcorpus.Bytes("empty", nil),
	}
}

// FuzzDecodeControl: control frames decode strictly (ErrProtocol alone on
// failure) and an accepted one re-encodes to the same bytes.
func FuzzDecodeControl(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := DecodeControl(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v", err)
			}
			oneSentinel(t, err)
			return
		}
		if !bytes.Equal(AppendControl(nil, &c), b) {
			t.Fatalf("control %+v does not re-encode to %x", c, b)
		}
	})
}

// recordFixture is a fixed session world: an initiator that sealed
// frames[0..1], rekeyed with a responder, then sealed frames[2]; stream is
// all its records in order. The responder is rebuilt fresh (from the same
// secret and randomness) for every fuzz input.
type recordFixture struct {
	prot   Protection
	frames [][]byte
	stream []byte
}

var fixtureS0 = [KeySize]byte{1, 2, 3, 4, 5, 6, 7, 8}

const fixtureRespSeed = 5 << 40

func newResponder(t testing.TB, prot Protection) *Session {
	s0 := fixtureS0
	s, err := NewSession(RoleResponder, prot, &s0, epoch, Limits{MaxRecord: 1 << 16}, &countingRand{n: fixtureRespSeed})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newRecordFixture(t testing.TB, prot Protection) *recordFixture {
	s0 := fixtureS0
	init, err := NewSession(RoleInitiator, prot, &s0, epoch, Limits{}, &countingRand{n: 3})
	if err != nil {
		t.Fatal(err)
	}
	resp := newResponder(t, prot)
	x := &recordFixture{prot: prot, frames: [][]byte{imFrame(40, 1), imFrame(300, 2), imFrame(64, 3)}}
	for _, f := range x.frames[:2] {
		if x.stream, err = init.SealFrame(x.stream, f, epoch); err != nil {
			t.Fatal(err)
		}
	}
	later := epoch.Add(DefaultRekeyAfterTime)
	rekey, err := init.Tick(nil, later)
	if err != nil {
		t.Fatal(err)
	}
	x.stream = append(x.stream, rekey...)
	// The responder reads the initiator's records so far and answers the
	// rekey; the initiator takes the answer, which makes it switch.
	var answer []byte
	for r := bytes.NewReader(x.stream); ; {
		rec, err := ReadRecord(r, nil, 0)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if _, answer, err = resp.OpenRecord(rec, answer, later); err != nil {
			t.Fatal(err)
		}
	}
	for r := bytes.NewReader(answer); ; {
		rec, err := ReadRecord(r, nil, 0)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var out []byte
		if _, out, err = init.OpenRecord(rec, nil, later); err != nil {
			t.Fatal(err)
		}
		x.stream = append(x.stream, out...)
	}
	if x.stream, err = init.SealFrame(x.stream, x.frames[2], later); err != nil {
		t.Fatal(err)
	}
	return x
}

// readStream feeds stream to a fresh responder and returns the frames it
// delivered and the error it stopped on (nil at a clean end).
func (x *recordFixture) readStream(t testing.TB, stream []byte) ([][]byte, error) {
	resp := newResponder(t, x.prot)
	r := bytes.NewReader(stream)
	var got [][]byte
	var buf []byte
	for {
		rec, err := ReadRecord(r, buf, resp.Limit())
		if err == io.EOF {
			return got, nil
		} else if err != nil {
			return got, err
		}
		buf = rec
		f, _, err := resp.OpenRecord(rec, nil, epoch.Add(DefaultRekeyAfterTime))
		if err != nil {
			return got, err
		}
		if f != nil {
			got = append(got, bytes.Clone(f))
		}
	}
}

// FuzzReadRecords: no byte stream crashes the reader; every frame it
// delivers is the next one the real sender sealed, in order (nothing can
// be forged, reordered or repeated); every failure wraps exactly one
// session reason.
func FuzzReadRecords(f *testing.F) {
	fixtures := map[bool]*recordFixture{false: newRecordFixture(f, Auth), true: newRecordFixture(f, Encrypt)}
	f.Fuzz(func(t *testing.T, stream []byte, encrypt bool) {
		x := fixtures[encrypt]
		got, err := x.readStream(t, stream)
		if err != nil {
			oneSentinel(t, err)
		}
		if len(got) > len(x.frames) {
			t.Fatalf("%d frames delivered, %d sealed", len(got), len(x.frames))
		}
		for i, g := range got {
			if !bytes.Equal(g, x.frames[i]) {
				t.Fatalf("frame %d delivered is not frame %d sealed: %x", i, i, g)
			}
		}
	})
}

func readRecordsSeeds(t *testing.T) []fuzzcorpus.Seed {
	var seeds []fuzzcorpus.Seed
	for _, enc := range []bool{false, true} {
		x := newRecordFixture(t, Auth)
		name := "auth_"
		if enc {
			x, name = newRecordFixture(t, Encrypt), "encrypt_"
		}
		n0, _ := ParseRecordHeader(x.stream, 0)
		seeds = append(seeds,
			fuzzcorpus.Seed{Name: name + "stream", Args: []any{x.stream, enc}},
			fuzzcorpus.Seed{Name: name + "first_record", Args: []any{x.stream[:n0], enc}},
			fuzzcorpus.Seed{Name: name + "first_record_twice", Args: []any{append(bytes.Clone(x.stream[:n0]), x.stream[:n0]...), enc}},
			fuzzcorpus.Seed{Name: name + "first_record_dropped", Args: []any{x.stream[n0:], enc}},
			fuzzcorpus.Seed{Name: name + "flipped", Args: []any{flip(x.stream, n0+20), enc}},
			fuzzcorpus.Seed{Name: name + "cut", Args: []any{x.stream[:len(x.stream)-1], enc}},
		)
	}
	big := proto.AppendHeader(nil, proto.Header{Version: proto.V2, Type: RecordType, Length: 1 << 20})
	return append(seeds,
		fuzzcorpus.Seed{Name: "oversized_header", Args: []any{big, true}},
		fuzzcorpus.Seed{Name: "plain_frame", Args: []any{imFrame(40, 0), true}},
		fuzzcorpus.Seed{Name: "empty", Args: []any{[]byte{}, false}},
	)
}

// swapFixture is a fixed cluster-key world for the swap targets.
type swapFixture struct {
	a, b  *peer
	ping  []byte // a SessionPing from a to b
	reply []byte // b's SessionReply to a fixed initiator's ping
}

const swapInitSeed, swapRespSeed = 7, 8 << 40

func newSwapFixture(t testing.TB) *swapFixture {
	x := &swapFixture{}
	x.a, x.b = newPair(t)
	_, x.ping = sessionPing(t, x.a, x.b, imConfig(Auth, swapInitSeed))
	var res ping.Result
	var err error
	if x.reply, _, err = Respond(nil, bytes.Clone(x.ping), x.b.sealer, x.b.verif, x.a.addr, x.b.addr, imConfig(Encrypt, swapRespSeed), x.b.clock.Now(), &res); err != nil {
		t.Fatal(err)
	}
	return x
}

// freshVerifier is a verifier with no marks, so every input is a first
// contact (freshness off: the fixture's clock does not move).
func (x *swapFixture) freshVerifier(p *peer) *ping.Verifier {
	return &ping.Verifier{Keys: p.verif.Keys, Guard: ping.NewGuard(ping.GuardConfig{Freshness: 0}, nil), Now: p.clock.Now}
}

// FuzzRespond: no first frame crashes the responder, and only the sealed
// seed SessionPing makes a session; refusals are PING or session errors.
func FuzzRespond(f *testing.F) {
	x := newSwapFixture(f)
	f.Fuzz(func(t *testing.T, frame []byte) {
		var res ping.Result
		out, s, err := Respond(nil, bytes.Clone(frame), x.b.sealer, x.freshVerifier(x.b), x.a.addr, x.b.addr, imConfig(Auth, swapRespSeed), x.b.clock.Now(), &res)
		if err != nil {
			if _, ours := sessionReason(err); !ours && ping.Reason(err) == "other" {
				t.Fatalf("error %v has no reason", err)
			}
			if out != nil || s != nil {
				t.Fatal("output on error")
			}
			return
		}
		if !bytes.Equal(frame, x.ping) || s == nil {
			t.Fatalf("accepted a frame that is not the sealed seed: %x", frame)
		}
	})
}

// FuzzFinish: no reply crashes the initiator, and only the sealed seed
// SessionReply (to the fixed initiator's ping) makes a session.
func FuzzFinish(f *testing.F) {
	x := newSwapFixture(f)
	f.Fuzz(func(t *testing.T, reply []byte) {
		in := x.initiator(t)
		var res ping.Result
		s, err := in.Finish(bytes.Clone(reply), x.freshVerifier(x.a), x.b.addr, x.a.addr, x.a.clock.Now(), &res)
		if err != nil {
			if _, ours := sessionReason(err); !ours && ping.Reason(err) == "other" {
				t.Fatalf("error %v has no reason", err)
			}
			return
		}
		if !bytes.Equal(reply, x.reply) || s == nil {
			t.Fatalf("accepted a reply that is not the sealed seed: %x", reply)
		}
	})
}

// initiator is the fixture's initiator as it was right after sealing its
// ping: the same randomness gives the same offer, and what it sealed is
// read back from the ping.
func (x *swapFixture) initiator(t testing.TB) *Initiator {
	in, err := NewInitiator(imConfig(Auth, swapInitSeed))
	if err != nil {
		t.Fatal(err)
	}
	var ext Ext
	if _, _, err := ping.OpenExt(bytes.Clone(x.ping), x.a.verif.Keys, &in.sent.Payload, &ext); err != nil {
		t.Fatal(err)
	}
	in.sent.KeyID, in.ready = 7, true
	return in
}

func swapSeeds(t *testing.T, frame []byte) []fuzzcorpus.Seed {
	retyped := bytes.Clone(frame)
	retyped[3] ^= 0x12 ^ 0x10
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("sealed", frame),
		fuzzcorpus.Bytes("flipped_ext", flip(frame, len(frame)-TagSize-3)),
		fuzzcorpus.Bytes("cut", frame[:len(frame)-1]),
		fuzzcorpus.Bytes("retyped", retyped),
		fuzzcorpus.Bytes("empty", []byte{}),
	}
}

// TestSeedCorpus checks the checked-in seed corpora against the seed
// functions.
func TestSeedCorpus(t *testing.T) {
	x := newSwapFixture(t)
	fuzzcorpus.Check(t, "FuzzDecodeExt", extSeeds())
	fuzzcorpus.Check(t, "FuzzDecodeControl", controlSeeds())
	fuzzcorpus.Check(t, "FuzzReadRecords", readRecordsSeeds(t))
	fuzzcorpus.Check(t, "FuzzRespond", swapSeeds(t, x.ping))
	fuzzcorpus.Check(t, "FuzzFinish", swapSeeds(t, x.reply))
	fuzzcorpus.Check(t, "FuzzSealedExt", sealedExtSeeds())
	fuzzcorpus.Check(t, "FuzzSealedInner", sealedInnerSeeds())
}

// TestFuzzFixturesAdmitSeeds: the seeds the fuzz targets may accept are
// accepted in their worlds, so mutations of them reach every check.
func TestFuzzFixturesAdmitSeeds(t *testing.T) {
	for _, p := range []Protection{Auth, Encrypt} {
		x := newRecordFixture(t, p)
		got, err := x.readStream(t, x.stream)
		if err != nil || len(got) != 3 {
			t.Fatalf("%s fixture stream: %d frames, %v", p, len(got), err)
		}
	}
	x := newSwapFixture(t)
	var res ping.Result
	if _, s, err := Respond(nil, bytes.Clone(x.ping), x.b.sealer, x.freshVerifier(x.b), x.a.addr, x.b.addr, imConfig(Auth, swapRespSeed), x.b.clock.Now(), &res); err != nil || s == nil {
		t.Fatalf("seed ping: %v", err)
	}
	if s, err := x.initiator(t).Finish(bytes.Clone(x.reply), x.freshVerifier(x.a), x.b.addr, x.a.addr, x.a.clock.Now(), &res); err != nil || s == nil {
		t.Fatalf("seed reply: %v", err)
	}
}

// FuzzSealedExt reaches the checks after decryption: the fuzzer's bytes
// are the extension of a SessionPing (answer false) or of a SessionReply
// to the fixture initiator's ping (answer true), sealed under the cluster
// key, so every input passes the PING checks and meets the session's.
func FuzzSealedExt(f *testing.F) {
	x := newSwapFixture(f)
	f.Fuzz(func(t *testing.T, b []byte, answer bool) {
		var ext Ext
		copy(ext[:], b)
		var res, sent ping.Result
		if !answer {
			frame, err := x.a.sealer.PingExt(nil, x.a.addr, x.b.addr, &ext, &sent)
			if err != nil {
				t.Fatal(err)
			}
			out, s, err := Respond(nil, frame, x.b.sealer, x.freshVerifier(x.b), x.a.addr, x.b.addr, imConfig(Auth, swapRespSeed), x.b.clock.Now(), &res)
			if err != nil {
				oneSentinel(t, err)
				if out != nil || s != nil {
					t.Fatal("output on error")
				}
				return
			}
			if _, err := DecodeOffer(&ext); err != nil {
				t.Fatalf("accepted an offer that does not decode: %v", err)
			}
			return
		}
		in := x.initiator(t)
		reply, err := x.b.sealer.ReplyExt(nil, x.b.addr, x.a.addr, in.sent.Random, &ext, &sent)
		if err != nil {
			t.Fatal(err)
		}
		s, err := in.Finish(reply, x.freshVerifier(x.a), x.b.addr, x.a.addr, x.a.clock.Now(), &res)
		if err != nil {
			oneSentinel(t, err)
			return
		}
		a, err := DecodeAnswer(&ext)
		if err != nil || a.Offered != in.offer.Offered || (a.Chosen == None) != (s == nil) {
			t.Fatalf("accepted answer %+v (%v) for offer %s, session %v", a, err, in.offer.Offered, s)
		}
	})
}

func sealedExtSeeds() []fuzzcorpus.Seed {
	var o, a, n Ext
	so, sa := sampleOffer(), sampleAnswer()
	so.Encode(&o)
	sa.Offered = OfferMask(Auth)
	sa.Chosen, sa.Ephemeral = Auth, [32]byte{}
	sa.Encode(&a)
	none := Answer{Channel: ChannelIM, Offered: OfferMask(Auth), Chosen: None}
	none.Encode(&n)
	return []fuzzcorpus.Seed{
		{Name: "offer", Args: []any{o[:], false}},
		{Name: "answer_auth", Args: []any{a[:], true}},
		{Name: "answer_none", Args: []any{n[:], true}},
		{Name: "zero_offer", Args: []any{make([]byte, ping.ExtSize), false}},
		{Name: "zero_answer", Args: []any{make([]byte, ping.ExtSize), true}},
	}
}

// FuzzSealedInner reaches the checks after a record opens: the fuzzer's
// bytes are the inner frame of a record sealed under the fixture's keys
// (the record layer's own checks bypassed), fed to the responder, so a
// control frame reaches Machine.Receive. Every failure wraps one session
// reason; a delivered frame is exactly the bytes sealed, never a control
// frame.
func FuzzSealedInner(f *testing.F) {
	f.Fuzz(func(t *testing.T, inner []byte, encrypt bool) {
		prot := Auth
		if encrypt {
			prot = Encrypt
		}
		s0 := fixtureS0
		init, err := NewSession(RoleInitiator, prot, &s0, epoch, Limits{}, &countingRand{n: 3})
		if err != nil {
			t.Fatal(err)
		}
		resp := newResponder(t, prot)
		if len(inner) > resp.Limit()-RecordOverhead {
			return
		}
		rec := init.tx.seal(nil, inner)
		got, out, err := resp.OpenRecord(rec, nil, epoch)
		if err != nil {
			oneSentinel(t, err)
			return
		}
		if got != nil && (!bytes.Equal(got, inner) || isControl(got)) {
			t.Fatalf("delivered %x for sealed %x", got, inner)
		}
		if got == nil && !isControl(inner) {
			t.Fatalf("an application frame %x was swallowed", inner)
		}
		if len(out) > 0 { // the answer to a Rekey: its own records open at the initiator
			for r := bytes.NewReader(out); ; {
				rec, err := ReadRecord(r, nil, 0)
				if err == io.EOF {
					break
				} else if err != nil {
					t.Fatal(err)
				}
				if _, _, err := init.OpenRecord(rec, nil, epoch); err != nil && !errors.Is(err, ErrProtocol) {
					t.Fatalf("the responder's answer does not open: %v", err)
				}
			}
		}
	})
}

func sealedInnerSeeds() []fuzzcorpus.Seed {
	rekey := AppendControl(nil, &Control{Type: RekeyType, Gen: 1})
	rekeyEnc := AppendControl(nil, &Control{Type: RekeyType, Gen: 1, Ephemeral: sampleOffer().Ephemeral})
	sw := AppendControl(nil, &Control{Type: SwitchType, Gen: 1})
	return []fuzzcorpus.Seed{
		{Name: "im_frame", Args: []any{imFrame(40, 1), false}},
		{Name: "rekey_auth", Args: []any{rekey, false}},
		{Name: "rekey_encrypt", Args: []any{rekeyEnc, true}},
		{Name: "switch_early", Args: []any{sw, true}},
		{Name: "bare_header", Args: []any{frameOf(proto.TypeIMPoll, nil), true}},
		{Name: "not_a_frame", Args: []any{[]byte("not a frame"), false}},
		{Name: "empty", Args: []any{[]byte{}, true}},
	}
}

package session

import (
	"bytes"
	"errors"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

func imConfig(min Protection, seed uint64) Config {
	return Config{Channel: ChannelIM, Min: min, Rand: &countingRand{n: seed}}
}

// exchange checks that a frame sealed by each side opens at the other.
func exchange(t *testing.T, a, b *Session, clock *fakeClock) {
	t.Helper()
	for _, dir := range []struct{ from, to *Session }{{a, b}, {b, a}} {
		f := imFrame(64, 0x5a)
		rec, err := dir.from.SealFrame(nil, f, clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := dir.to.OpenRecord(rec, nil, clock.Now())
		if err != nil || !bytes.Equal(got, f) {
			t.Fatalf("exchange: %v", err)
		}
	}
}

// TestSwapNegotiates: every pair of minimums gives the stronger of the two,
// at both ends, and the sessions work; None gives no session at either end.
func TestSwapNegotiates(t *testing.T) {
	for _, mi := range []Protection{None, Auth, Encrypt} {
		for _, mr := range []Protection{None, Auth, Encrypt} {
			a, b := newPair(t)
			sa, sb := swap(t, a, b, imConfig(mi, 1), imConfig(mr, 2<<40))
			want := max(mi, mr)
			if want == None {
				if sa != nil || sb != nil {
					t.Fatalf("%s/%s: sessions for none", mi, mr)
				}
				continue
			}
			if sa.Protection() != want || sb.Protection() != want {
				t.Fatalf("%s/%s: got %s and %s, want %s", mi, mr, sa.Protection(), sb.Protection(), want)
			}
			exchange(t, sa, sb, a.clock)
		}
	}
}

// TestSwapKeepsPingChecks: the session PING frames get every PING check
// (here: the address check and the replay guard) with ping's reasons.
func TestSwapKeepsPingChecks(t *testing.T) {
	a, b := newPair(t)
	_, frame := sessionPing(t, a, b, imConfig(Auth, 1))
	var res ping.Result
	if _, _, err := Respond(nil, bytes.Clone(frame), b.sealer, b.verif, addr("127.0.0.9"), b.addr, imConfig(Auth, 2), b.clock.Now(), &res); !errors.Is(err, ping.ErrAddrMismatch) || Reason(err) != "addr_mismatch" {
		t.Fatalf("from another address: %v (%s)", err, Reason(err))
	}
	dst := []byte("kept")
	out, s, err := Respond(dst, bytes.Clone(frame), b.sealer, b.verif, a.addr, b.addr, imConfig(Auth, 2), b.clock.Now(), &res)
	if err != nil || s == nil || !bytes.HasPrefix(out, dst) {
		t.Fatalf("first delivery: %v", err)
	}
	out, _, err = Respond(dst, frame, b.sealer, b.verif, a.addr, b.addr, imConfig(Auth, 2), b.clock.Now(), &res)
	if !errors.Is(err, ping.ErrReplay) || !bytes.Equal(out, dst) {
		t.Fatalf("replayed SessionPing: %v, appended %q", err, out)
	}
	plain, _, err := a.sealer.Ping(nil, a.addr, b.addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Respond(nil, plain, b.sealer, b.verif, a.addr, b.addr, imConfig(Auth, 2), b.clock.Now(), &res); !errors.Is(err, ping.ErrMalformed) {
		t.Fatalf("plain Ping to Respond: %v, want ping.ErrMalformed", err)
	}
}

// TestRespondRefusesOffers: an offer the responder cannot take is refused
// with a Reject code, before anything is sealed.
func TestRespondRefusesOffers(t *testing.T) {
	for name, c := range map[string]struct {
		offer Offer
		cfg   Config
		want  error
		code  proto.RejectCode
	}{
		"none only to an auth responder": {Offer{Channel: ChannelIM, Offered: 1 << None}, imConfig(Auth, 2), ErrPolicy, proto.RejectSessionPolicy},
		"auth only to encrypt":           {Offer{Channel: ChannelIM, Offered: 1 << Auth}, imConfig(Encrypt, 2), ErrPolicy, proto.RejectSessionPolicy},
		"im offer on a control port": {Offer{Channel: ChannelIM, Offered: 1 << Encrypt, Ephemeral: [32]byte{9}},
			Config{Channel: ChannelControl, Rand: &countingRand{}, Binding: &Binding{}, ExpectNode: nodeOf(2)}, ErrOffer, proto.RejectSessionOffer},
		"control offer on an im port": {Offer{Channel: ChannelControl, Offered: 1 << Encrypt, Ephemeral: [32]byte{9}},
			imConfig(None, 2), ErrOffer, proto.RejectSessionOffer},
		"low-order ephemeral": {Offer{Channel: ChannelIM, Offered: 1 << Encrypt, Ephemeral: [32]byte{1}},
			imConfig(None, 2), ErrOffer, proto.RejectSessionOffer},
	} {
		t.Run(name, func(t *testing.T) {
			a, b := newPair(t)
			var ext Ext
			c.offer.Encode(&ext)
			var sent, res ping.Result
			frame, err := a.sealer.PingExt(nil, a.addr, b.addr, &ext, &sent)
			if err != nil {
				t.Fatal(err)
			}
			out, s, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr, c.cfg, b.clock.Now(), &res)
			if !errors.Is(err, c.want) || s != nil || out != nil {
				t.Fatalf("got %v (session %v, %d bytes), want %v", err, s, len(out), c.want)
			}
			if code, ok := RejectCode(err); !ok || code != c.code {
				t.Fatalf("reject code %d %v, want %d", code, ok, c.code)
			}
		})
	}
}

// reseal opens a sealed session PING under the cluster key, lets edit
// change its extension and seals it again: what an attacker holding the
// cluster key (and nothing else) can do on path.
func reseal(t *testing.T, frame []byte, keys *testKeys, edit func(*Ext)) []byte {
	t.Helper()
	var p ping.Payload
	var ext Ext
	id, reply, err := ping.OpenExt(bytes.Clone(frame), keys, &p, &ext)
	if err != nil {
		t.Fatal(err)
	}
	edit(&ext)
	var nonce [ping.NonceSize]byte
	copy(nonce[:], frame[proto.HeaderSize+4:])
	return ping.SealPayloadExt(nil, reply, id, keys.aeads[id], &nonce, &p, &ext)
}

// TestFinishRefusesForgedAnswers: an answer that does not echo the offer
// (a downgrade by someone who holds the cluster key) is refused.
func TestFinishRefusesForgedAnswers(t *testing.T) {
	for name, edit := range map[string]func(*Ext){
		"offer echo narrowed":               func(e *Ext) { e[2] = byte(OfferMask(Auth)) },
		"channel changed":                   func(e *Ext) { e[1] = byte(ChannelControl) },
		"chose none, echoing a wider offer": func(e *Ext) { e[2], e[3] = 0x07, byte(None); clear(e[36:]) },
	} {
		t.Run(name, func(t *testing.T) {
			a, b := newPair(t)
			keys := a.sealer.Keys.(*testKeys)
			in, frame := sessionPing(t, a, b, imConfig(Encrypt, 1))
			var res ping.Result
			reply, _, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr, imConfig(Encrypt, 2), b.clock.Now(), &res)
			if err != nil {
				t.Fatal(err)
			}
			forgedReply := reseal(t, reply, keys, edit)
			if s, err := in.Finish(forgedReply, a.verif, b.addr, a.addr, a.clock.Now(), &res); !errors.Is(err, ErrOffer) || s != nil {
				t.Fatalf("forged answer: %v, want ErrOffer", err)
			}
		})
	}
}

// TestTranscriptBinding: a cluster-key holder who changes a share on the
// way gets both ends to finish the swap, but with different keys: the
// first record fails to open.
func TestTranscriptBinding(t *testing.T) {
	for _, p := range []Protection{Auth, Encrypt} {
		t.Run(p.String(), func(t *testing.T) {
			a, b := newPair(t)
			keys := a.sealer.Keys.(*testKeys)
			in, frame := sessionPing(t, a, b, imConfig(p, 1))
			frame = reseal(t, frame, keys, func(e *Ext) { e[4] ^= 1 }) // the initiator's share
			var res ping.Result
			reply, sb, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr, imConfig(p, 2), b.clock.Now(), &res)
			if err != nil {
				t.Fatal(err)
			}
			sa, err := in.Finish(reply, a.verif, b.addr, a.addr, a.clock.Now(), &res)
			if err != nil {
				t.Fatal(err)
			}
			firstRecordRefused(t, sa, sb, a.clock)
		})
	}
}

// firstRecordRefused checks that the first record from a does not
// authenticate at b: the two sides derived different keys.
func firstRecordRefused(t *testing.T, a, b *Session, clock *fakeClock) {
	t.Helper()
	rec, err := a.SealFrame(nil, imFrame(40, 1), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.OpenRecord(rec, nil, clock.Now()); !errors.Is(err, ErrAuth) {
		t.Fatalf("first record: %v, want ErrAuth", err)
	}
}

// controlBindings returns identity keys of a MOM and a server and the binding
// each computes for one handshake.
func controlBindings(t *testing.T, momHandshake, srvHandshake [][]byte) (mom, srv *Binding) {
	t.Helper()
	mk, err := newEphemeral(&countingRand{n: 11})
	if err != nil {
		t.Fatal(err)
	}
	sk, err := newEphemeral(&countingRand{n: 12 << 40})
	if err != nil {
		t.Fatal(err)
	}
	if mom, err = NewBinding(privOf(t, &mk), &sk.pub, momHandshake...); err != nil {
		t.Fatal(err)
	}
	if srv, err = NewBinding(privOf(t, &sk), &mk.pub, srvHandshake...); err != nil {
		t.Fatal(err)
	}
	return mom, srv
}

// nodeOf is the node id of newPeer(..., node, ...).
func nodeOf(node byte) proto.NodeID {
	var id proto.NodeID
	for i := range id {
		id[i] = node
	}
	return id
}

// TestControlSession: a control session is always encrypt, whatever the
// configured minimum, and needs both sides to have seen the same handshake
// and to hold the right identity keys.
func TestControlSession(t *testing.T) {
	hs := [][]byte{[]byte("server hello"), []byte("hello"), []byte("welcome")}
	ctl := func(b *Binding, seed uint64, expect *peer) Config {
		return Config{Channel: ChannelControl, Min: None, Rand: &countingRand{n: seed}, Binding: b, ExpectNode: expect.node}
	}
	t.Run("same handshake", func(t *testing.T) {
		bm, bs := controlBindings(t, hs, hs)
		a, b := newPair(t)
		sa, sb := swap(t, a, b, ctl(bm, 1, b), ctl(bs, 2<<40, a))
		if sa.Protection() != Encrypt || sb.Protection() != Encrypt {
			t.Fatalf("control protections %s %s", sa.Protection(), sb.Protection())
		}
		exchange(t, sa, sb, a.clock)
	})
	for name, c := range map[string]struct{ mom, srv [][]byte }{
		"welcome changed on the way": {hs, [][]byte{hs[0], hs[1], []byte("welcomE")}},
		"server hello changed":       {[][]byte{[]byte("server hellO"), hs[1], hs[2]}, hs},
	} {
		t.Run(name, func(t *testing.T) {
			bm, bs := controlBindings(t, c.mom, c.srv)
			a, b := newPair(t)
			sa, sb := swap(t, a, b, ctl(bm, 1, b), ctl(bs, 2<<40, a))
			firstRecordRefused(t, sa, sb, a.clock)
		})
	}
	t.Run("wrong identity key", func(t *testing.T) {
		bm, bs := controlBindings(t, hs, hs)
		bs.Static[0] ^= 1 // as if the server used another node's key
		a, b := newPair(t)
		sa, sb := swap(t, a, b, ctl(bm, 1, b), ctl(bs, 2<<40, a))
		firstRecordRefused(t, sa, sb, a.clock)
	})
}

func TestConfigRefusals(t *testing.T) {
	for name, c := range map[string]Config{
		"no channel":              {Min: Auth, Rand: &countingRand{}},
		"control without binding": {Channel: ChannelControl, Rand: &countingRand{}},
		"im with binding":         {Channel: ChannelIM, Rand: &countingRand{}, Binding: &Binding{}},
		"no randomness":           {Channel: ChannelIM},
		"bad protection":          {Channel: ChannelIM, Min: 3, Rand: &countingRand{}},
		"bad limits":              {Channel: ChannelIM, Rand: &countingRand{}, Limits: Limits{RekeyAfterTime: -1}},
	} {
		if _, err := NewInitiator(c); err == nil {
			t.Errorf("%s: NewInitiator accepted", name)
		}
		var res ping.Result
		if _, _, err := Respond(nil, nil, nil, nil, proto.Addr{}, proto.Addr{}, c, epoch, &res); err == nil {
			t.Errorf("%s: Respond accepted", name)
		}
	}
	in, err := NewInitiator(imConfig(Auth, 1))
	if err != nil {
		t.Fatal(err)
	}
	var res ping.Result
	if _, err := in.Finish(nil, nil, proto.Addr{}, proto.Addr{}, epoch, &res); err == nil {
		t.Error("Finish before AppendPing accepted")
	}
	a, b := newPair(t)
	in2, frame := sessionPing(t, a, b, imConfig(Auth, 1))
	reply, _, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr, imConfig(Auth, 2), b.clock.Now(), &res)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in2.Finish(bytes.Clone(reply), a.verif, b.addr, a.addr, epoch, &res); err != nil {
		t.Fatal(err)
	}
	if _, err := in2.Finish(reply, a.verif, b.addr, a.addr, epoch, &res); err == nil {
		t.Error("a second Finish accepted")
	}
	if _, err := NewInitiator(Config{Channel: ChannelIM, Min: Encrypt, Rand: &fixedRand{b: make([]byte, 40)}}); err == nil {
		t.Error("NewInitiator without enough randomness for its ephemeral key")
	}
}

// TestInitialSecretInputs: S0 depends on every input it is given.
func TestInitialSecretInputs(t *testing.T) {
	var th, is, rs, ee, ss [32]byte
	base := InitialSecret(&th, &is, &rs, &ee, &ss)
	for name, f := range map[string]func() [KeySize]byte{
		"transcript": func() [KeySize]byte { x := th; x[0] = 1; return InitialSecret(&x, &is, &rs, &ee, &ss) },
		"init share": func() [KeySize]byte { x := is; x[0] = 1; return InitialSecret(&th, &x, &rs, &ee, &ss) },
		"resp share": func() [KeySize]byte { x := rs; x[0] = 1; return InitialSecret(&th, &is, &x, &ee, &ss) },
		"ee":         func() [KeySize]byte { x := ee; x[0] = 1; return InitialSecret(&th, &is, &rs, &x, &ss) },
		"ss":         func() [KeySize]byte { x := ss; x[0] = 1; return InitialSecret(&th, &is, &rs, &ee, &x) },
		"no ss":      func() [KeySize]byte { return InitialSecret(&th, &is, &rs, &ee, nil) },
	} {
		if f() == base {
			t.Errorf("S0 does not depend on %s", name)
		}
	}
	if th != [32]byte{} || is != [32]byte{} {
		t.Fatal("inputs modified")
	}
	if chacha20poly1305.KeySize != KeySize {
		t.Fatal("record key size")
	}
}

package ping

import (
	"bytes"
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/tools/fuzzcorpus"
)

// fuzzOpenFixture is the fixed world of FuzzOpen: key 7 and the test
// vector key (PROTOCOL.md section 5), a sender at 127.0.0.2 and a receiver
// at 127.0.0.3, as in the vectors, so the vector frames reach every check.
type fuzzOpenFixture struct {
	keys   *testKeys
	clock  *fakeClock
	sender *endpoint
	recv   proto.Addr
	ping   []byte // sealed under key 7
	reply  []byte
	rnd    [RandomSize]byte
	vector []byte // the vector Ping; with ping, the only frames that may pass
}

func newFuzzOpenFixture(t testing.TB) *fuzzOpenFixture {
	x := &fuzzOpenFixture{keys: newTestKeys(t, 7), clock: &fakeClock{t: epoch}, recv: addr("127.0.0.3")}
	key, err := hex.DecodeString(vectorKeyHex)
	if err != nil {
		t.Fatal(err)
	}
	if x.keys.aeads[vectorKeyID], err = chacha20poly1305.NewX(key); err != nil {
		t.Fatal(err)
	}
	if x.vector, err = hex.DecodeString(vectorPingHex); err != nil {
		t.Fatal(err)
	}
	x.sender = newEndpoint(t, x.keys, "127.0.0.2", 2, x.clock)
	if x.ping, x.rnd, err = x.sender.sealer.Ping(nil, x.sender.addr, x.recv); err != nil {
		t.Fatal(err)
	}
	if x.reply, err = x.sender.sealer.Reply(nil, x.sender.addr, x.recv, x.rnd); err != nil {
		t.Fatal(err)
	}
	return x
}

// FuzzOpen: no input crashes Open or Verify, and nothing but a frame sealed
// under a held key (the sealed seed or the vector Ping) is ever admitted. Seeds live in testdata/fuzz/FuzzOpen
// (see openSeeds) besides the ones added here.
func FuzzOpen(f *testing.F) {
	x := newFuzzOpenFixture(f)
	sealed := bytes.Clone(x.ping)
	f.Add(bytes.Clone(x.ping))
	f.Add(bytes.Clone(x.reply))
	f.Add(x.ping[:FrameSize-1])
	f.Add([]byte{})
	f.Add([]byte("MG\x02\x10\x00\x00\x00\x74"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		v := &Verifier{Keys: x.keys, Guard: NewGuard(GuardConfig{Freshness: 0}, nil), Now: x.clock.Now}
		var res Result
		err := v.VerifyPing(bytes.Clone(orig), x.sender.addr, x.recv, &res)
		if err == nil && !bytes.Equal(orig, sealed) && !bytes.Equal(orig, x.vector) {
			// Only frames the fuzzer cannot forge pass: the seeds themselves.
			t.Fatalf("admitted a frame that is not a sealed seed: %x", orig)
		}
		_ = v.VerifyReply(bytes.Clone(orig), x.sender.addr, x.recv, &x.rnd, &res)
		_, _ = KeyIDOf(orig)
	})
}

// openSeeds are the checked-in FuzzOpen seeds: the PROTOCOL.md test
// vectors and damaged copies of them, and frames under the fuzz key.
func openSeeds(t *testing.T) []fuzzcorpus.Seed {
	x := newFuzzOpenFixture(t)
	ping, reply := mustHex(t, vectorPingHex), mustHex(t, vectorReplyHex)
	with := func(b []byte, f func(c []byte)) []byte {
		c := bytes.Clone(b)
		f(c)
		return c
	}
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("vector_ping", ping),
		fuzzcorpus.Bytes("vector_reply", reply),
		fuzzcorpus.Bytes("vector_ping_truncated", ping[:len(ping)-1]),
		fuzzcorpus.Bytes("vector_ping_trailing_byte", append(bytes.Clone(ping), 0)),
		fuzzcorpus.Bytes("vector_ping_header_only", ping[:proto.HeaderSize]),
		fuzzcorpus.Bytes("vector_ping_typed_reply", with(ping, func(c []byte) { c[3] = byte(proto.TypePingReply) })),
		fuzzcorpus.Bytes("vector_ping_typed_reject", with(ping, func(c []byte) { c[3] = byte(proto.TypeReject) })),
		fuzzcorpus.Bytes("vector_ping_version_1", with(ping, func(c []byte) { c[2] = 1 })),
		fuzzcorpus.Bytes("vector_ping_bad_magic", with(ping, func(c []byte) { c[0] = 'X' })),
		fuzzcorpus.Bytes("vector_ping_length_lies", with(ping, func(c []byte) { c[7]++ })),
		fuzzcorpus.Bytes("vector_ping_tag_flipped", with(ping, func(c []byte) { c[len(c)-1] ^= 1 })),
		fuzzcorpus.Bytes("vector_reply_cut_to_ping_size", reply[:FrameSize]),
		fuzzcorpus.Bytes("fuzz_key_ping", x.ping),
		fuzzcorpus.Bytes("fuzz_key_reply", x.reply),
		fuzzcorpus.Bytes("fuzz_key_ping_key_id_changed", with(x.ping, func(c []byte) { c[proto.HeaderSize+3] ^= 1 })),
		fuzzcorpus.Bytes("empty", []byte{}),
	}
}

// TestSeedCorpus checks the checked-in seed corpus against openSeeds;
// MOMGATE_UPDATE_CORPUS=1 rewrites it.
func TestSeedCorpus(t *testing.T) {
	fuzzcorpus.Check(t, "FuzzOpen", openSeeds(t))
}

// TestFuzzOpenFixtureAdmitsSeeds: the two frames FuzzOpen may admit do pass
// every check in its world, so mutations of them reach every check too.
func TestFuzzOpenFixtureAdmitsSeeds(t *testing.T) {
	x := newFuzzOpenFixture(t)
	for name, frame := range map[string][]byte{"sealed": x.ping, "vector": x.vector} {
		v := &Verifier{Keys: x.keys, Guard: NewGuard(GuardConfig{Freshness: 0}, nil), Now: x.clock.Now}
		var res Result
		if err := v.VerifyPing(bytes.Clone(frame), x.sender.addr, x.recv, &res); err != nil {
			t.Errorf("%s ping refused: %v", name, err)
		}
	}
}

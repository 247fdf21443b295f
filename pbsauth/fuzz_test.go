package pbsauth

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"testing"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/tools/fuzzcorpus"
)

// FuzzReadRequest: no input crashes the request decoder, and whatever it
// accepts encodes back to the same bytes (one encoding per request).
func FuzzReadRequest(f *testing.F) {
	for _, s := range requestSeeds(f) {
		f.Add(s.Args[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := ReadRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		out, err := AppendRequest(nil, &q)
		if err != nil {
			t.Fatalf("decoded %+v does not encode: %v", q, err)
		}
		// ReadRequest reads one frame; bytes after it are not its.
		if len(out) > len(b) || !bytes.Equal(out, b[:len(out)]) || len(out) != LocalHeaderSize+int(binary.BigEndian.Uint32(b[4:8])) {
			t.Fatalf("re-encoded %x, read %x", out, b)
		}
	})
}

// FuzzReadResponse: no input crashes the response decoder (the plugin's C
// decoder follows the same layout), and what it accepts encodes back.
func FuzzReadResponse(f *testing.F) {
	for _, s := range responseSeeds(f) {
		f.Add(s.Args[0].(uint16), s.Args[1].([]byte))
	}
	f.Fuzz(func(t *testing.T, op uint16, b []byte) {
		s, err := ReadResponse(bytes.NewReader(b), Op(op))
		if err != nil {
			return
		}
		out := AppendResponse(nil, Op(op), &s)
		back, err := ReadResponse(bytes.NewReader(out), Op(op))
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("%+v does not round trip: %v", s, err)
		}
	})
}

// vouchFixture is FuzzOpenVouch's world: one key, one vouch sealed under
// it with a fixed nonce (the only input that may open).
func vouchFixture(t testing.TB) (*cluster, []byte) {
	keys := newCluster(t, 1, 7)
	id, aead := keys.Seal()
	v := sampleVouch()
	tok, err := SealVouch(&v, id, aead, &[ping.NonceSize]byte{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	return keys, tok
}

// FuzzOpenVouch: no input crashes OpenVouch, and nothing but the sealed
// seed opens.
func FuzzOpenVouch(f *testing.F) {
	keys, sealed := vouchFixture(f)
	for _, s := range vouchSeeds(f) {
		f.Add(s.Args[0].([]byte))
	}
	f.Fuzz(func(t *testing.T, tok []byte) {
		if _, _, err := OpenVouch(tok, keys); err == nil && !bytes.Equal(tok, sealed) {
			t.Fatalf("opened a token that is not the sealed seed: %x", tok)
		}
		_, _ = Step(tok)
		_, _, _ = UnwrapFrame(StepPing, tok)
		_, _, _ = UnwrapFrame(StepReply, tok)
	})
}

func requestSeeds(t testing.TB) []fuzzcorpus.Seed {
	var seeds []fuzzcorpus.Seed
	for _, q := range sampleRequests() {
		b, err := AppendRequest(nil, &q)
		if err != nil {
			t.Fatal(err)
		}
		name := q.Op.String()
		if q.Encrypt {
			name += "_encrypt"
		}
		seeds = append(seeds, fuzzcorpus.Bytes(name, b))
	}
	return append(seeds, fuzzcorpus.Bytes("empty", []byte{}), fuzzcorpus.Bytes("header_only", []byte("ML\x01\x01\x00\x00\x00\x00")))
}

func responseSeeds(t testing.TB) []fuzzcorpus.Seed {
	var seeds []fuzzcorpus.Seed
	for _, op := range []Op{OpInitiate, OpContinue, OpAccept, OpConfirm} {
		s := sampleResponses()[op]
		seeds = append(seeds, fuzzcorpus.Seed{Name: op.String(), Args: []any{uint16(op), AppendResponse(nil, op, &s)}})
	}
	for _, op := range []Op{OpContinue, OpConfirm} {
		s := sampleResponses()[op]
		s.Keys = sampleKeys()
		seeds = append(seeds, fuzzcorpus.Seed{Name: op.String() + "_keys", Args: []any{uint16(op), AppendResponse(nil, op, &s)}})
	}
	for _, v := range []Response{{Gen: 7, Verdict: VerdictValid}, {Gen: 7, Verdict: VerdictUnchanged},
		{Gen: 8, Verdict: VerdictRevoked, Reason: "revoked", Message: "node pbsn1 was denied"}} {
		seeds = append(seeds, fuzzcorpus.Seed{Name: "check_" + v.Verdict.String(), Args: []any{uint16(OpCheck), AppendResponse(nil, OpCheck, &v)}})
	}
	refused := Response{Status: StatusRefused, Reason: "replay", Message: "vouch echoes another handshake"}
	return append(seeds, fuzzcorpus.Seed{Name: "refused", Args: []any{uint16(OpConfirm), AppendResponse(nil, OpConfirm, &refused)}})
}

func vouchSeeds(t testing.TB) []fuzzcorpus.Seed {
	_, tok := vouchFixture(t)
	flipped := bytes.Clone(tok)
	flipped[len(flipped)-1] ^= 1
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("sealed", tok),
		fuzzcorpus.Bytes("tag_flipped", flipped),
		fuzzcorpus.Bytes("truncated", tok[:len(tok)-1]),
		fuzzcorpus.Bytes("ping_token", WrapFrame(StepPing, make([]byte, ping.FrameSize))),
		fuzzcorpus.Bytes("empty", []byte{}),
	}
}

func TestSeedCorpus(t *testing.T) {
	fuzzcorpus.Check(t, "FuzzReadRequest", requestSeeds(t))
	fuzzcorpus.Check(t, "FuzzReadResponse", responseSeeds(t))
	fuzzcorpus.Check(t, "FuzzOpenVouch", vouchSeeds(t))
}

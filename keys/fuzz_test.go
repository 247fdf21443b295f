package keys

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/curve25519"

	"github.com/momgate/momgate/tools/fuzzcorpus"
)

// The seed corpora are checked in under testdata/fuzz/<Target>/ and kept in
// step with the seed functions below by TestSeedCorpus.

func tokenSeeds(t testing.TB) []fuzzcorpus.Seed {
	text, _, err := IssueToken(&countingRand{}, t0, time.Hour, "n1", testIdentity(t, 1).Public)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(text, TokenPrefix)
	return []fuzzcorpus.Seed{
		fuzzcorpus.String("valid", text),
		fuzzcorpus.String("pasted_with_whitespace", " \t"+text+"\r\n"),
		fuzzcorpus.String("truncated", text[:len(text)-3]),
		fuzzcorpus.String("no_prefix", body),
		fuzzcorpus.String("padded", text+"="),
		fuzzcorpus.String("std_alphabet", TokenPrefix+strings.NewReplacer("-", "+", "_", "/").Replace(body)),
		fuzzcorpus.String("non_canonical_tail", text[:len(text)-1]+"B"),
		fuzzcorpus.String("prefix_only", TokenPrefix),
		fuzzcorpus.String("empty", ""),
	}
}

// FuzzParseToken: no input panics; errors wrap ErrBadToken; an accepted
// token is canonical (prints back as the trimmed input).
func FuzzParseToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			if !errors.Is(err, ErrBadToken) {
				t.Fatalf("error %v does not wrap ErrBadToken", err)
			}
			return
		}
		if got := tok.String(); got != strings.TrimSpace(s) {
			t.Fatalf("accepted %q, which prints as %q", s, got)
		}
	})
}

func keyringSeeds(t testing.TB) []fuzzcorpus.Seed {
	r := NewKeyring()
	for _, k := range []*Key{testKey(0x0a1b2c3d, StateActive, t0), testKey(0x0a1b2c3e, StateNext, t0.Add(time.Hour)), testKey(0x0a1b2c3c, StatePrevious, t0.Add(-time.Hour))} {
		var err error
		if r, err = r.WithKey(k); err != nil {
			t.Fatal(err)
		}
	}
	full, err := EncodeKeyring(r)
	if err != nil {
		t.Fatal(err)
	}
	empty, _ := EncodeKeyring(NewKeyring())
	good := keyText("0a1b2c3d", "active", 32)
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("three_keys", full),
		fuzzcorpus.Bytes("empty_ring", empty),
		fuzzcorpus.Bytes("one_key_compact", []byte(keyringJSONText(good))),
		fuzzcorpus.Bytes("trailing_brace", []byte(keyringJSONText(good)+"}")),
		fuzzcorpus.Bytes("duplicate_ids", []byte(keyringJSONText(good, keyText("0a1b2c3d", "previous", 32)))),
		fuzzcorpus.Bytes("two_active", []byte(keyringJSONText(good, keyText("0a1b2c3e", "active", 32)))),
		fuzzcorpus.Bytes("unknown_field", []byte(`{"format":1,"keys":[],"extra":true}`)),
		fuzzcorpus.Bytes("secret_31_bytes", []byte(keyringJSONText(keyText("0a1b2c3d", "active", 31)))),
		fuzzcorpus.Bytes("state_retired", []byte(keyringJSONText(keyText("0a1b2c3d", "retired", 32)))),
		fuzzcorpus.Bytes("format_2", []byte(`{"format":2,"keys":[]}`)),
		fuzzcorpus.Bytes("not_json", []byte("format = 1\n")),
	}
}

// FuzzDecodeKeyring: no input panics; errors wrap ErrInvalidKeyFile; an
// accepted keyring keeps the ring invariants and survives a save/load
// round trip unchanged.
func FuzzDecodeKeyring(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeKeyring(data)
		if err != nil {
			if r != nil || !errors.Is(err, ErrInvalidKeyFile) {
				t.Fatalf("got %v, %v", r, err)
			}
			return
		}
		if r.Len() > MaxKeys {
			t.Fatalf("accepted %d keys", r.Len())
		}
		if _, err := NewKeyring().replace(r.Keys()); err != nil {
			t.Fatalf("accepted a ring that breaks an invariant: %v", err)
		}
		again, err := EncodeKeyring(r)
		if err != nil {
			t.Fatalf("a keyring that loads cannot be saved: %v", err)
		}
		r2, err := DecodeKeyring(again)
		if err != nil {
			t.Fatalf("re-encoded keyring does not decode: %v\n%s", err, again)
		}
		sameRing(t, r2, r)
	})
}

func keyFileSeeds(t testing.TB) []fuzzcorpus.Seed {
	valid, err := EncodeKeyFile(testKey(0x0a1b2c3d, StateNext, t0))
	if err != nil {
		t.Fatal(err)
	}
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("valid", valid),
		fuzzcorpus.Bytes("retired", []byte(`{"format":1,"key":`+keyText("0a1b2c3d", "retired", 32)+`}`)),
		fuzzcorpus.Bytes("trailing_bracket", append(bytes.Clone(valid), ']')),
		fuzzcorpus.Bytes("keyring_not_key_file", []byte(keyringJSONText(keyText("0a1b2c3d", "active", 32)))),
		fuzzcorpus.Bytes("short_secret", []byte(`{"format":1,"key":`+keyText("0a1b2c3d", "next", 16)+`}`)),
	}
}

// FuzzDecodeKeyFile: as FuzzDecodeKeyring, for a single exported key.
func FuzzDecodeKeyFile(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := DecodeKeyFile(data)
		if err != nil {
			if k != nil || !errors.Is(err, ErrInvalidKeyFile) {
				t.Fatalf("got %v, %v", k, err)
			}
			return
		}
		if k.ID == 0 || k.State < StateNext || k.State > StatePrevious {
			t.Fatalf("accepted key %s in state %s", k.ID, k.State)
		}
		again, err := EncodeKeyFile(k)
		if err != nil {
			t.Fatalf("a key that imports cannot be exported: %v", err)
		}
		k2, err := DecodeKeyFile(again)
		if err != nil || k2.ID != k.ID || k2.State != k.State || k2.Secret != k.Secret || !k2.Created.Equal(k.Created) {
			t.Fatalf("round trip: %v, %v", k2, err)
		}
	})
}

func identitySeeds(t testing.TB) []fuzzcorpus.Seed {
	id, other := testIdentity(t, 1), testIdentity(t, 2)
	valid, err := EncodeIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	mismatched := *id
	mismatched.Public = other.Public
	bad, _ := EncodeIdentity(&mismatched)
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("valid", valid),
		fuzzcorpus.Bytes("mismatched_public", bad),
		fuzzcorpus.Bytes("short_key", []byte(`{"format":1,"public":"AAAA","private":"AAAA"}`)),
		fuzzcorpus.Bytes("trailing_brace", append(bytes.Clone(valid), '}')),
	}
}

// FuzzDecodeIdentity: an accepted identity is a real key pair and
// survives a round trip.
func FuzzDecodeIdentity(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		id, err := DecodeIdentity(data)
		if err != nil {
			if id != nil || !errors.Is(err, ErrInvalidKeyFile) {
				t.Fatalf("got %v, %v", id, err)
			}
			return
		}
		pub, err := curve25519.X25519(id.Private[:], curve25519.Basepoint)
		if err != nil || !bytes.Equal(pub, id.Public[:]) {
			t.Fatal("accepted an identity whose public key is not the private key's")
		}
		again, err := EncodeIdentity(id)
		if err != nil {
			t.Fatal(err)
		}
		if id2, err := DecodeIdentity(again); err != nil || *id2 != *id {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func tokenRecordSeeds(t testing.TB) []fuzzcorpus.Seed {
	_, rec, err := IssueToken(&countingRand{}, t0, time.Hour, "n1", testIdentity(t, 1).Public)
	if err != nil {
		t.Fatal(err)
	}
	valid, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	id, hash := hex.EncodeToString(rec.ID[:]), hex.EncodeToString(rec.Hash[:])
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("valid", valid),
		fuzzcorpus.Bytes("used", bytes.Replace(valid, []byte(`"used":false`), []byte(`"used":true`), 1)),
		fuzzcorpus.Bytes("no_node", []byte(`{"id":"`+id+`","hash":"`+hash+`","node":"","expires":"2026-03-01T13:00:00Z","used":false}`)),
		fuzzcorpus.Bytes("short_hash", []byte(`{"id":"`+id+`","hash":"`+hash[:10]+`","node":"n1","expires":"2026-03-01T13:00:00Z","used":false}`)),
		fuzzcorpus.Bytes("secret_field", []byte(`{"id":"`+id+`","hash":"`+hash+`","node":"n1","expires":"2026-03-01T13:00:00Z","used":false,"secret":"x"}`)),
	}
}

// FuzzTokenRecordJSON: a record the server reads back from its state is
// well formed and survives a round trip.
func FuzzTokenRecordJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var r TokenRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		if r.Node == "" {
			t.Fatal("accepted a record without a node")
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("a record that loads cannot be saved: %v", err)
		}
		var r2 TokenRecord
		if err := json.Unmarshal(again, &r2); err != nil || r2.ID != r.ID || r2.Hash != r.Hash || r2.Node != r.Node ||
			!r2.Expires.Equal(r.Expires) || r2.Used != r.Used {
			t.Fatalf("round trip: %+v, %v", r2, err)
		}
	})
}

// wrapBytes is the WrappedKey wire layout (PROTOCOL.md): id (4) | state (1)
// | nonce (24) | sealed (53).
func wrapBytes(wk WrappedKey) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(wk.ID))
	b = append(b, byte(wk.State))
	b = append(b, wk.Nonce[:]...)
	return append(b, wk.Sealed[:]...)
}

func wrapFromBytes(b []byte) WrappedKey {
	var full [82]byte
	copy(full[:], b)
	wk := WrappedKey{ID: KeyID(binary.BigEndian.Uint32(full[0:4])), State: State(full[4])}
	copy(wk.Nonce[:], full[5:29])
	copy(wk.Sealed[:], full[29:])
	return wk
}

// fuzzUnwrapKey is the one cluster key the FuzzUnwrap seeds wrap.
func fuzzUnwrapKey() *Key { return testKey(0x0a1b2c3d, StateActive, t0) }

func unwrapSeeds(t testing.TB) []fuzzcorpus.Seed {
	server, node := testIdentity(t, 1), testIdentity(t, 2)
	var seeds []fuzzcorpus.Seed
	var active []byte
	for _, st := range []State{StateNext, StateActive, StatePrevious} {
		wk, err := Wrap(&countingRand{n: byte(st) * 50}, fuzzUnwrapKey(), st, &node.Public, &server.Private)
		if err != nil {
			t.Fatal(err)
		}
		seeds = append(seeds, fuzzcorpus.Bytes("valid_"+st.String(), wrapBytes(wk)))
		if st == StateActive {
			active = wrapBytes(wk)
		}
	}
	flipped := bytes.Clone(active)
	flipped[40] ^= 1
	idChanged := bytes.Clone(active)
	idChanged[3] ^= 1
	retired, err := Wrap(&countingRand{n: 7}, fuzzUnwrapKey(), StateRetired, &node.Public, &server.Private)
	if err != nil {
		t.Fatal(err)
	}
	return append(seeds,
		fuzzcorpus.Bytes("sealed_flipped", flipped),
		fuzzcorpus.Bytes("clear_id_changed", idChanged),
		fuzzcorpus.Bytes("wrapped_retired", wrapBytes(retired)),
		fuzzcorpus.Bytes("truncated", active[:60]),
		fuzzcorpus.Bytes("zeros", make([]byte, 82)),
	)
}

// FuzzUnwrap: random WrappedKey bytes never panic, and only a key the
// server really wrapped for this node (the seeds) ever unwraps.
func FuzzUnwrap(f *testing.F) {
	server, node := testIdentity(f, 1), testIdentity(f, 2)
	w := NewWrapper(&server.Public, &node.Private)
	want := fuzzUnwrapKey()
	f.Fuzz(func(t *testing.T, b []byte) {
		wk := wrapFromBytes(b)
		k, err := w.Unwrap(wk, t0)
		if err != nil {
			if k != nil || !(errors.Is(err, ErrUnwrap) || errors.Is(err, ErrWrapMismatch) || errors.Is(err, ErrBadTransition)) {
				t.Fatalf("got %v, %v", k, err)
			}
			return
		}
		if k.ID != wk.ID || k.State != wk.State || k.Secret != want.Secret || k.ID != want.ID {
			t.Fatalf("unwrapped %s %s from bytes the server did not wrap: %x", k.ID, k.State, b)
		}
	})
}

// TestSeedCorpus checks the checked-in seed corpora against the seed
// functions; MOMGATE_UPDATE_CORPUS=1 rewrites them.
func TestSeedCorpus(t *testing.T) {
	fuzzcorpus.Check(t, "FuzzParseToken", tokenSeeds(t))
	fuzzcorpus.Check(t, "FuzzDecodeKeyring", keyringSeeds(t))
	fuzzcorpus.Check(t, "FuzzDecodeKeyFile", keyFileSeeds(t))
	fuzzcorpus.Check(t, "FuzzDecodeIdentity", identitySeeds(t))
	fuzzcorpus.Check(t, "FuzzTokenRecordJSON", tokenRecordSeeds(t))
	fuzzcorpus.Check(t, "FuzzUnwrap", unwrapSeeds(t))
}

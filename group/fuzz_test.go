package group

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/tools/fuzzcorpus"
)

// The seed corpora are checked in under testdata/fuzz/<Target>/ and kept in
// step with the seed functions below by TestSeedCorpus.

func joinTokenSeeds(t testing.TB) []fuzzcorpus.Seed {
	ca := testCA(t, 1)
	text, _, err := IssueJoinToken(&countingRand{n: 50}, t0, time.Hour, "s2", "127.0.0.2:15005", ca.Public(),
		[]string{"127.0.0.1:15005", "[::1]:15005"})
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(text, JoinTokenPrefix)
	return []fuzzcorpus.Seed{
		fuzzcorpus.String("valid", text),
		fuzzcorpus.String("pasted_with_whitespace", " "+text+"\n"),
		fuzzcorpus.String("truncated", text[:len(text)-5]),
		fuzzcorpus.String("no_prefix", body),
		fuzzcorpus.String("padded", text+"="),
		fuzzcorpus.String("no_addresses", (JoinToken{}).String()),
		fuzzcorpus.String("bad_address", (JoinToken{Addrs: []string{"host"}}).String()),
		fuzzcorpus.String("prefix_only", JoinTokenPrefix),
	}
}

// FuzzParseJoinToken: no input panics; errors wrap ErrBadJoinToken; an
// accepted token is canonical (prints back as the trimmed input).
func FuzzParseJoinToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseJoinToken(s)
		if err != nil {
			if !errors.Is(err, ErrBadJoinToken) {
				t.Fatalf("error %v does not wrap ErrBadJoinToken", err)
			}
			return
		}
		if got := tok.String(); got != strings.TrimSpace(s) {
			t.Fatalf("accepted %q, which prints as %q", s, got)
		}
	})
}

func caSeeds(t testing.TB) []fuzzcorpus.Seed {
	good, err := EncodeCA(testCA(t, 1))
	if err != nil {
		t.Fatal(err)
	}
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("valid", good),
		fuzzcorpus.Bytes("trailing_brace", append(append([]byte(nil), good...), '}')),
		fuzzcorpus.Bytes("unknown_field", []byte(`{"format":1,"key":"","cert":"","x":0}`)),
		fuzzcorpus.Bytes("short_key", []byte(`{"format":1,"key":"AAAA","cert":""}`)),
		fuzzcorpus.Bytes("empty", nil),
	}
}

// FuzzDecodeCA: no input panics; errors wrap ErrInvalidCAFile; an accepted
// file re-encodes to a file that decodes to the same CA.
func FuzzDecodeCA(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		ca, err := DecodeCA(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidCAFile) {
				t.Fatalf("error %v does not wrap ErrInvalidCAFile", err)
			}
			return
		}
		again, err := EncodeCA(ca)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeCA(again)
		if err != nil || back.Fingerprint() != ca.Fingerprint() {
			t.Fatalf("re-encoded CA does not decode to itself: %v", err)
		}
	})
}

func joinRecordSeeds(t testing.TB) []fuzzcorpus.Seed {
	_, rec, err := IssueJoinToken(&countingRand{}, t0, time.Hour, "s2", "h:1", testCA(t, 1).Public(), []string{"h:1"})
	if err != nil {
		t.Fatal(err)
	}
	good, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("valid", good),
		fuzzcorpus.Bytes("upper_hex", []byte(strings.ToUpper(string(good)))),
		fuzzcorpus.Bytes("extra_field", append(append([]byte(nil), good[:len(good)-1]...), `,"secret":"x"}`...)),
		fuzzcorpus.Bytes("not_object", []byte(`[]`)),
	}
}

// FuzzJoinRecordJSON: no input panics; an accepted record marshals back to
// JSON that decodes to the same record.
func FuzzJoinRecordJSON(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var r JoinRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		var back JoinRecord
		if err := json.Unmarshal(again, &back); err != nil || !back.Expires.Equal(r.Expires) {
			t.Fatalf("re-encoded record does not decode to itself: %v", err)
		}
		back.Expires = r.Expires
		if back != r {
			t.Fatalf("round trip changed the record: %+v -> %+v", r, back)
		}
	})
}

// TestSeedCorpus checks the checked-in seed corpora against the seed
// functions; MOMGATE_UPDATE_CORPUS=1 rewrites them.
func TestSeedCorpus(t *testing.T) {
	fuzzcorpus.Check(t, "FuzzParseJoinToken", joinTokenSeeds(t))
	fuzzcorpus.Check(t, "FuzzDecodeCA", caSeeds(t))
	fuzzcorpus.Check(t, "FuzzJoinRecordJSON", joinRecordSeeds(t))
}

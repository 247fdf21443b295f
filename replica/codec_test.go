package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/keys"
)

func TestEverySampleRoundTrips(t *testing.T) {
	for _, s := range samples(t) {
		b := mustEncode(t, s.e)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %s: %v", s.name, err)
		}
		if !got.At.Equal(s.e.At) || got.Cmd.Op() != OpStateRecords {
			t.Fatalf("%s: decoded %s at %s", s.name, got.Cmd.Op(), got.At)
		}
		if again := mustEncode(t, got); !bytes.Equal(again, b) {
			t.Fatalf("%s: re-encoding differs:\n%s\n%s", s.name, b[HeaderSize:], again[HeaderSize:])
		}
	}
}

// A whole keyring file travels as a record value and decodes as the same
// keyring, secrets included.
func TestFileRecordCarriesTheKeyring(t *testing.T) {
	ring := testRing(t)
	file, err := keys.EncodeKeyring(ring)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(mustEncode(t, Entry{At: t0, Cmd: &StateRecords{Why: "rotation next-saved",
		Records: []StateRecord{{Kind: RecordFile, Key: "keyring.json", Value: file}}}}))
	if err != nil {
		t.Fatal(err)
	}
	recs := got.Cmd.(*StateRecords).Records
	if len(recs) != 1 || recs[0].Kind != RecordFile || recs[0].Key != "keyring.json" {
		t.Fatalf("decoded records %+v", recs)
	}
	back, err := keys.DecodeKeyring(recs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	if back.Len() != 2 || back.Next().Secret != ring.Next().Secret {
		t.Fatal("keyring changed in the round trip")
	}
}

// command builds an encoded command by hand, with a correct checksum.
func command(version, op byte, at int64, body string) []byte {
	b := make([]byte, HeaderSize, HeaderSize+len(body))
	b[0], b[1] = version, op
	binary.BigEndian.PutUint64(b[2:], uint64(at))
	binary.BigEndian.PutUint32(b[10:], crc32.Checksum([]byte(body), castagnoli))
	return append(b, body...)
}

// retiredCreateNode is the body of a create_node command (op 1) as the
// first design encoded it.
const retiredCreateNode = `{"name":"n1","id":"6ba7b810-9dad-11d1-80b4-00c04fd430c8","mom":"10.0.0.11","port":15003,` +
	`"token":{"id":"01020300000000000000000000000000","hash":"0900000000000000000000000000000000000000000000000000000000000000","node":"n1","expires":"2026-03-01T13:00:00Z","used":false}}`

// Operation codes 1 to 12 are retired: refused as malformed, whatever the
// body (their own or a valid state_records body), never as a command of a
// newer version, and never read as another operation.
func TestDecodeRefusesRetiredOps(t *testing.T) {
	good := mustEncode(t, samples(t)[0].e)
	at := t0.UnixNano()
	for op := 1; op <= 12; op++ {
		for _, body := range []string{string(good[HeaderSize:]), retiredCreateNode, `{}`} {
			_, err := Decode(command(Version, byte(op), at, body))
			if !errors.Is(err, ErrBadCommand) || errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), "retired") {
				t.Errorf("op %d, body %.20s: %v, want ErrBadCommand naming the op retired", op, body, err)
			}
		}
		if s := Op(op).String(); !strings.Contains(s, "retired") {
			t.Errorf("op %d is named %q", op, s)
		}
	}
	if _, err := Decode(command(Version, byte(OpStateRecords), at, string(good[HeaderSize:]))); err != nil {
		t.Fatalf("state_records: %v", err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	good := mustEncode(t, samples(t)[0].e)
	body := string(good[HeaderSize:])
	op := byte(OpStateRecords)
	at := t0.UnixNano()
	recs := func(r string) string { return `{"why":"w","records":[` + r + `]}` }
	// A valid body under the checksum of another: n1 becomes n2.
	damaged := bytes.Clone(good)
	damaged[HeaderSize+bytes.Index(good[HeaderSize:], []byte(`"n1"`))+2] = '2'
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrBadCommand},
		{"header only", good[:HeaderSize], ErrBadCommand},
		{"version 2", command(2, op, at, body), ErrUnsupported},
		{"version 0", command(0, op, at, body), ErrUnsupported},
		{"unknown op", command(1, 200, at, body), ErrUnsupported},
		{"op 14", command(1, 14, at, body), ErrUnsupported},
		{"op 0", command(1, 0, at, body), ErrUnsupported},
		{"zero time", command(1, op, 0, body), ErrBadCommand},
		{"negative time", command(1, op, -5, body), ErrBadCommand},
		{"unknown field", command(1, op, at, strings.Replace(body, `{"why"`, `{"x":1,"why"`, 1)), ErrBadCommand},
		{"unknown record field", command(1, op, at, strings.Replace(body, `{"kind"`, `{"x":1,"kind"`, 1)), ErrBadCommand},
		{"trailing data", command(1, op, at, body+"}"), ErrBadCommand},
		{"second object", command(1, op, at, body+"{}"), ErrBadCommand},
		{"checksum mismatch", damaged, ErrBadCommand},
		{"appended byte", append(bytes.Clone(good), ' '), ErrBadCommand},
		{"null body", command(1, op, at, "null"), ErrBadCommand},
		{"no records", command(1, op, at, `{"why":"w","records":[]}`), ErrBadCommand},
		{"null records", command(1, op, at, `{"why":"w","records":null}`), ErrBadCommand},
		{"unknown kind", command(1, op, at, recs(`{"kind":"journal","key":"k","value":{}}`)), ErrBadCommand},
		{"no key", command(1, op, at, recs(`{"kind":"node","key":"","value":{}}`)), ErrBadCommand},
		{"long key", command(1, op, at, recs(`{"kind":"node","key":"`+strings.Repeat("k", MaxRecordKey+1)+`","value":{}}`)), ErrBadCommand},
		{"neither value nor deleted", command(1, op, at, recs(`{"kind":"node","key":"k"}`)), ErrBadCommand},
		{"value and deleted", command(1, op, at, recs(`{"kind":"node","key":"k","value":{},"deleted":true}`)), ErrBadCommand},
		{"value an array", command(1, op, at, recs(`{"kind":"node","key":"k","value":[1]}`)), ErrBadCommand},
		{"value a string", command(1, op, at, recs(`{"kind":"node","key":"k","value":"v"}`)), ErrBadCommand},
		{"value null", command(1, op, at, recs(`{"kind":"node","key":"k","value":null}`)), ErrBadCommand},
		{"long reason", command(1, op, at, `{"why":"`+strings.Repeat("w", MaxWhyLen+1)+`","records":[{"kind":"node","key":"k","deleted":true}]}`), ErrBadCommand},
		{"too large", command(1, op, at, string(make([]byte, MaxCommandSize))), ErrBadCommand},
	} {
		if _, err := Decode(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	del := []StateRecord{{Kind: RecordNode, Key: "k", Deleted: true}}
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"no command", Entry{At: t0}},
		{"no time", Entry{Cmd: &StateRecords{Records: del}}},
		{"time before 1970", Entry{At: time.Unix(-1, 0), Cmd: &StateRecords{Records: del}}},
		{"no records", Entry{At: t0, Cmd: &StateRecords{Why: "nothing"}}},
		{"unknown kind", Entry{At: t0, Cmd: &StateRecords{Records: []StateRecord{{Kind: "journal", Key: "k", Deleted: true}}}}},
		{"no key", Entry{At: t0, Cmd: &StateRecords{Records: []StateRecord{{Kind: RecordNode, Deleted: true}}}}},
		{"deleted with a value", Entry{At: t0, Cmd: &StateRecords{Records: []StateRecord{{Kind: RecordNode, Key: "k", Value: []byte(`{}`), Deleted: true}}}}},
		{"value not an object", Entry{At: t0, Cmd: &StateRecords{Records: []StateRecord{{Kind: RecordNode, Key: "k", Value: []byte(`[]`)}}}}},
		{"value not JSON", Entry{At: t0, Cmd: &StateRecords{Records: []StateRecord{{Kind: RecordNode, Key: "k", Value: []byte(`{`)}}}}},
		{"long reason", Entry{At: t0, Cmd: &StateRecords{Why: strings.Repeat("w", MaxWhyLen+1), Records: del}}},
	} {
		if _, err := Encode(tc.e); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: %v, want ErrBadCommand", tc.name, err)
		}
	}
}

func TestDecodedTimeIsUTC(t *testing.T) {
	local := time.Date(2026, 3, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600))
	got, err := Decode(mustEncode(t, Entry{At: local, Cmd: &StateRecords{Records: []StateRecord{{Kind: RecordMember, Key: "s2", Deleted: true}}}}))
	if err != nil {
		t.Fatal(err)
	}
	if got.At.Location() != time.UTC || !got.At.Equal(local) {
		t.Fatalf("At = %v", got.At)
	}
}

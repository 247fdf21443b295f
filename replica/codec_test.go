package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestEveryOpRoundTrips(t *testing.T) {
	seen := map[Op]bool{}
	for _, e := range samples(t) {
		b := mustEncode(t, e)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %s: %v", e.Cmd.Op(), err)
		}
		if !got.At.Equal(e.At) || got.Cmd.Op() != e.Cmd.Op() {
			t.Fatalf("%s: decoded %s at %s", e.Cmd.Op(), got.Cmd.Op(), got.At)
		}
		if again := mustEncode(t, got); !bytes.Equal(again, b) {
			t.Fatalf("%s: re-encoding differs:\n%s\n%s", e.Cmd.Op(), b[HeaderSize:], again[HeaderSize:])
		}
		seen[e.Cmd.Op()] = true
	}
	for op := range opNames {
		if !seen[op] {
			t.Errorf("no sample of %s", op)
		}
	}
}

func TestRotationStepCarriesRecordAndRing(t *testing.T) {
	ring := testRing(t)
	got, err := Decode(mustEncode(t, Entry{At: t0, Cmd: &RotationStep{Step: "next-saved", Ring: ring}}))
	if err != nil {
		t.Fatal(err)
	}
	step := got.Cmd.(*RotationStep)
	if step.Record != nil || step.Ring == nil || step.Ring.Len() != 2 {
		t.Fatalf("decoded step %+v", step)
	}
	if step.Ring.Next().Secret != ring.Next().Secret {
		t.Fatal("keyring secret changed in the round trip")
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

func TestDecodeRefuses(t *testing.T) {
	good := mustEncode(t, samples(t)[0])
	body := string(good[HeaderSize:])
	at := t0.UnixNano()
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrBadCommand},
		{"header only", good[:HeaderSize], ErrBadCommand},
		{"version 2", command(2, 1, at, body), ErrUnsupported},
		{"version 0", command(0, 1, at, body), ErrUnsupported},
		{"unknown op", command(1, 200, at, body), ErrUnsupported},
		{"op 0", command(1, 0, at, body), ErrUnsupported},
		{"zero time", command(1, 1, 0, body), ErrBadCommand},
		{"negative time", command(1, 1, -5, body), ErrBadCommand},
		{"unknown field", command(1, 1, at, strings.Replace(body, `{"name"`, `{"x":1,"name"`, 1)), ErrBadCommand},
		{"trailing data", command(1, 1, at, body+"}"), ErrBadCommand},
		{"second object", command(1, 1, at, body+"{}"), ErrBadCommand},
		{"checksum mismatch", append(bytes.Clone(good[:len(good)-2]), '1', '}'), ErrBadCommand},
		{"appended byte", append(bytes.Clone(good), ' '), ErrBadCommand},
		{"body of another op", command(1, byte(OpEnrollNode), at, body), ErrBadCommand},
		{"null body", command(1, 1, at, "null"), ErrBadCommand},
		{"uppercase uuid", command(1, 1, at, strings.Replace(body, "6ba7b810", "6BA7B810", 1)), ErrBadCommand},
		{"braced uuid", command(1, 1, at, strings.Replace(body, `"6ba7b810-9dad-11d1-80b4-00c04fd430c8"`, `"{6ba7b810-9dad-11d1-80b4-00c04fd430c8}"`, 1)), ErrBadCommand},
		{"mapped address", command(1, 1, at, strings.Replace(body, `"10.0.0.11"`, `"::ffff:10.0.0.11"`, 1)), ErrBadCommand},
		{"zoned address", command(1, 1, at, strings.Replace(body, `"10.0.0.11"`, `"fe80::1%eth0"`, 1)), ErrBadCommand},
		{"port 0", command(1, 1, at, strings.Replace(body, `"port":15003`, `"port":0`, 1)), ErrBadCommand},
		{"port too big", command(1, 1, at, strings.Replace(body, `"port":15003`, `"port":65536`, 1)), ErrBadCommand},
		{"bad name", command(1, 1, at, strings.Replace(body, `"name":"n1"`, `"name":"-n1"`, 1)), ErrBadCommand},
		{"token for another node", command(1, 1, at, strings.Replace(body, `"node":"n1"`, `"node":"n9"`, 1)), ErrBadCommand},
		{"too large", command(1, 1, at, string(make([]byte, MaxCommandSize))), ErrBadCommand},
	} {
		if _, err := Decode(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"no command", Entry{At: t0}},
		{"no time", Entry{Cmd: &DeleteMember{Name: "s2"}}},
		{"bad name", Entry{At: t0, Cmd: &DeleteMember{Name: ""}}},
		{"empty deny entry", Entry{At: t0, Cmd: &DeleteNode{Name: "n1", Deny: []DenyEntry{{}}}}},
		{"no attributes", Entry{At: t0, Cmd: &SetServer{}}},
		{"empty rotation step", Entry{At: t0, Cmd: &RotationStep{Step: "idle"}}},
		{"lift nothing", Entry{At: t0, Cmd: &LiftDeny{}}},
		{"no prune time", Entry{At: t0, Cmd: &PruneTokens{}}},
		{"zero node id", Entry{At: t0, Cmd: &CreateNode{Name: "n1", Mom: netip.MustParseAddr("10.0.0.1"), Port: 1}}},
		{"member token mismatch", Entry{At: t0, Cmd: &CreateMember{Name: "s2", Addr: "h:1"}}},
		{"too many keys", Entry{At: t0, Cmd: &LiftDeny{Entries: []DenyEntry{{Addr: netip.MustParseAddr("10.0.0.1"), Keys: make([]uint32, MaxKeysPerDeny+1)}}}}},
	} {
		if _, err := Encode(tc.e); !errors.Is(err, ErrBadCommand) {
			t.Errorf("%s: %v, want ErrBadCommand", tc.name, err)
		}
	}
}

func TestDecodedTimeIsUTC(t *testing.T) {
	local := time.Date(2026, 3, 1, 13, 0, 0, 5, time.FixedZone("CET", 3600))
	got, err := Decode(mustEncode(t, Entry{At: local, Cmd: &DeleteMember{Name: "s2"}}))
	if err != nil {
		t.Fatal(err)
	}
	if got.At.Location() != time.UTC || !got.At.Equal(local) {
		t.Fatalf("At = %v", got.At)
	}
}

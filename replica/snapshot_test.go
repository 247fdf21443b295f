package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

func testSections() []Section {
	return []Section{{Name: "state.json", Data: []byte(`{"format":1}`)}, {Name: "keyring.json", Data: []byte("secret")}, {Name: "empty", Data: nil}}
}

func TestSectionsRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	n, err := WriteSections(&buf, testSections())
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteSections = %d, %v (buffer %d)", n, err, buf.Len())
	}
	got, err := ReadSections(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	want := testSections()
	if len(got) != len(want) {
		t.Fatalf("%d sections, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Name != want[i].Name || !bytes.Equal(got[i].Data, want[i].Data) {
			t.Fatalf("section %d = %q %q", i, got[i].Name, got[i].Data)
		}
	}
}

func TestWriteSectionsRefuses(t *testing.T) {
	for name, secs := range map[string][]Section{
		"duplicate":  {{Name: "a"}, {Name: "a"}},
		"empty name": {{Name: ""}},
		"bad name":   {{Name: "State.json"}},
		"long name":  {{Name: strings.Repeat("a", MaxSectionName+1)}},
	} {
		if _, err := WriteSections(&bytes.Buffer{}, secs); err == nil {
			t.Errorf("%s: written", name)
		}
	}
}

func TestReadSectionsRefuses(t *testing.T) {
	var buf bytes.Buffer
	if _, err := WriteSections(&buf, testSections()); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 1
		return b
	}
	// The first section's data starts after magic, count, name length,
	// name, size and checksum.
	data0 := len(snapshotMagic) + 2 + 1 + len("state.json") + 8
	lying := bytes.Clone(good)
	binary.BigEndian.PutUint32(lying[data0-8:], 1<<30)
	for name, b := range map[string][]byte{
		"empty":           nil,
		"bad magic":       flip(0),
		"flipped data":    flip(data0),
		"truncated":       good[:len(good)-1],
		"trailing byte":   append(bytes.Clone(good), 0),
		"more sections":   append(append([]byte(snapshotMagic), 0, 4), good[len(snapshotMagic)+2:]...),
		"too many":        append([]byte(snapshotMagic), 0xff, 0xff),
		"size beyond end": lying,
	} {
		if _, err := ReadSections(bytes.NewReader(b)); !errors.Is(err, ErrBadSnapshot) {
			t.Errorf("%s: %v, want ErrBadSnapshot", name, err)
		}
	}
}

package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"testing"

	"github.com/momgate/momgate/proto"
)

// Seed corpora also live in testdata/fuzz/<Target>/.

func FuzzDecodeSnapshot(f *testing.F) {
	empty, _ := EncodeSnapshot(nil)
	two, _ := EncodeSnapshot(map[proto.NodeID]uint64{nodeID(1): 1, nodeID(2): ^uint64(0)})
	f.Add(empty)
	f.Add(two)
	f.Add([]byte(SnapshotMagic))
	f.Add(two[:len(two)-1])
	f.Fuzz(func(t *testing.T, data []byte) {
		marks, err := DecodeSnapshot(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		// Strict: the only accepted encoding of a set of marks is the
		// canonical one.
		again, err := EncodeSnapshot(marks)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical snapshot:\n in %x\nout %x", data, again)
		}
	})
}

// FuzzDecodeMarkLog checks the log decoder on arbitrary bytes, and on a
// valid log built from the input and cut at an arbitrary offset (a crash
// mid-append), which must decode without error and lose at most the cut
// record.
func FuzzDecodeMarkLog(f *testing.F) {
	var rec [MarkRecordSize]byte
	encodeMarkRecord(rec[:], nodeID(1), 42)
	f.Add([]byte{}, uint16(0))
	f.Add(rec[:], uint16(27))
	f.Add(append(rec[:], rec[:10]...), uint16(40))
	f.Add(bytes.Repeat([]byte{0}, 3*MarkRecordSize), uint16(60))
	f.Add(bytes.Repeat([]byte{7}, 100), uint16(1000))
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		// 1. Arbitrary input.
		marks := make(map[proto.NodeID]uint64)
		good, err := decodeMarkLog(data, marks)
		if good < 0 || good > int64(len(data)) || good%MarkRecordSize != 0 {
			t.Fatalf("valid prefix %d of %d bytes", good, len(data))
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
		} else {
			again := make(map[proto.NodeID]uint64)
			g2, err := decodeMarkLog(data[:good], again)
			if err != nil || g2 != good || !maps.Equal(again, marks) {
				t.Fatalf("valid prefix does not decode to the same marks: %d %v", g2, err)
			}
		}

		// 2. A valid log of the input's 24-byte chunks, cut anywhere.
		var log []byte
		var recs [][24]byte
		for i := 0; i+24 <= len(data) && len(recs) < 64; i += 24 {
			var r [24]byte
			copy(r[:], data[i:])
			recs = append(recs, r)
			var n proto.NodeID
			copy(n[:], r[:16])
			log = append(log, make([]byte, MarkRecordSize)...)
			encodeMarkRecord(log[len(log)-MarkRecordSize:], n, beUint64(r[16:]))
		}
		c := int(cut) % (len(log) + 1)
		got := make(map[proto.NodeID]uint64)
		good, err = decodeMarkLog(log[:c], got)
		if err != nil {
			t.Fatalf("cut valid log at %d: %v", c, err)
		}
		whole := c / MarkRecordSize
		if good != int64(whole*MarkRecordSize) {
			t.Fatalf("cut at %d: valid prefix %d", c, good)
		}
		want := make(map[proto.NodeID]uint64)
		for _, r := range recs[:whole] {
			var n proto.NodeID
			copy(n[:], r[:16])
			if ts, ok := want[n]; !ok || beUint64(r[16:]) > ts {
				want[n] = beUint64(r[16:])
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("cut at %d: marks differ", c)
		}
	})
}

func FuzzLoadCeiling(f *testing.F) {
	f.Add(EncodeCeiling(0))
	f.Add(EncodeCeiling(1_715_000_000_000_000_000))
	f.Add([]byte("1715000000000000000\n"))
	f.Add([]byte(CeilingMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := DecodeCeiling(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) || v != 0 {
				t.Fatalf("DecodeCeiling = %d, %v", v, err)
			}
			return
		}
		if !bytes.Equal(EncodeCeiling(v), data) {
			t.Fatalf("accepted a non-canonical ceiling %x", data)
		}
	})
}

// FuzzSnapshotMarked: any bytes as state.json; only a JSON object whose
// "manifest" member is true counts, and nothing panics.
func FuzzSnapshotMarked(f *testing.F) {
	for _, s := range []string{`{"format":1,"manifest":true,"id":"x"}`, `{"format":1,"id":"x"}`, `{"manifest":false}`,
		`{"manifest":"true"}`, `[true]`, `{"manifest":true`, ``, "\x00\x00"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "state.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		got := SnapshotMarked(path)
		var top map[string]any
		want := json.Unmarshal(data, &top) == nil && top["manifest"] == true
		if got != want {
			t.Fatalf("SnapshotMarked(%q) = %v, want %v", data, got, want)
		}
	})
}

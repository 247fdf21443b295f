package store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/momgate/momgate/proto"
)

func FuzzDecodeSnapshot2(f *testing.F) {
	empty, _ := encodeSnapshot2(&markSnapshot{gen: 1})
	two, _ := encodeSnapshot2(&markSnapshot{gen: 7, floor: 99, recovering: true,
		marks:     map[proto.NodeID]uint64{nodeID(1): 1, nodeID(2): ^uint64(0)},
		unvouched: map[proto.NodeID]struct{}{nodeID(2): {}}})
	f.Add(empty)
	f.Add(two)
	f.Add(two[:len(two)-1])
	f.Add([]byte(SnapshotMagic2))
	bad := bytes.Clone(two)
	bad[len(SnapshotMagic2)+16+3] = 2 // undefined flags
	f.Add(bad)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := decodeSnapshot2(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		for n := range s.unvouched {
			if _, ok := s.marks[n]; !ok {
				t.Fatalf("unvouched %x without a mark", n)
			}
		}
		again, err := encodeSnapshot2(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted a non-canonical snapshot:\n in %x\nout %x", data, again)
		}
	})
}

// FuzzReadMarkLog2 runs the format 2 log reader on arbitrary bytes: it
// never panics, and when it finds nothing wrong every record the header
// vouches for was there and is among the marks.
func FuzzReadMarkLog2(f *testing.F) {
	var hdr [MarkHeaderSize]byte
	var rec [MarkRecordSize]byte
	encodeMarkRecord(rec[:], nodeID(1), 42)
	h := markHeader{gen: 0, count: 1, sum: crcOf(rec[:])}
	h.encode(hdr[:])
	one := append(bytes.Clone(hdr[:]), rec[:]...)
	f.Add(one)
	f.Add(one[:len(one)-1])
	f.Add(append(bytes.Clone(one), rec[:]...))
	f.Add(hdr[:])
	f.Add(append(bytes.Clone(hdr[:]), make([]byte, MarkRecordSize)...))
	f.Add([]byte(MarkLogMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < len(MarkLogMagic) || string(data[:len(MarkLogMagic)]) != MarkLogMagic {
			data = append([]byte(MarkLogMagic), data...)
		}
		st := &MarkState{Marks: map[proto.NodeID]uint64{}, Unvouched: map[proto.NodeID]struct{}{}}
		st.readLog2(data, nil, false, MarkOptions{})
		if len(st.Findings) > 0 {
			return
		}
		h, err := decodeMarkHeader(data)
		if err != nil {
			t.Fatalf("no finding for a bad header: %v", err)
		}
		if h.gen > 0 || h.open {
			t.Fatalf("no finding for generation %d / open %v without a snapshot", h.gen, h.open)
		}
		for i := uint64(0); i < h.count; i++ {
			r := data[MarkHeaderSize+i*MarkRecordSize:]
			var n proto.NodeID
			copy(n[:], r[:16])
			if st.Marks[n] < beUint64(r[16:24]) {
				t.Fatalf("record %d not among the marks", i)
			}
		}
	})
}

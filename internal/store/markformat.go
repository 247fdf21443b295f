package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/momgate/momgate/proto"
)

// Format 2 of the mark store (docs/SECURITY.md section 7). The log starts
// with a header that is rewritten in place after every append, so the log
// says how many records it holds: a log cut at a record boundary, emptied
// or zeroed no longer looks whole. The snapshot carries a generation the
// log header repeats, so a snapshot deleted or restored alone is seen.
//
// Log header, MarkHeaderSize bytes:
//
//	0  magic "MGMLOG02"
//	8  generation (u64): the snapshot generation the records follow
//	16 count (u64): records appended since the header was written fresh
//	24 sum (u32): CRC-32C of those records' bytes, in order
//	28 flags (u32): bit 0 open (a writer holds the log)
//	32 boot id (16) of the machine when the writer opened it
//	48 zero (12)
//	60 CRC-32C (u32) of bytes 0..60
//
// Records follow, as in format 1: node id (16) | timestamp (8) | CRC-32C of
// the 24 (4).
const (
	MarkLogMagic   = "MGMLOG02"
	MarkHeaderSize = 64
	markFlagOpen   = 1
)

// Snapshot format 2: SnapshotMagic2 | generation (u64) | recovery floor
// (u64) | flags (u32, bit 0 recovering) | count (u32) | count x (node id 16
// | timestamp u64 | flags u8, bit 0 unvouched), ids strictly increasing |
// CRC-32C (u32) of all the preceding bytes.
const (
	SnapshotMagic2   = "MGMARKS2"
	snap2HeaderSize  = len(SnapshotMagic2) + 8 + 8 + 4 + 4
	snap2EntrySize   = 25
	maxSnapshot2Size = snap2HeaderSize + MaxSnapshotMarks*snap2EntrySize + 4
	snapFlagRecover  = 1
	entryUnvouched   = 1
)

// markHeader is the decoded log header.
type markHeader struct {
	gen   uint64
	count uint64
	sum   uint32
	open  bool
	boot  [16]byte
}

func (h *markHeader) encode(dst []byte) {
	_ = dst[MarkHeaderSize-1]
	clear(dst[:MarkHeaderSize])
	copy(dst, MarkLogMagic)
	binary.BigEndian.PutUint64(dst[8:], h.gen)
	binary.BigEndian.PutUint64(dst[16:], h.count)
	binary.BigEndian.PutUint32(dst[24:], h.sum)
	if h.open {
		binary.BigEndian.PutUint32(dst[28:], markFlagOpen)
	}
	copy(dst[32:48], h.boot[:])
	binary.BigEndian.PutUint32(dst[60:], crcOf(dst[:60]))
}

// decodeMarkHeader strictly decodes a log header; errors wrap ErrCorrupt.
func decodeMarkHeader(b []byte) (markHeader, error) {
	var h markHeader
	if len(b) < MarkHeaderSize {
		return h, fmt.Errorf("%w: header of %d bytes, want %d", ErrCorrupt, len(b), MarkHeaderSize)
	}
	if string(b[:8]) != MarkLogMagic {
		return h, fmt.Errorf("%w: bad log magic %q", ErrCorrupt, b[:8])
	}
	if binary.BigEndian.Uint32(b[60:64]) != crcOf(b[:60]) {
		return h, fmt.Errorf("%w: bad log header checksum", ErrCorrupt)
	}
	flags := binary.BigEndian.Uint32(b[28:32])
	if flags&^markFlagOpen != 0 || !allZero(b[48:60]) {
		return h, fmt.Errorf("%w: undefined log header flags %#x", ErrCorrupt, flags)
	}
	h.gen = binary.BigEndian.Uint64(b[8:])
	h.count = binary.BigEndian.Uint64(b[16:])
	h.sum = binary.BigEndian.Uint32(b[24:])
	h.open = flags&markFlagOpen != 0
	copy(h.boot[:], b[32:48])
	return h, nil
}

// markSnapshot is a decoded snapshot of either format.
type markSnapshot struct {
	format     int // 1 or 2
	gen        uint64
	floor      uint64
	recovering bool
	marks      map[proto.NodeID]uint64
	unvouched  map[proto.NodeID]struct{}
}

// encodeSnapshot2 encodes s in format 2.
func encodeSnapshot2(s *markSnapshot) ([]byte, error) {
	if len(s.marks) > MaxSnapshotMarks {
		return nil, fmt.Errorf("%d marks exceed the snapshot limit of %d", len(s.marks), MaxSnapshotMarks)
	}
	ids := make([]proto.NodeID, 0, len(s.marks))
	for n := range s.marks {
		ids = append(ids, n)
	}
	slices.SortFunc(ids, func(a, b proto.NodeID) int { return bytes.Compare(a[:], b[:]) })
	out := make([]byte, 0, snap2HeaderSize+len(ids)*snap2EntrySize+4)
	out = append(out, SnapshotMagic2...)
	out = binary.BigEndian.AppendUint64(out, s.gen)
	out = binary.BigEndian.AppendUint64(out, s.floor)
	var flags uint32
	if s.recovering {
		flags = snapFlagRecover
	}
	out = binary.BigEndian.AppendUint32(out, flags)
	out = binary.BigEndian.AppendUint32(out, uint32(len(ids)))
	for _, n := range ids {
		out = append(out, n[:]...)
		out = binary.BigEndian.AppendUint64(out, s.marks[n])
		var f byte
		if _, ok := s.unvouched[n]; ok {
			f = entryUnvouched
		}
		out = append(out, f)
	}
	return binary.BigEndian.AppendUint32(out, crcOf(out)), nil
}

// decodeAnySnapshot decodes a snapshot of format 1 or 2 strictly.
func decodeAnySnapshot(data []byte) (*markSnapshot, error) {
	if len(data) >= len(SnapshotMagic) && string(data[:len(SnapshotMagic)]) == SnapshotMagic {
		marks, err := DecodeSnapshot(data)
		if err != nil {
			return nil, err
		}
		return &markSnapshot{format: 1, marks: marks, unvouched: map[proto.NodeID]struct{}{}}, nil
	}
	return decodeSnapshot2(data)
}

// decodeSnapshot2 strictly decodes format 2: magic, exact length, defined
// flags, ids strictly increasing, checksum. Errors wrap ErrCorrupt.
func decodeSnapshot2(data []byte) (*markSnapshot, error) {
	if len(data) < snap2HeaderSize+4 {
		return nil, fmt.Errorf("%w: snapshot of %d bytes is too short", ErrCorrupt, len(data))
	}
	if string(data[:len(SnapshotMagic2)]) != SnapshotMagic2 {
		return nil, fmt.Errorf("%w: bad snapshot magic %q", ErrCorrupt, data[:len(SnapshotMagic2)])
	}
	h := data[len(SnapshotMagic2):]
	s := &markSnapshot{format: 2, gen: binary.BigEndian.Uint64(h), floor: binary.BigEndian.Uint64(h[8:])}
	flags := binary.BigEndian.Uint32(h[16:])
	count := binary.BigEndian.Uint32(h[20:])
	if flags&^snapFlagRecover != 0 {
		return nil, fmt.Errorf("%w: undefined snapshot flags %#x", ErrCorrupt, flags)
	}
	s.recovering = flags&snapFlagRecover != 0
	if count > MaxSnapshotMarks {
		return nil, fmt.Errorf("%w: snapshot count %d exceeds %d", ErrCorrupt, count, MaxSnapshotMarks)
	}
	if want := snap2HeaderSize + int(count)*snap2EntrySize + 4; len(data) != want {
		return nil, fmt.Errorf("%w: snapshot of %d marks is %d bytes, want %d", ErrCorrupt, count, len(data), want)
	}
	body := data[:len(data)-4]
	if crcOf(body) != binary.BigEndian.Uint32(data[len(data)-4:]) {
		return nil, fmt.Errorf("%w: bad snapshot checksum", ErrCorrupt)
	}
	s.marks = make(map[proto.NodeID]uint64, count)
	s.unvouched = map[proto.NodeID]struct{}{}
	var prev proto.NodeID
	for i := 0; i < int(count); i++ {
		e := body[snap2HeaderSize+i*snap2EntrySize:]
		var n proto.NodeID
		copy(n[:], e[:16])
		if i > 0 && bytes.Compare(n[:], prev[:]) <= 0 {
			return nil, fmt.Errorf("%w: snapshot entry %d out of order", ErrCorrupt, i)
		}
		switch e[24] {
		case 0:
		case entryUnvouched:
			s.unvouched[n] = struct{}{}
		default:
			return nil, fmt.Errorf("%w: snapshot entry %d has undefined flags %#x", ErrCorrupt, i, e[24])
		}
		s.marks[n] = binary.BigEndian.Uint64(e[16:24])
		prev = n
	}
	return s, nil
}

package replica

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A snapshot of the replicated state is a list of named sections, one per
// state file of the server (state.json, keyring.json, rotation.json,
// deny.json, members.json), each with its own checksum, so Restore can hand
// each to the same strict decoder that loads the file and a damaged or
// truncated snapshot is refused whole.
//
//	magic "MGSNAP1\n" (8) | count (2)
//	count x ( name length (1) | name | data length (4) | CRC-32C of data (4) | data )
//
// and nothing after the last section.

// ErrBadSnapshot means snapshot bytes do not decode.
var ErrBadSnapshot = errors.New("malformed state snapshot")

const snapshotMagic = "MGSNAP1\n"

// Limits of a snapshot.
const (
	MaxSections    = 64
	MaxSectionName = 64
	// MaxSnapshotSize bounds the sum of section sizes ReadSections accepts.
	MaxSnapshotSize = 1 << 30
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Section is one named part of a snapshot.
type Section struct {
	Name string
	Data []byte
}

func checkSectionName(n string) error {
	if n == "" || len(n) > MaxSectionName {
		return fmt.Errorf("section name of %d bytes, want 1 to %d", len(n), MaxSectionName)
	}
	for _, c := range []byte(n) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("section name %q: want lowercase letters, digits, '.', '_', '-'", n)
		}
	}
	return nil
}

// WriteSections writes the sections in the given order. Names must be
// valid and distinct.
func WriteSections(w io.Writer, secs []Section) (int64, error) {
	if len(secs) > MaxSections {
		return 0, fmt.Errorf("write snapshot: %d sections, at most %d", len(secs), MaxSections)
	}
	seen := map[string]bool{}
	var hdr bytes.Buffer
	hdr.WriteString(snapshotMagic)
	hdr.Write(binary.BigEndian.AppendUint16(nil, uint16(len(secs))))
	n, err := w.Write(hdr.Bytes())
	total := int64(n)
	if err != nil {
		return total, fmt.Errorf("write snapshot: %w", err)
	}
	for _, s := range secs {
		if err := checkSectionName(s.Name); err != nil {
			return total, fmt.Errorf("write snapshot: %w", err)
		}
		if seen[s.Name] {
			return total, fmt.Errorf("write snapshot: section %q twice", s.Name)
		}
		seen[s.Name] = true
		if len(s.Data) > MaxSnapshotSize {
			return total, fmt.Errorf("write snapshot: section %q of %d bytes", s.Name, len(s.Data))
		}
		h := make([]byte, 0, 1+len(s.Name)+8)
		h = append(h, byte(len(s.Name)))
		h = append(h, s.Name...)
		h = binary.BigEndian.AppendUint32(h, uint32(len(s.Data)))
		h = binary.BigEndian.AppendUint32(h, crc32.Checksum(s.Data, castagnoli))
		for _, part := range [][]byte{h, s.Data} {
			n, err := w.Write(part)
			total += int64(n)
			if err != nil {
				return total, fmt.Errorf("write snapshot: %w", err)
			}
		}
	}
	return total, nil
}

// ReadSections reads a whole snapshot strictly: magic, distinct valid
// names, checksums, sizes within MaxSnapshotSize, and nothing after the
// last section. Every error wraps ErrBadSnapshot (or is the reader's).
func ReadSections(r io.Reader) ([]Section, error) {
	var head [len(snapshotMagic) + 2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		return nil, fmt.Errorf("%w: header: %v", ErrBadSnapshot, err)
	}
	if string(head[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic", ErrBadSnapshot)
	}
	count := int(binary.BigEndian.Uint16(head[len(snapshotMagic):]))
	if count > MaxSections {
		return nil, fmt.Errorf("%w: %d sections, at most %d", ErrBadSnapshot, count, MaxSections)
	}
	var out []Section
	seen := map[string]bool{}
	var total int64
	for i := 0; i < count; i++ {
		var l [1]byte
		if _, err := io.ReadFull(r, l[:]); err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", ErrBadSnapshot, i, err)
		}
		name := make([]byte, int(l[0]))
		if _, err := io.ReadFull(r, name); err != nil {
			return nil, fmt.Errorf("%w: section %d name: %v", ErrBadSnapshot, i, err)
		}
		if err := checkSectionName(string(name)); err != nil {
			return nil, fmt.Errorf("%w: section %d: %v", ErrBadSnapshot, i, err)
		}
		if seen[string(name)] {
			return nil, fmt.Errorf("%w: section %q twice", ErrBadSnapshot, name)
		}
		seen[string(name)] = true
		var sz [8]byte
		if _, err := io.ReadFull(r, sz[:]); err != nil {
			return nil, fmt.Errorf("%w: section %q: %v", ErrBadSnapshot, name, err)
		}
		size := int64(binary.BigEndian.Uint32(sz[:4]))
		if total += size; total > MaxSnapshotSize {
			return nil, fmt.Errorf("%w: over %d bytes", ErrBadSnapshot, MaxSnapshotSize)
		}
		// Read through a LimitReader so a lying size costs what is there,
		// not what it claims.
		var data bytes.Buffer
		if n, err := io.Copy(&data, io.LimitReader(r, size)); err != nil || n != size {
			return nil, fmt.Errorf("%w: section %q: %d of %d bytes (%v)", ErrBadSnapshot, name, n, size, err)
		}
		if crc32.Checksum(data.Bytes(), castagnoli) != binary.BigEndian.Uint32(sz[4:]) {
			return nil, fmt.Errorf("%w: section %q: checksum mismatch", ErrBadSnapshot, name)
		}
		out = append(out, Section{Name: string(name), Data: data.Bytes()})
	}
	var extra [1]byte
	switch _, err := io.ReadFull(r, extra[:]); {
	case err == nil:
		return nil, fmt.Errorf("%w: data after the last section", ErrBadSnapshot)
	case !errors.Is(err, io.EOF):
		return nil, fmt.Errorf("%w: after the last section: %v", ErrBadSnapshot, err)
	}
	return out, nil
}

package proto

import (
	"encoding/binary"
	"fmt"
)

// reader decodes a body; the first error sticks and later reads return zeros.
type reader struct {
	b   []byte
	typ Type
	err error
}

func (r *reader) fail(field string, err error) {
	if r.err == nil {
		r.err = fmt.Errorf("decode %s: %s: %w", r.typ, field, err)
	}
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail(field, ErrTruncated)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) fixed(dst []byte, field string) {
	if b := r.take(len(dst), field); b != nil {
		copy(dst, b)
	}
}

func (r *reader) u8(field string) uint8 {
	if b := r.take(1, field); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16(field string) uint16 {
	if b := r.take(2, field); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32(field string) uint32 {
	if b := r.take(4, field); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64(field string) uint64 {
	if b := r.take(8, field); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// bytes16 reads a uint16-length-prefixed byte string of at most max bytes.
func (r *reader) bytes16(max int, field string) []byte {
	n := int(r.u16(field + " length"))
	if r.err != nil {
		return nil
	}
	if n > max {
		r.fail(field, fmt.Errorf("%d bytes, limit %d: %w", n, max, ErrFieldTooLong))
		return nil
	}
	b := r.take(n, field)
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

func (r *reader) str(max int, field string) string {
	return string(r.bytes16(max, field))
}

// count reads a count of the given width (2 or 4 bytes) and checks it
// against max and against the bytes left for elements of size elem.
func (r *reader) count(width, max, elem int, field string) int {
	var n int
	if width == 1 {
		n = int(r.u8(field))
	} else if width == 2 {
		n = int(r.u16(field))
	} else {
		n = int(r.u32(field))
	}
	if r.err != nil {
		return 0
	}
	if n > max {
		r.fail(field, fmt.Errorf("%d, limit %d: %w", n, max, ErrCountLimit))
		return 0
	}
	if n*elem > len(r.b) {
		r.fail(field, ErrTruncated)
		return 0
	}
	return n
}

func (r *reader) check(field string, ok bool, format string, args ...any) {
	if !ok {
		r.fail(field, fmt.Errorf(format+": %w", append(args, ErrBadValue)...))
	}
}

// end returns the sticky error, or ErrTrailing if bytes are left.
func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("decode %s: %d bytes after the last field: %w", r.typ, len(r.b), ErrTrailing)
	}
	return r.err
}

func appendBytes16(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendStr(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

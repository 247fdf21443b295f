package pbsauth

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"
)

// reader decodes a body; the first error sticks and later reads return
// zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(field, format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s: %s", ErrMalformed, field, fmt.Sprintf(format, args...))
	}
}

func (r *reader) take(n int, field string) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.b) < n {
		r.fail(field, "%d bytes left, %d needed", len(r.b), n)
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) fixed(dst []byte, field string) { copy(dst, r.take(len(dst), field)) }

func (r *reader) u8(field string) uint8 {
	if b := r.take(1, field); b != nil {
		return b[0]
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

// bytes16 reads a uint16 length and that many bytes, at most max.
func (r *reader) bytes16(max int, field string) []byte {
	b := r.take(2, field)
	if b == nil {
		return nil
	}
	n := int(binary.BigEndian.Uint16(b))
	if n > max {
		r.fail(field, "%d bytes, the limit is %d", n, max)
		return nil
	}
	return r.take(n, field)
}

// str is bytes16 as UTF-8 text without NUL bytes (they would cut the
// string short in C).
func (r *reader) str(max int, field string) string {
	b := r.bytes16(max, field)
	if r.err != nil {
		return ""
	}
	if !utf8.Valid(b) {
		r.fail(field, "not UTF-8")
		return ""
	}
	for _, c := range b {
		if c == 0 {
			r.fail(field, "contains a NUL byte")
			return ""
		}
	}
	return string(b)
}

// end returns the sticky error, or a malformed error if bytes are left.
func (r *reader) end() error {
	if r.err == nil && len(r.b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(r.b))
	}
	return r.err
}

func appendBytes16(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendStr(b []byte, s string) []byte { return appendBytes16(b, []byte(s)) }

// checkStr reports whether s fits a str field of at most max bytes.
func checkStr(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s: %d bytes, the limit is %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s: not UTF-8", field)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return fmt.Errorf("%s: contains a NUL byte", field)
		}
	}
	return nil
}

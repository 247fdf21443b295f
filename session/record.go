package session

import (
	"crypto/cipher"
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/momgate/momgate/proto"
)

// Record layout (section 6.5): an 8-byte frame header of type RecordType,
// then the payload (the inner frame, encrypted or in the clear), then a
// 16-byte Poly1305 tag.
const (
	// RecordType is the frame type of a sealed record. proto does not know
	// it: outside a session a record is an unknown type.
	RecordType proto.Type = 0x60
	// TagSize is the size of a record's tag.
	TagSize = chacha20poly1305.Overhead
	// RecordOverhead is what sealing adds to an inner frame.
	RecordOverhead = proto.HeaderSize + TagSize
	// MinRecordSize is the smallest record: an inner frame of a bare header.
	MinRecordSize = RecordOverhead + proto.HeaderSize
	// MaxRecordSize caps a record: room for one inner frame of
	// proto.MaxFrameSize, the largest frame momgate sends.
	MaxRecordSize = proto.MaxFrameSize + RecordOverhead
)

// Diagnosis of a record that fails to open (section 6.5).
const (
	// recentTags is how many earlier records a receiver remembers (tag and
	// length) to tell a replayed copy from a forgery.
	recentTags = 32
	// skipWindow is how many later counters a receiver tries, to tell a
	// dropped record from a forgery.
	skipWindow = 16
)

// ParseRecordHeader checks a record header and returns the whole record's
// length. limit caps it (0 means MaxRecordSize). The header is checked
// before any body byte is read: a header of the wrong magic, version or
// type is ErrAuth (it is authenticated data: a damaged one cannot open); a
// length over the cap is ErrSize, one too short for a frame is ErrAuth.
func ParseRecordHeader(b []byte, limit int) (int, error) {
	// The common case, small enough to inline: a good header.
	if len(b) >= proto.HeaderSize && binary.BigEndian.Uint16(b) == proto.Magic &&
		proto.Version(b[2]) == proto.V2 && proto.Type(b[3]) == RecordType {
		n := uint64(binary.BigEndian.Uint32(b[4:8])) + proto.HeaderSize
		if n >= MinRecordSize && n <= MaxRecordSize && (limit <= 0 || n <= uint64(limit)) {
			return int(n), nil
		}
	}
	return parseRecordHeaderSlow(b, limit)
}

// parseRecordHeaderSlow is ParseRecordHeader's full check, with the error.
func parseRecordHeaderSlow(b []byte, limit int) (int, error) {
	if limit <= 0 || limit > MaxRecordSize {
		limit = MaxRecordSize
	}
	if len(b) < proto.HeaderSize {
		return 0, fmt.Errorf("record header of %d bytes: %w", len(b), ErrAuth)
	}
	if binary.BigEndian.Uint16(b) != proto.Magic || proto.Version(b[2]) != proto.V2 || proto.Type(b[3]) != RecordType {
		return 0, fmt.Errorf("record header %x is not a v2 record: %w", b[:4], ErrAuth)
	}
	n := uint64(binary.BigEndian.Uint32(b[4:8])) + proto.HeaderSize
	switch {
	case n > uint64(limit):
		return 0, fmt.Errorf("record of %d bytes, cap %d: %w", n, limit, ErrSize)
	case n < MinRecordSize:
		return 0, fmt.Errorf("record of %d bytes, at least %d: %w", n, MinRecordSize, ErrAuth)
	}
	return int(n), nil
}

// ReadRecord reads one whole record from r into buf (grown if too small)
// and returns it. The header is checked (ParseRecordHeader) before the body
// is read or buf grown. Errors of r before the first byte of a record are
// returned as they are (io.EOF for a stream that ended between records, a
// read deadline); once part of a record has been read, any error (a close,
// a timeout) wraps ErrAuth as well as r's error: the stream is out of step.
func ReadRecord(r io.Reader, buf []byte, limit int) ([]byte, error) {
	if cap(buf) < proto.HeaderSize {
		buf = make([]byte, 0, 512)
	}
	hdr := buf[:proto.HeaderSize]
	if got, err := io.ReadFull(r, hdr); err != nil {
		if got == 0 {
			return nil, err // between records: io.EOF, a timeout, as they are
		}
		// Part of a record read: whatever stopped the read (a close, a
		// timeout), the stream is out of step and the session over.
		return nil, fmt.Errorf("record header cut short after %d bytes: %w: %w", got, err, ErrAuth)
	}
	n, err := ParseRecordHeader(hdr, limit)
	if err != nil {
		return nil, err
	}
	if cap(buf) < n {
		grown := make([]byte, n)
		copy(grown, hdr)
		buf = grown
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf[proto.HeaderSize:]); err != nil {
		return nil, fmt.Errorf("record of %d bytes cut short: %w: %w", n, err, ErrAuth)
	}
	return buf, nil
}

// checkInner checks that b is exactly one frame: a header with the magic
// and a body length that matches.
func checkInner(b []byte) error {
	if len(b) >= proto.HeaderSize && binary.BigEndian.Uint16(b) == proto.Magic &&
		uint64(binary.BigEndian.Uint32(b[4:8]))+proto.HeaderSize == uint64(len(b)) {
		return nil // inlined: the common case
	}
	return checkInnerSlow(b)
}

// checkInnerSlow is checkInner's full check, with the error.
func checkInnerSlow(b []byte) error {
	if len(b) < proto.HeaderSize || binary.BigEndian.Uint16(b) != proto.Magic {
		return fmt.Errorf("inner frame of %d bytes has no frame header", len(b))
	}
	if n := uint64(binary.BigEndian.Uint32(b[4:8])); n+proto.HeaderSize != uint64(len(b)) {
		return fmt.Errorf("inner frame of %d bytes says its body is %d", len(b), n)
	}
	return nil
}

// recordAEAD makes the record cipher of a key: ChaCha20-Poly1305 with a
// 96-bit nonce (RFC 8439).
func recordAEAD(key *[KeySize]byte) cipher.AEAD {
	a, err := chacha20poly1305.New(key[:])
	if err != nil {
		panic("chacha20poly1305 with a 32-byte key: " + err.Error()) // cannot happen
	}
	return a
}

// putNonce writes the implicit nonce of counter c: four zero bytes, then c.
func putNonce(n *[chacha20poly1305.NonceSize]byte, c uint64) {
	binary.BigEndian.PutUint64(n[4:], c)
}

// sender seals the records of one direction. Not safe for concurrent use.
type sender struct {
	prot  Protection
	aead  cipher.AEAD
	gen   uint64
	next  uint64 // counter of the next record
	nonce [chacha20poly1305.NonceSize]byte
	hdr   [proto.HeaderSize]byte
}

func (s *sender) install(gen uint64, key *[KeySize]byte) {
	s.aead, s.gen, s.next = recordAEAD(key), gen, 0
	clear(key[:])
}

// seal appends the record of inner frame f under the next counter.
func (s *sender) seal(dst, f []byte) []byte {
	proto.Header{Version: proto.V2, Type: RecordType, Length: uint32(len(f) + TagSize)}.Put(s.hdr[:])
	putNonce(&s.nonce, s.next)
	s.next++
	start := len(dst)
	if free := cap(dst) - start; free < len(f)+RecordOverhead {
		grown := make([]byte, start, start+len(f)+RecordOverhead)
		copy(grown, dst)
		dst = grown
	}
	dst = append(dst, s.hdr[:]...)
	if s.prot == Encrypt {
		return s.aead.Seal(dst, s.nonce[:], f, s.hdr[:])
	}
	dst = append(dst, f...)
	return s.aead.Seal(dst, s.nonce[:], nil, dst[start:])
}

// seenRecord is what a receiver remembers of an opened record.
type seenRecord struct {
	tag     [TagSize]byte
	size    int
	gen     uint64
	counter uint64
}

// receiver opens the records of one direction. Not safe for concurrent use.
type receiver struct {
	prot  Protection
	aead  cipher.AEAD
	gen   uint64
	next  uint64 // counter the next record must have
	nonce [chacha20poly1305.NonceSize]byte
	plain []byte // decrypted inner frames (Encrypt), reused
	seen  [recentTags]seenRecord
	nseen uint64
}

func (r *receiver) install(gen uint64, key *[KeySize]byte) {
	r.aead, r.gen, r.next = recordAEAD(key), gen, 0
	clear(key[:])
}

// shrinkAbove is the largest receive buffer kept between records: one
// large record (a DenySet of a megabyte) does not pin its buffer for the
// life of the connection.
const shrinkAbove = 128 << 10

// wipe erases the decrypted frames in the buffer.
func (r *receiver) wipe() { clear(r.plain[:cap(r.plain)]) }

// shrink drops a buffer grown past shrinkAbove, erased first.
func (r *receiver) shrink() {
	if cap(r.plain) > shrinkAbove {
		r.wipe()
		r.plain = nil
	}
}

// open authenticates one whole record (its header already checked) under
// the next counter and returns the inner frame: for Encrypt in r's buffer,
// for Auth inside rec. rec is never modified, so a failure can be diagnosed.
func (r *receiver) open(rec []byte) ([]byte, error) {
	f, ok := r.try(rec, r.next)
	if !ok {
		return nil, r.diagnose(rec)
	}
	s := &r.seen[r.nseen%recentTags]
	copy(s.tag[:], rec[len(rec)-TagSize:])
	s.size, s.gen, s.counter = len(rec), r.gen, r.next
	r.nseen++
	r.next++
	return f, nil
}

// try opens rec as if sealed under counter c.
func (r *receiver) try(rec []byte, c uint64) ([]byte, bool) {
	putNonce(&r.nonce, c)
	body := rec[proto.HeaderSize:]
	if r.prot == Encrypt {
		n := len(body) - TagSize
		if cap(r.plain) < n {
			r.plain = make([]byte, 0, n)
		}
		f, err := r.aead.Open(r.plain[:0], r.nonce[:], body, rec[:proto.HeaderSize])
		return f, err == nil
	}
	end := len(rec) - TagSize
	if _, err := r.aead.Open(r.plain[:0], r.nonce[:], rec[end:], rec[:end]); err != nil {
		return nil, false
	}
	return rec[proto.HeaderSize:end], true
}

// diagnose names the failure of a record that did not open under its
// counter: a copy of one of the last records is a replay, a record that
// opens under one of the next counters means records were dropped (both
// ErrReplay); anything else is ErrAuth.
func (r *receiver) diagnose(rec []byte) error {
	tag := rec[len(rec)-TagSize:]
	for i := range r.seen {
		s := &r.seen[i]
		if uint64(i) >= r.nseen || s.size != len(rec) || subtle.ConstantTimeCompare(s.tag[:], tag) != 1 {
			continue
		}
		if s.gen == r.gen {
			// Under the current key the copy is checked whole: it opens
			// under the counter it was first received with.
			_, ok := r.try(rec, s.counter)
			r.wipe()
			if !ok {
				continue
			}
		}
		return fmt.Errorf("copy of record %d of generation %d where record %d of generation %d was due: %w",
			s.counter, s.gen, r.next, r.gen, ErrReplay)
	}
	for c := r.next + 1; c <= r.next+skipWindow; c++ {
		if _, ok := r.try(rec, c); ok {
			r.wipe()
			return fmt.Errorf("record %d of generation %d where record %d was due (%d dropped): %w",
				c, r.gen, r.next, c-r.next, ErrReplay)
		}
	}
	return fmt.Errorf("record %d of generation %d (%d bytes): %w", r.next, r.gen, len(rec), ErrAuth)
}

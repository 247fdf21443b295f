package session

import (
	"fmt"
	"io"
	"time"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// Session is one side of a sealed session over byte slices: it seals the
// frames this side sends into records, opens the records it receives, and
// runs the rekeys (its Machine) in between. The records it returns must be
// sent in the order it returns them, before anything sealed later.
//
// A Session is not safe for concurrent use; Conn adds the locking. Once an
// operation fails with one of the session errors the session is over and
// every later call returns the same error.
type Session struct {
	prot Protection
	lim  Limits
	m    *Machine
	tx   sender
	rx   receiver
	err  error
	ctl  [rekeyFrameSize]byte // control frame scratch

	sealed, opened uint64 // application records, all generations
	// confirmed: a record of the peer opened, so the peer holds the keys
	// (key confirmation: a daemon marks the peer only then).
	confirmed bool
}

// NewSession starts a session from its generation-0 secret (which it
// zeroes), derived at now. Handshakes (Initiator.Finish, Respond) call it;
// tests and tools that agree on a secret another way may too.
func NewSession(role Role, prot Protection, s0 *[KeySize]byte, now time.Time, lim Limits, rnd io.Reader) (*Session, error) {
	m, acts, err := NewMachine(role, prot, s0, now, lim, rnd)
	if err != nil {
		return nil, err
	}
	s := &Session{prot: prot, lim: m.lim, m: m, tx: sender{prot: prot}, rx: receiver{prot: prot}}
	if _, err := s.apply(nil, &acts); err != nil {
		return nil, err
	}
	return s, nil
}

// Confirmed reports whether a record from the peer has opened: the peer
// derived the same keys, so the swap really completed on both sides.
func (s *Session) Confirmed() bool { return s.confirmed }

// Protection returns the session's protection (Auth or Encrypt).
func (s *Session) Protection() Protection { return s.prot }

// Limit returns the record size cap the session enforces.
func (s *Session) Limit() int { return s.lim.MaxRecord }

// Err returns why the session ended, or nil while it runs.
func (s *Session) Err() error { return s.err }

// SealFrame appends to dst the record of one whole inner frame (a proto
// frame, header included), preceded by any rekey record due first. frame
// must not overlap dst's spare capacity. A frame that is not one whole frame,
// or too large for the peer's cap, is refused without ending the session.
func (s *Session) SealFrame(dst, frame []byte, now time.Time) ([]byte, error) {
	if s.err != nil {
		return dst, s.err
	}
	if err := checkInner(frame); err != nil {
		return dst, fmt.Errorf("seal: %v", err)
	}
	if len(frame) > s.lim.MaxRecord-RecordOverhead {
		return dst, fmt.Errorf("seal: frame of %d bytes, record cap %d: %w", len(frame), s.lim.MaxRecord, ErrSize)
	}
	if isControl(frame) {
		return dst, fmt.Errorf("seal: frame type %s is reserved for the session layer", proto.Type(frame[3]))
	}
	dst, err := s.check(dst, now)
	if err != nil {
		return dst, err
	}
	s.sealed++
	return s.tx.seal(dst, frame), nil
}

// OpenRecord opens one whole record (ParseRecordHeader already passed, as
// ReadRecord ensures) and returns the inner frame, which stays valid until
// the next call (it aliases the session's buffer or rec). For a session
// control record it returns a nil frame. Records this side must send in
// response (rekey messages) are appended to out and returned.
func (s *Session) OpenRecord(rec, out []byte, now time.Time) (frame, reply []byte, err error) {
	if s.err != nil {
		s.rx.wipe()
		return nil, out, s.err
	}
	s.rx.shrink()
	if n, err := ParseRecordHeader(rec, s.lim.MaxRecord); err != nil {
		return nil, out, s.fail(err)
	} else if n != len(rec) {
		return nil, out, s.fail(fmt.Errorf("record of %d bytes, header says %d: %w", len(rec), n, ErrAuth))
	}
	if s.m.Due(now, s.tx.next, s.rx.next) { // inlined: the hot path is the comparisons
		if out, err = s.check(out, now); err != nil {
			return nil, out, err
		}
	}
	f, err := s.rx.open(rec)
	if err != nil {
		return nil, out, s.fail(err)
	}
	s.confirmed = true
	if err := checkInner(f); err != nil {
		return nil, out, s.fail(fmt.Errorf("open: %v: %w", err, ErrProtocol))
	}
	if !isControl(f) {
		s.opened++
		return f, out, nil
	}
	c, err := DecodeControl(f)
	if err != nil {
		return nil, out, s.fail(err)
	}
	acts := s.m.Receive(c, now)
	out, err = s.apply(out, &acts)
	return nil, out, err
}

// Tick appends any record due at now (a rekey on age) to out. It returns
// ErrExpired once the keys are too old: call it by NextDeadline at the
// latest, so an idle session rekeys too.
func (s *Session) Tick(out []byte, now time.Time) ([]byte, error) {
	if s.err != nil {
		return out, s.err
	}
	return s.check(out, now)
}

// NextDeadline is when Tick must next be called.
func (s *Session) NextDeadline() time.Time { return s.m.NextDeadline() }

// check runs the machine's limits if due (the hot path is two comparisons).
func (s *Session) check(out []byte, now time.Time) ([]byte, error) {
	if !s.m.Due(now, s.tx.next, s.rx.next) {
		return out, nil
	}
	acts := s.m.Check(now, s.tx.next, s.rx.next)
	return s.apply(out, &acts)
}

// apply carries out a machine's actions, sealing control frames into out.
func (s *Session) apply(out []byte, acts *Actions) ([]byte, error) {
	defer acts.wipe()
	for i := 0; i < acts.Len(); i++ {
		a := acts.At(i)
		switch a.Kind {
		case SendControl:
			out = s.tx.seal(out, AppendControl(s.ctl[:0], &a.Control))
		case InstallSend:
			s.tx.install(a.Gen, &a.Key)
		case InstallRecv:
			s.rx.install(a.Gen, &a.Key)
		case Close:
			return out, s.fail(a.Err)
		}
	}
	return out, nil
}

// fail ends the session: the machine erases its secrets and the ciphers
// are dropped. The receive buffer is not touched here: a frame OpenRecord
// returned may still be in use by the reader while another goroutine's
// Tick or SealFrame fails the session; the reader erases it on its next
// call (OpenRecord, or WipeReceived once it stops reading).
func (s *Session) fail(err error) error {
	if s.err == nil {
		s.err = err
		s.m.fail(err)
		s.tx.aead, s.rx.aead = nil, nil
	}
	return s.err
}

// WipeReceived erases the decrypted frames the session keeps and drops a
// buffer grown past shrinkAbove. Only the reader calls it, once it no
// longer uses the last frame OpenRecord returned.
func (s *Session) WipeReceived() { s.rx.wipe() }

// Info is what a session shows: `peers` and `list node` print it.
type Info struct {
	Protection Protection     `json:"protection"`
	Generation uint64         `json:"generation"` // of the oldest keys in use
	KeyAge     time.Duration  `json:"key_age_ns"` // age of those keys
	Rekeys     uint64         `json:"rekeys"`     // completed rekeys
	Rekeying   bool           `json:"rekeying"`
	Sealed     uint64         `json:"sealed"` // application frames sent
	Opened     uint64         `json:"opened"` // application frames received
	Closed     reasons.Reason `json:"closed,omitempty"`
}

// Info reports the session's state at now.
func (s *Session) Info(now time.Time) Info {
	in := Info{Protection: s.prot, Generation: s.m.Generation(), KeyAge: now.Sub(s.m.Born()),
		Rekeys: s.m.Rekeys(), Rekeying: s.m.Rekeying(), Sealed: s.sealed, Opened: s.opened}
	if s.err != nil {
		in.Closed = Reason(s.err)
	}
	return in
}

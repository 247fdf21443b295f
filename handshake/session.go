package handshake

import (
	"bytes"
	"crypto/subtle"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	"github.com/momgate/momgate/session"
)

// Sealed sessions (docs/PROTOCOL.md section 6): the session swap, both
// halves, over the frames of a connection; the recording of a control
// handshake for the identity binding (6.4); and the Welcome's session
// trailer, by which the server proves it speaks sealed sessions (6.4).

// SessionParams is what a side that speaks sealed sessions needs besides
// its PING sealer and verifier.
type SessionParams struct {
	// Now is the sessions' clock: key ages and rekey deadlines, a
	// monotonic clock in the daemons.
	Now func() time.Time
	// Limits bound every session's keys (zero: the defaults).
	Limits session.Limits
}

// Recorder passes reads and writes through to a stream and keeps a copy
// of every byte until Stop: the frames of a control handshake (ServerHello,
// Enroll or Hello, Welcome) in the order they went by, which is the same on
// both sides, so both compute the same binding hash.
type Recorder struct {
	rw  io.ReadWriter
	buf bytes.Buffer
	on  bool
}

// NewRecorder starts recording rw.
func NewRecorder(rw io.ReadWriter) *Recorder { return &Recorder{rw: rw, on: true} }

// Read reads from the stream, recording what it returns.
func (r *Recorder) Read(p []byte) (int, error) {
	n, err := r.rw.Read(p)
	if r.on {
		r.buf.Write(p[:n])
	}
	return n, err
}

// Write writes to the stream, recording what was written.
func (r *Recorder) Write(p []byte) (int, error) {
	n, err := r.rw.Write(p)
	if r.on {
		r.buf.Write(p[:n])
	}
	return n, err
}

// Stop ends the recording and returns the bytes recorded.
func (r *Recorder) Stop() []byte {
	r.on = false
	return r.buf.Bytes()
}

// InitiateSession sends a SessionPing offering cfg's protections and
// finishes the swap with the SessionReply. The session is nil when the
// responder chose none. A Reject is a *RejectError (a peer that does not
// speak sealed sessions refuses the SessionPing with code 1).
func InitiateSession(rw io.ReadWriter, remote, local proto.Addr, s *ping.Sealer, v *ping.Verifier, cfg session.Config, now func() time.Time, res *ping.Result) (*session.Session, error) {
	in, err := session.NewInitiator(cfg)
	if err != nil {
		return nil, err
	}
	frame, err := in.AppendPing(make([]byte, 0, ping.ExtFrameSize), s, local, remote)
	if err != nil {
		return nil, err
	}
	if _, err := rw.Write(frame); err != nil {
		return nil, fmt.Errorf("send session ping: %w", err)
	}
	reply, err := proto.ReadFrameLimit(rw, make([]byte, ping.ExtReplyFrameSize), PreAuthMaxFrame)
	if err != nil {
		return nil, fmt.Errorf("read session reply: %w", err)
	}
	if isReject(reply) {
		return nil, rejectOf(reply)
	}
	return in.Finish(reply, v, remote, local, now(), res)
}

// RespondSession verifies frame (already read from rw) as a SessionPing
// and answers with a SessionReply, or with a Reject carrying the reason,
// which it also returns. The session is nil when none was chosen.
func RespondSession(rw io.ReadWriter, frame []byte, remote, local proto.Addr, s *ping.Sealer, v *ping.Verifier, cfg session.Config, now func() time.Time, res *ping.Result) (*session.Session, error) {
	out, sess, err := session.Respond(make([]byte, 0, ping.ExtReplyFrameSize), frame, s, v, remote, local, cfg, now(), res)
	if err != nil {
		code, ok := session.RejectCode(err)
		if !ok {
			code = RejectCode(err)
		}
		_ = proto.WriteFrame(rw, &proto.Reject{Code: code, Reason: err.Error()})
		return nil, err
	}
	if _, err := rw.Write(out); err != nil {
		return nil, fmt.Errorf("send session reply: %w", err)
	}
	return sess, nil
}

// RespondPlain is Respond with one more check between the PING checks and
// the answer: marks (the no-downgrade ratchet of section 6.7; nil for
// none) may refuse the verified Ping, answered with its reason's Reject
// code.
func RespondPlain(rw io.ReadWriter, frame []byte, remote, local proto.Addr, s *ping.Sealer, v *ping.Verifier, res *ping.Result, marks *session.Marks) error {
	return respond(rw, frame, remote, local, s, res, func() error { return v.VerifyPing(frame, remote, local, res) }, marks)
}

// SessionRejection is the refusal of a swap RespondSession or RespondPlain
// has answered: labelled by its session or PING reason.
func SessionRejection(err error) *Rejection {
	return &Rejection{Reason: sessionReason(err), Err: err}
}

// sessionReason labels a session swap's error: a session reason, a PING
// check's, or handshake for anything else (an I/O failure).
func sessionReason(err error) reasons.Reason {
	if r := session.Reason(err); r != reasons.Other {
		return r
	}
	return reasons.Handshake
}

// SealWelcomeSession returns the Welcome's session trailer for the node
// whose identity key is nodePub, on the connection whose challenge it is:
// sealed with the server's identity key, so only the server can make it
// and only that node open it.
func SealWelcomeSession(rnd io.Reader, serverPriv, nodePub *[32]byte, p *proto.WelcomeSessionProof) (*proto.WelcomeSession, error) {
	ws := &proto.WelcomeSession{}
	if _, err := io.ReadFull(rnd, ws.Nonce[:]); err != nil {
		return nil, fmt.Errorf("welcome session nonce: %w", err)
	}
	sealed := box.Seal(nil, p.Marshal(), &ws.Nonce, nodePub, serverPriv)
	copy(ws.Sealed[:], sealed)
	return ws, nil
}

// OpenWelcomeSession opens the session trailer of w with the MOM's
// identity and the server key it pins, and checks it answers this
// connection's challenge. A Welcome without a trailer gives nil, nil: the
// server does not speak sealed sessions (or the trailer was cut in
// flight: the server then refuses the plain swap that follows).
func OpenWelcomeSession(w *proto.Welcome, serverKey *[32]byte, ident *keys.Identity, challenge *[32]byte) (*proto.WelcomeSessionProof, error) {
	if w.Session == nil {
		return nil, nil
	}
	plain, ok := box.Open(nil, w.Session.Sealed[:], &w.Session.Nonce, serverKey, &ident.Private)
	if !ok {
		return nil, fmt.Errorf("welcome session trailer does not open under the server key: %w", session.ErrAuth)
	}
	p, err := proto.DecodeWelcomeSessionProof(plain)
	if err != nil {
		return nil, fmt.Errorf("welcome session trailer: %v: %w", err, session.ErrOffer)
	}
	if subtle.ConstantTimeCompare(p.Challenge[:], challenge[:]) != 1 {
		return nil, fmt.Errorf("welcome session trailer answers another connection's challenge: %w", session.ErrAuth)
	}
	return p, nil
}

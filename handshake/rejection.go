package handshake

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// PreAuthMaxFrame caps frames read before a peer is authenticated.
const PreAuthMaxFrame = 4 << 10

// Rejection is a refusal of the side that runs the handshake: the reason
// it is logged and counted under, what happened, and the Reject still
// due to the peer.
type Rejection struct {
	Reason reasons.Reason
	Err    error
	// Answer is the Reject to send the peer; nil when it was sent already
	// (Respond answers its own refusals) or the peer has gone.
	Answer *proto.Reject
}

// Error is what happened.
func (r *Rejection) Error() string { return r.Err.Error() }

// Unwrap returns what happened.
func (r *Rejection) Unwrap() error { return r.Err }

// Refuse returns a refusal for reason, answered with reason's Reject code
// and the error text.
func Refuse(reason reasons.Reason, format string, args ...any) *Rejection {
	err := fmt.Errorf(format, args...)
	return &Rejection{Reason: reason, Err: err, Answer: &proto.Reject{Code: reason.Code(), Reason: err.Error()}}
}

// refuseIM is Refuse on an IM connection: the Reject has the version of
// the connection's first frame and reason's IM code.
func refuseIM(ver proto.Version, reason reasons.Reason, format string, args ...any) *Rejection {
	rj := Refuse(reason, format, args...)
	rj.Answer.Ver, rj.Answer.Code = ver, reason.IMCode()
	return rj
}

// ReadRejection is the refusal of a peer whose frame could not be read
// before it authenticated: the reason says why (ReadFailureReason); a
// peer that closed gets no answer.
func ReadRejection(what string, err error) *Rejection {
	rj := Refuse(ReadFailureReason(err), "%s: %w", what, err)
	if errors.Is(err, io.EOF) {
		rj.Answer = nil
	}
	return rj
}

// answered is the refusal of a swap Respond has already answered.
func answered(err error) *Rejection {
	return &Rejection{Reason: controlReason(err), Err: err}
}

// controlReason labels an error of a control handshake that is no
// Rejection: a ping check's reason, or handshake for any other failure.
func controlReason(err error) reasons.Reason {
	if r := ping.Reason(err); r != reasons.Other {
		return r
	}
	return reasons.Handshake
}

// RejectionOf makes any error of a control connection's handshake a
// Rejection: a Rejection as it is; another error, labelled by its ping
// check or as handshake, is answered with its reason's code. A peer that
// closed gets no answer.
func RejectionOf(err error) *Rejection {
	var rj *Rejection
	if !errors.As(err, &rj) {
		reason := controlReason(err)
		rj = &Rejection{Reason: reason, Err: err, Answer: &proto.Reject{Code: reason.Code(), Reason: err.Error()}}
	}
	if errors.Is(err, io.EOF) {
		rj.Answer = nil
	}
	return rj
}

// ReadFailureReason labels an error from reading a peer's frame before it
// authenticated: a passed deadline, a truncated, oversized or otherwise
// invalid frame, a peer that closed without sending, or another I/O
// failure.
func ReadFailureReason(err error) reasons.Reason {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return reasons.HandshakeTimeout
	case errors.Is(err, proto.ErrTruncated), errors.Is(err, proto.ErrOversize), errors.Is(err, proto.ErrBadMagic),
		errors.Is(err, proto.ErrUnsupportedVersion), errors.Is(err, proto.ErrUnknownType),
		errors.Is(err, proto.ErrTrailing), errors.Is(err, proto.ErrCountLimit), errors.Is(err, proto.ErrFieldTooLong),
		errors.Is(err, proto.ErrBadValue):
		return reasons.Malformed
	case errors.Is(err, io.EOF):
		return reasons.Closed
	}
	return reasons.Handshake
}

// ErrRejected means the peer answered with a Reject frame.
var ErrRejected = errors.New("rejected by peer")

// RejectError carries the peer's Reject.
type RejectError struct {
	Code   proto.RejectCode
	Reason string
}

// Error names the peer's reason and code.
func (e *RejectError) Error() string {
	return fmt.Sprintf("rejected by peer: %s (code %d)", e.Reason, e.Code)
}

// Unwrap makes errors.Is(err, ErrRejected) hold.
func (e *RejectError) Unwrap() error { return ErrRejected }

// PeerRejected is the error of a Reject the peer sent.
func PeerRejected(rj *proto.Reject) *RejectError {
	return &RejectError{Code: rj.Code, Reason: rj.Reason}
}

// rejectOf decodes a Reject frame into its *RejectError.
func rejectOf(frame []byte) error {
	m, err := proto.Unmarshal(frame)
	if err != nil {
		return fmt.Errorf("malformed reject: %w", err)
	}
	rj, ok := m.(*proto.Reject)
	if !ok {
		return fmt.Errorf("unexpected %s", m.Type())
	}
	return PeerRejected(rj)
}

// isReject reports whether frame is a Reject frame.
func isReject(frame []byte) bool {
	return len(frame) >= proto.HeaderSize && proto.Type(frame[3]) == proto.TypeReject
}

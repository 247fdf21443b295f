package session

import (
	"errors"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// Reasons a session is refused or closed. Callers branch on them with
// errors.Is and use Reason for audit and metric labels. Each error a
// Session returns wraps exactly one of them.
var (
	// ErrAuth: a record failed to authenticate (a flipped bit, a forged or
	// truncated record, a record of another session).
	ErrAuth = errors.New("session record failed to authenticate")
	// ErrReplay: a genuine record arrived out of place: a copy of an earlier
	// record, or one sealed with a later counter than the one due (records
	// in between were dropped).
	ErrReplay = errors.New("session record repeated or out of order")
	// ErrSize: a record header announces more than the size cap.
	ErrSize = errors.New("session record over the size cap")
	// ErrExpired: the keys reached their age or counter limit before a
	// rekey replaced them.
	ErrExpired = errors.New("session keys expired before a rekey completed")
	// ErrProtocol: an authenticated record broke the session protocol (a
	// rekey message out of order, a malformed inner frame): a peer bug.
	ErrProtocol = errors.New("session protocol violation")
	// ErrOffer: a session offer or answer is malformed, or an answer does
	// not match the offer.
	ErrOffer = errors.New("malformed session offer or answer")
	// ErrPolicy: no protection is acceptable to both sides.
	ErrPolicy = errors.New("no session protection acceptable to both sides")
	// ErrDowngrade: an unsealed swap with a peer known to speak sealed
	// sessions.
	ErrDowngrade = errors.New("unsealed session with a peer that speaks sealed sessions")
	// ErrNode: the swap of a control session names another node than the
	// one its handshake proved (Config.ExpectNode).
	ErrNode = errors.New("session swap names another node than the handshake")
)

var labels = []struct {
	err    error
	reason reasons.Reason
}{
	{ErrAuth, reasons.SessionAuth},
	{ErrReplay, reasons.SessionReplay},
	{ErrSize, reasons.SessionSize},
	{ErrExpired, reasons.SessionExpired},
	{ErrProtocol, reasons.SessionProtocol},
	{ErrOffer, reasons.SessionOffer},
	{ErrPolicy, reasons.SessionPolicy},
	{ErrDowngrade, reasons.SessionDowngrade},
	{ErrNode, reasons.NodeMismatch},
}

// Reasons lists every label Reason can return for this package's errors.
func Reasons() []reasons.Reason {
	out := make([]reasons.Reason, len(labels))
	for i, r := range labels {
		out[i] = r.reason
	}
	return out
}

// Reason returns the label of a session error (reasons.SessionAuth, ...),
// or, for an error of the PING checks under the swap, ping.Reason's label.
func Reason(err error) reasons.Reason {
	if l, ok := sessionReason(err); ok {
		return l
	}
	return ping.Reason(err)
}

// sessionReason returns the label of err if it wraps one of this package's
// sentinels.
func sessionReason(err error) (reasons.Reason, bool) {
	for _, r := range labels {
		if errors.Is(err, r.err) {
			return r.reason, true
		}
	}
	return "", false
}

// IsSession reports whether err wraps one of this package's sentinels: a
// refusal of the session layer (as opposed to a PING check's or an I/O
// error).
func IsSession(err error) bool {
	_, ok := sessionReason(err)
	return ok
}

// RejectCode returns the Reject code for a swap-time session refusal
// (docs/PROTOCOL.md section 2.1, from the reasons registry), and false for
// any other error (the caller maps PING errors as before). Code 1, which a
// peer that does not speak sealed sessions answers a SessionPing with, is
// never a session refusal.
func RejectCode(err error) (proto.RejectCode, bool) {
	for _, e := range []error{ErrOffer, ErrPolicy, ErrDowngrade, ErrNode} {
		if errors.Is(err, e) {
			return Reason(err).Code(), true
		}
	}
	return 0, false
}

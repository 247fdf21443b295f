package session

import (
	"errors"

	"github.com/momgate/momgate/ping"
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
)

var reasons = []struct {
	err   error
	label string
}{
	{ErrAuth, "session_auth"},
	{ErrReplay, "session_replay"},
	{ErrSize, "session_size"},
	{ErrExpired, "session_expired"},
	{ErrProtocol, "session_protocol"},
	{ErrOffer, "session_offer"},
	{ErrPolicy, "session_policy"},
	{ErrDowngrade, "session_downgrade"},
}

// Reasons lists every label Reason can return for this package's errors.
func Reasons() []string {
	out := make([]string, len(reasons))
	for i, r := range reasons {
		out[i] = r.label
	}
	return out
}

// Reason returns the label of a session error ("session_auth", ...), or,
// for an error of the PING checks under the swap, ping.Reason's label.
func Reason(err error) string {
	if l, ok := sessionReason(err); ok {
		return l
	}
	return string(ping.Reason(err))
}

// sessionReason returns the label of err if it wraps one of this package's
// sentinels.
func sessionReason(err error) (string, bool) {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label, true
		}
	}
	return "", false
}

// Reject codes of the swap-time refusals (docs/PROTOCOL.md section 2.1).
const (
	CodeMalformed uint16 = 1  // ErrOffer
	CodePolicy    uint16 = 18 // ErrPolicy
	CodeDowngrade uint16 = 19 // ErrDowngrade
)

// RejectCode returns the Reject code for a swap-time session refusal, and
// false for any other error (the caller maps PING errors as before).
func RejectCode(err error) (uint16, bool) {
	switch {
	case errors.Is(err, ErrOffer):
		return CodeMalformed, true
	case errors.Is(err, ErrPolicy):
		return CodePolicy, true
	case errors.Is(err, ErrDowngrade):
		return CodeDowngrade, true
	}
	return 0, false
}

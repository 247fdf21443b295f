package ping

import "errors"

// Rejection reasons, one per check of docs/PROTOCOL.md section 3.2, in the
// order the checks run. Callers branch on them with errors.Is and use Reason
// for log and metric labels.
var (
	ErrMalformed    = errors.New("malformed ping")
	ErrVersion      = errors.New("unsupported ping version")
	ErrUnknownKey   = errors.New("unknown key id (key mismatch)")
	ErrAuth         = errors.New("authentication failed")
	ErrAddrMismatch = errors.New("sender address does not match connection source")
	ErrWrongDest    = errors.New("ping is for another receiver")
	ErrEcho         = errors.New("reply does not echo our random bytes")
	ErrReplay       = errors.New("timestamp already admitted, or below the window under the sender's high-water mark (replay)")
	ErrStale        = errors.New("first contact outside the freshness window")
	// ErrFloor means a first contact (or the first PING of a sender after
	// a recovery) is not above the floor it must exceed: the server's
	// attested floor or the receiver's recovery floor.
	ErrFloor = errors.New("timestamp not above the attested or recovery floor")
	// ErrUnattested means a receiver that lost marks and trusts no clock
	// (freshness 0) has no attestation from the server for a sender it
	// holds no vouched mark for.
	ErrUnattested = errors.New("first contact after a loss of marks needs the server's attestation")
	ErrRevoked    = errors.New("sender revoked")
	// ErrPersist means the guard could not persist a new high-water mark, so
	// it refused to admit rather than reopen replay after a restart.
	ErrPersist = errors.New("high-water mark not persisted")
)

// reasons maps each sentinel to its short label.
var reasons = []struct {
	err   error
	label string
}{
	{ErrMalformed, "malformed"},
	{ErrVersion, "version"},
	{ErrUnknownKey, "key_mismatch"},
	{ErrAuth, "auth"},
	{ErrAddrMismatch, "addr_mismatch"},
	{ErrWrongDest, "wrong_dest"},
	{ErrEcho, "echo"},
	{ErrReplay, "replay"},
	{ErrStale, "stale"},
	{ErrFloor, "floor"},
	{ErrUnattested, "unattested"},
	{ErrRevoked, "revoked"},
	{ErrPersist, "persist"},
}

// Reasons lists every rejection label Reason can return, in check order.
func Reasons() []string {
	out := make([]string, len(reasons))
	for i, r := range reasons {
		out[i] = r.label
	}
	return out
}

// Reason returns the short label of a rejection error ("replay",
// "key_mismatch", ...), or "other" if err is none of this package's reasons.
func Reason(err error) string {
	for _, r := range reasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return "other"
}

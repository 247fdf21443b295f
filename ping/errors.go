package ping

import (
	"errors"

	"github.com/momgate/momgate/reasons"
)

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

// sentinelReasons maps each sentinel to its label in package reasons.
var sentinelReasons = []struct {
	err   error
	label reasons.Reason
}{
	{ErrMalformed, reasons.Malformed},
	{ErrVersion, reasons.Version},
	{ErrUnknownKey, reasons.KeyMismatch},
	{ErrAuth, reasons.Auth},
	{ErrAddrMismatch, reasons.AddrMismatch},
	{ErrWrongDest, reasons.WrongDest},
	{ErrEcho, reasons.Echo},
	{ErrReplay, reasons.Replay},
	{ErrStale, reasons.Stale},
	{ErrFloor, reasons.Floor},
	{ErrUnattested, reasons.Unattested},
	{ErrRevoked, reasons.Revoked},
	{ErrPersist, reasons.Persist},
}

// Reasons lists every rejection label Reason can return, in check order.
func Reasons() []string {
	out := make([]string, len(sentinelReasons))
	for i, r := range sentinelReasons {
		out[i] = string(r.label)
	}
	return out
}

// Reason returns the label of a rejection error (reasons.Replay,
// reasons.KeyMismatch, ...), or reasons.Other if err is none of this
// package's sentinels.
func Reason(err error) reasons.Reason {
	for _, r := range sentinelReasons {
		if errors.Is(err, r.err) {
			return r.label
		}
	}
	return reasons.Other
}

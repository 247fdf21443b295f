package proto

import "fmt"

// RejectCode is the code of a Reject frame (docs/PROTOCOL.md section 2.1).
// Package reasons says which rejection reason is answered with which code.
type RejectCode uint16

// Reject codes.
const (
	RejectMalformed     RejectCode = 1
	RejectVersion       RejectCode = 2
	RejectUnknownKey    RejectCode = 3
	RejectAuth          RejectCode = 4
	RejectAddrMismatch  RejectCode = 5
	RejectWrongDest     RejectCode = 6
	RejectReplay        RejectCode = 7
	RejectStale         RejectCode = 8
	RejectRevoked       RejectCode = 9
	RejectTokenUnknown  RejectCode = 10
	RejectTokenUsed     RejectCode = 11
	RejectTokenExpired  RejectCode = 12
	RejectUnknownNode   RejectCode = 13
	RejectNotAllowed    RejectCode = 14
	RejectInternal      RejectCode = 15
	RejectRateLimited   RejectCode = 16
	RejectLegacyRefused RejectCode = 17
	// Sealed sessions (docs/PROTOCOL.md section 6).
	RejectSessionPolicy    RejectCode = 18
	RejectSessionDowngrade RejectCode = 19
	RejectSessionOffer     RejectCode = 20
)

var rejectCodeNames = [...]string{
	RejectMalformed:        "malformed",
	RejectVersion:          "version",
	RejectUnknownKey:       "unknown key id",
	RejectAuth:             "authentication",
	RejectAddrMismatch:     "address mismatch",
	RejectWrongDest:        "wrong destination",
	RejectReplay:           "replay",
	RejectStale:            "stale",
	RejectRevoked:          "revoked",
	RejectTokenUnknown:     "token unknown",
	RejectTokenUsed:        "token used",
	RejectTokenExpired:     "token expired",
	RejectUnknownNode:      "unknown node",
	RejectNotAllowed:       "not allowed in this mode",
	RejectInternal:         "internal",
	RejectRateLimited:      "rate limited",
	RejectLegacyRefused:    "legacy refused",
	RejectSessionPolicy:    "session policy",
	RejectSessionDowngrade: "session downgrade",
	RejectSessionOffer:     "session offer",
}

// String names the code as docs/PROTOCOL.md section 2.1 does ("replay"),
// or gives its number if it has no name.
func (c RejectCode) String() string {
	if int(c) < len(rejectCodeNames) && rejectCodeNames[c] != "" {
		return rejectCodeNames[c]
	}
	return fmt.Sprintf("code %d", uint16(c))
}

// RejectCodes lists every defined code, in order.
func RejectCodes() []RejectCode {
	out := make([]RejectCode, 0, len(rejectCodeNames))
	for c := range rejectCodeNames {
		if rejectCodeNames[c] != "" {
			out = append(out, RejectCode(c))
		}
	}
	return out
}

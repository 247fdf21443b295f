package swap

import (
	"errors"
	"io"
	"net"
	"os"

	"github.com/momgate/momgate/proto"
)

// Labels of ReadFailureReason.
const (
	// ReasonTimeout: the handshake deadline passed before the peer sent
	// what it had to (a connection that never sends, or a slow drip).
	ReasonTimeout = "handshake_timeout"
	// ReasonMalformed: the bytes that came are not a valid frame.
	ReasonMalformed = "malformed"
	// ReasonClosed: the peer closed before sending a single byte.
	ReasonClosed = "closed"
	// ReasonHandshake: any other failure to read (connection reset...).
	ReasonHandshake = "handshake"
)

// ReadFailureReason labels an error from reading a peer's frame before it
// authenticated, for the audit log and counters: a passed deadline, a
// truncated, oversized or otherwise invalid frame, a peer that closed
// without sending, or another I/O failure.
func ReadFailureReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, proto.ErrTruncated), errors.Is(err, proto.ErrOversize), errors.Is(err, proto.ErrBadMagic),
		errors.Is(err, proto.ErrUnsupportedVersion), errors.Is(err, proto.ErrUnknownType),
		errors.Is(err, proto.ErrTrailing), errors.Is(err, proto.ErrCountLimit), errors.Is(err, proto.ErrFieldTooLong),
		errors.Is(err, proto.ErrBadValue):
		return ReasonMalformed
	case errors.Is(err, io.EOF):
		return ReasonClosed
	}
	return ReasonHandshake
}

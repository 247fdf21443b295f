package swap

import (
	"errors"
	"io"
	"net"
	"os"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// ReadFailureReason labels an error from reading a peer's frame before it
// authenticated, for the audit log and counters: a passed deadline, a
// truncated, oversized or otherwise invalid frame, a peer that closed
// without sending, or another I/O failure.
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

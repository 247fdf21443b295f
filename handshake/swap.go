package handshake

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// The PING swap of docs/PROTOCOL.md section 3.5: the initiator sends Ping
// and checks the PingReply, the responder checks the Ping and answers.
// Control and IM connections both run it. remote and local are the
// connection's peer and own addresses, which the PINGs name.

// frameBufs holds the buffers of the swap's frames, so that a swap
// allocates none: a frame is sealed into one, written and the buffer put
// back, or read into one and verified (the checks copy what they keep).
var frameBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, ping.ExtReplyFrameSize)
	return &b
}}

func getFrameBuf() *[]byte { return frameBufs.Get().(*[]byte) }

func putFrameBuf(b *[]byte) { frameBufs.Put(b) }

// Initiate sends a Ping on rw and verifies the PingReply.
func Initiate(rw io.ReadWriter, remote, local proto.Addr, s *ping.Sealer, v *ping.Verifier, res *ping.Result) error {
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	frame, rnd, err := s.Ping((*buf)[:0], local, remote)
	if err != nil {
		return fmt.Errorf("seal ping: %w", err)
	}
	if _, err := rw.Write(frame); err != nil {
		return fmt.Errorf("send ping: %w", err)
	}
	return ReadReply(rw, v, remote, local, &rnd, res)
}

// ReadReply reads one frame and verifies it as the PingReply to a Ping
// whose random bytes were echo. A Reject frame becomes a *RejectError.
func ReadReply(r io.Reader, v *ping.Verifier, remote, local proto.Addr, echo *[ping.RandomSize]byte, res *ping.Result) error {
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	in, err := proto.ReadFrameLimit(r, (*buf)[:cap(*buf)], PreAuthMaxFrame)
	if err != nil {
		return fmt.Errorf("read ping reply: %w", err)
	}
	if isReject(in) {
		return rejectOf(in)
	}
	return v.VerifyReply(in, remote, local, echo, res)
}

// Respond verifies frame (already read from rw) as a Ping and answers with
// a PingReply, or with a Reject carrying the reason, which it also returns.
func Respond(rw io.ReadWriter, frame []byte, remote, local proto.Addr, s *ping.Sealer, v *ping.Verifier, res *ping.Result) error {
	return respond(rw, frame, remote, local, s, res, func() error { return v.VerifyPing(frame, remote, local, res) }, nil)
}

// RespondAttested is Respond for a responder that has itself
// authenticated node (the server, after Hello or Enroll): a PING naming
// node is judged with att instead of the freshness window
// (docs/PROTOCOL.md section 4.9).
func RespondAttested(rw io.ReadWriter, frame []byte, remote, local proto.Addr, s *ping.Sealer, v *ping.Verifier, node proto.NodeID, att ping.Attestation, res *ping.Result) error {
	return respond(rw, frame, remote, local, s, res, func() error { return v.VerifyPingAttested(frame, remote, local, node, att, res) }, nil)
}

// respond runs verify on frame, then marks' check (when set: the
// no-downgrade ratchet of docs/PROTOCOL.md 6.7) on what it verified, and
// answers with a PingReply, or a Reject with the reason of the first that
// refused. (A concrete check, not a func value: res stays on the caller's
// stack.)
func respond(rw io.ReadWriter, frame []byte, remote, local proto.Addr, s *ping.Sealer, res *ping.Result, verify func() error, marks *session.Marks) error {
	if isReject(frame) {
		return rejectOf(frame)
	}
	if err := verify(); err != nil {
		if errors.Is(err, ping.ErrMalformed) && len(frame) >= proto.HeaderSize {
			// Say what came instead: "IMJoin frame of 40 bytes".
			err = fmt.Errorf("%s frame of %d bytes where a Ping was due: %w", proto.Type(frame[3]), len(frame), err)
		}
		_ = proto.WriteFrame(rw, &proto.Reject{Code: RejectCode(err), Reason: err.Error()})
		return err
	}
	if marks != nil {
		if err := marks.CheckPlain(res.Node, res.Sender); err != nil {
			_ = proto.WriteFrame(rw, &proto.Reject{Code: session.Reason(err).Code(), Reason: err.Error()})
			return err
		}
	}
	buf := getFrameBuf()
	defer putFrameBuf(buf)
	out, err := s.Reply((*buf)[:0], local, remote, res.Random)
	if err != nil {
		_ = proto.WriteFrame(rw, &proto.Reject{Code: proto.RejectInternal, Reason: "cannot seal reply"})
		return fmt.Errorf("seal reply: %w", err)
	}
	if _, err := rw.Write(out); err != nil {
		return fmt.Errorf("send ping reply: %w", err)
	}
	return nil
}

// RejectCode is the Reject code of a ping check's rejection (package reasons).
func RejectCode(err error) proto.RejectCode {
	return ping.Reason(err).Code()
}

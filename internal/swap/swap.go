// Package swap runs the PING swap of docs/PROTOCOL.md section 3.5 over a
// connection: the initiator sends Ping and checks the PingReply, the
// responder checks the Ping and answers. Both the control connection and
// IM connections use it.
package swap

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// ErrRejected means the peer answered with a Reject frame.
var ErrRejected = errors.New("rejected by peer")

// RejectError carries the peer's Reject.
type RejectError struct {
	Code   uint16
	Reason string
}

func (e *RejectError) Error() string {
	return fmt.Sprintf("rejected by peer: %s (code %d)", e.Reason, e.Code)
}

// Unwrap makes errors.Is(err, ErrRejected) hold.
func (e *RejectError) Unwrap() error { return ErrRejected }

// Endpoints returns the remote and local addresses of conn as proto.Addr.
func Endpoints(conn net.Conn) (remote, local proto.Addr, err error) {
	r, err1 := addrOf(conn.RemoteAddr())
	l, err2 := addrOf(conn.LocalAddr())
	if err := errors.Join(err1, err2); err != nil {
		return remote, local, err
	}
	return proto.AddrFrom(r), proto.AddrFrom(l), nil
}

func addrOf(a net.Addr) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %s: %w", a, err)
	}
	return ap.Addr().Unmap(), nil
}

// Initiate sends a Ping on conn and verifies the PingReply. The deadline
// bounds the whole exchange. buf is scratch space (may be nil).
func Initiate(conn net.Conn, s *ping.Sealer, v *ping.Verifier, deadline time.Time, res *ping.Result) error {
	remote, local, err := Endpoints(conn)
	if err != nil {
		return err
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	defer conn.SetDeadline(time.Time{})
	frame, rnd, err := s.Ping(make([]byte, 0, ping.FrameSize), local, remote)
	if err != nil {
		return fmt.Errorf("seal ping: %w", err)
	}
	if _, err := conn.Write(frame); err != nil {
		return fmt.Errorf("send ping: %w", err)
	}
	return ReadReply(conn, v, remote, local, &rnd, res)
}

// ReadReply reads one frame and verifies it as the PingReply to a Ping
// whose random bytes were echo. A Reject frame becomes a *RejectError.
func ReadReply(r io.Reader, v *ping.Verifier, remote, local proto.Addr, echo *[ping.RandomSize]byte, res *ping.Result) error {
	in, err := proto.ReadFrameLimit(r, make([]byte, ping.ReplyFrameSize), PreAuthMaxFrame)
	if err != nil {
		return fmt.Errorf("read ping reply: %w", err)
	}
	if len(in) >= proto.HeaderSize && proto.Type(in[3]) == proto.TypeReject {
		return rejectOf(in)
	}
	return v.VerifyReply(in, remote, local, echo, res)
}

// PreAuthMaxFrame caps frames read before a peer is authenticated.
const PreAuthMaxFrame = 4 << 10

// Respond verifies frame (already read from conn) as a Ping and answers with
// a PingReply, or with a Reject carrying the reason, which it also returns.
func Respond(conn net.Conn, frame []byte, s *ping.Sealer, v *ping.Verifier, res *ping.Result) error {
	remote, local, err := Endpoints(conn)
	if err != nil {
		return err
	}
	if len(frame) >= proto.HeaderSize && proto.Type(frame[3]) == proto.TypeReject {
		return rejectOf(frame)
	}
	if err := v.VerifyPing(frame, remote, local, res); err != nil {
		if errors.Is(err, ping.ErrMalformed) && len(frame) >= proto.HeaderSize {
			// Say what came instead: "IMJoin frame of 40 bytes".
			err = fmt.Errorf("%s frame of %d bytes where a Ping was due: %w", proto.Type(frame[3]), len(frame), err)
		}
		_ = proto.WriteFrame(conn, &proto.Reject{Code: RejectCode(err), Reason: err.Error()})
		return err
	}
	out, err := s.Reply(make([]byte, 0, ping.ReplyFrameSize), local, remote, res.Random)
	if err != nil {
		_ = proto.WriteFrame(conn, &proto.Reject{Code: CodeInternal, Reason: "cannot seal reply"})
		return fmt.Errorf("seal reply: %w", err)
	}
	if _, err := conn.Write(out); err != nil {
		return fmt.Errorf("send ping reply: %w", err)
	}
	return nil
}

func rejectOf(frame []byte) error {
	m, err := proto.Unmarshal(frame)
	if err != nil {
		return fmt.Errorf("malformed reject: %w", err)
	}
	rj, ok := m.(*proto.Reject)
	if !ok {
		return fmt.Errorf("unexpected %s", m.Type())
	}
	return &RejectError{Code: rj.Code, Reason: rj.Reason}
}

// Reject codes of docs/PROTOCOL.md section 2.1.
const (
	CodeMalformed     uint16 = 1
	CodeVersion       uint16 = 2
	CodeUnknownKey    uint16 = 3
	CodeAuth          uint16 = 4
	CodeAddrMismatch  uint16 = 5
	CodeWrongDest     uint16 = 6
	CodeReplay        uint16 = 7
	CodeStale         uint16 = 8
	CodeRevoked       uint16 = 9
	CodeTokenUnknown  uint16 = 10
	CodeTokenUsed     uint16 = 11
	CodeTokenExpired  uint16 = 12
	CodeUnknownNode   uint16 = 13
	CodeNotAllowed    uint16 = 14
	CodeInternal      uint16 = 15
	CodeRateLimited   uint16 = 16
	CodeLegacyRefused uint16 = 17
)

// RejectCode maps a ping rejection to its Reject code.
func RejectCode(err error) uint16 {
	switch {
	case errors.Is(err, ping.ErrMalformed), errors.Is(err, ping.ErrEcho):
		return CodeMalformed
	case errors.Is(err, ping.ErrVersion):
		return CodeVersion
	case errors.Is(err, ping.ErrUnknownKey):
		return CodeUnknownKey
	case errors.Is(err, ping.ErrAuth):
		return CodeAuth
	case errors.Is(err, ping.ErrAddrMismatch):
		return CodeAddrMismatch
	case errors.Is(err, ping.ErrWrongDest):
		return CodeWrongDest
	case errors.Is(err, ping.ErrReplay):
		return CodeReplay
	case errors.Is(err, ping.ErrStale), errors.Is(err, ping.ErrFloor), errors.Is(err, ping.ErrUnattested):
		return CodeStale
	case errors.Is(err, ping.ErrRevoked):
		return CodeRevoked
	}
	return CodeInternal
}

// RemoteAddrPort returns the peer address of conn (zero if not IP).
func RemoteAddrPort(c net.Conn) netip.AddrPort {
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

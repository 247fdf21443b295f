package pbsauth

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/momgate/momgate/reasons"
)

// Op is a request of the local protocol (docs/OPENPBS.md section 4).
type Op uint8

// Ops, one per handshake call of the plugin.
const (
	OpInitiate Op = 1 // initiator, first call: make step 1
	OpContinue Op = 2 // initiator, second call: check step 2, make step 3
	OpAccept   Op = 3 // responder, first call: check step 1, make step 2
	OpConfirm  Op = 4 // responder, second call: check step 3, say who the peer is
	// OpCheck asks whether an open connection's peer is still admitted
	// (docs/PROTOCOL.md section 7): pbs_comm's periodic check.
	OpCheck Op = 5
)

func (o Op) String() string {
	switch o {
	case OpInitiate:
		return "initiate"
	case OpContinue:
		return "continue"
	case OpAccept:
		return "accept"
	case OpConfirm:
		return "confirm"
	case OpCheck:
		return "check"
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Response statuses.
const (
	StatusOK      = 0
	StatusRefused = 1
)

// Local frame layout and limits.
const (
	localMagic0  = 0x4D // "M"
	localMagic1  = 0x4C // "L"
	localVersion = 1
	// LocalHeaderSize is the length of a local frame's header.
	LocalHeaderSize = 8
	// MaxLocalBody bounds a local frame's body.
	MaxLocalBody = 8192
	// MaxHostLen bounds the peer host a plugin passes.
	MaxHostLen = 255
	// MaxReasonLen and MaxMessageLen bound a refusal's texts.
	MaxReasonLen  = 32
	MaxMessageLen = 1024
)

// Verdict is the answer to a Check (docs/PROTOCOL.md section 7).
type Verdict uint8

// Verdicts.
const (
	// VerdictValid: the node is admitted at that address now.
	VerdictValid Verdict = 0
	// VerdictRevoked: it is not; Reason and Message say why.
	VerdictRevoked Verdict = 1
	// VerdictUnchanged: nothing the answer depends on changed since the
	// generation the caller gave, so nothing was looked up: the caller's
	// earlier answers for that generation stand.
	VerdictUnchanged Verdict = 2
)

func (v Verdict) String() string {
	switch v {
	case VerdictValid:
		return "valid"
	case VerdictRevoked:
		return "revoked"
	case VerdictUnchanged:
		return "unchanged"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// HandshakeID names one handshake in progress at a daemon.
type HandshakeID [16]byte

// Request is one request of the plugin.
type Request struct {
	Op    Op
	Kind  Kind        // Initiate, Accept
	Host  string      // Initiate, Accept: the peer host as PBS passed it
	ID    HandshakeID // Continue, Confirm
	Token []byte      // Continue, Accept, Confirm
	// Gen (Check): the generation of the caller's last answer, 0 if none.
	Gen uint64
	// Node (Check): the connection's node name, as Confirm named it; Host
	// is then the connection's peer address, as text.
	Node string
	// Encrypt (Initiate): PBS will encrypt this connection with the
	// plugin, so the handshake derives its keys (docs/OPENPBS.md 6).
	Encrypt bool
}

// encryptFlag is the optional last byte of an Initiate that asks for
// encryption (the value of session.Encrypt).
const encryptFlag = 2

// PeerUser is what a responder learns in Confirm: the initiator's user as
// its daemon vouched, and its node's name.
type PeerUser struct {
	UID, GID uint32
	User     string
	Group    string
	NodeName string
}

// Response is the daemon's answer to one Request.
type Response struct {
	Status   uint8
	ID       HandshakeID // Initiate, Accept
	Token    []byte      // Initiate, Continue, Accept
	PeerName string      // Continue: the responder's node name
	Peer     PeerUser    // Confirm
	Keys     *ConnKeys   // Continue, Confirm of an encrypted handshake
	Gen      uint64      // Check: the daemon's generation now
	Verdict  Verdict     // Check
	Reason   string      // refused, or a Check's revoked verdict: a Reason label
	Message  string      // refused, or revoked: what and why, for PBS's log
}

func appendLocalHeader(b []byte, code uint8, n int) []byte {
	b = append(b, localMagic0, localMagic1, localVersion, code)
	return binary.BigEndian.AppendUint32(b, uint32(n))
}

// parseLocalHeader checks a local frame header and returns its op or
// status byte and body length.
func parseLocalHeader(h []byte) (uint8, int, error) {
	if len(h) != LocalHeaderSize {
		return 0, 0, fmt.Errorf("%w: local header of %d bytes", ErrMalformed, len(h))
	}
	if h[0] != localMagic0 || h[1] != localMagic1 {
		return 0, 0, fmt.Errorf("%w: not a momgate local frame (magic %#x %#x)", ErrMalformed, h[0], h[1])
	}
	if h[2] != localVersion {
		return 0, 0, fmt.Errorf("%w: local protocol version %d, want %d", ErrMalformed, h[2], localVersion)
	}
	n := binary.BigEndian.Uint32(h[4:8])
	if n > MaxLocalBody {
		return 0, 0, fmt.Errorf("%w: local body of %d bytes, the limit is %d", ErrMalformed, n, MaxLocalBody)
	}
	return h[3], int(n), nil
}

// readLocal reads one local frame; the body limit is checked before the
// body is read.
func readLocal(r io.Reader) (uint8, []byte, error) {
	var h [LocalHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, fmt.Errorf("read local header: %w", err)
	}
	code, n, err := parseLocalHeader(h[:])
	if err != nil {
		return 0, nil, err
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, fmt.Errorf("read local body: %w", err)
	}
	return code, body, nil
}

// ReadRequest reads and decodes one request.
func ReadRequest(r io.Reader) (Request, error) {
	code, body, err := readLocal(r)
	if err != nil {
		return Request{}, err
	}
	return ParseRequest(Op(code), body)
}

// ParseRequest decodes the body of a request with op.
func ParseRequest(op Op, body []byte) (Request, error) {
	q := Request{Op: op}
	r := reader{b: body}
	switch op {
	case OpInitiate, OpAccept:
		q.Kind = Kind(r.u8("kind"))
		q.Host = r.str(MaxHostLen, "peer host")
		if op == OpAccept {
			q.Token = r.bytes16(MaxTokenSize, "token")
		} else if r.err == nil && len(r.b) > 0 {
			if f := r.u8("encryption"); r.err == nil && f != encryptFlag {
				r.fail("encryption", "%d: want %d (encrypt) or nothing", f, encryptFlag)
			}
			q.Encrypt = true
		}
		if r.err == nil && !q.Kind.valid() {
			r.fail("kind", "%d: want 0 (user) or 1 (service)", q.Kind)
		}
		if r.err == nil && q.Host == "" {
			r.fail("peer host", "empty")
		}
	case OpContinue, OpConfirm:
		r.fixed(q.ID[:], "handshake id")
		q.Token = r.bytes16(MaxTokenSize, "token")
	case OpCheck:
		q.Gen = r.u64("generation")
		q.Node = r.str(MaxNodeNameLen, "node")
		q.Host = r.str(MaxHostLen, "peer address")
		if r.err == nil && (q.Node == "" || q.Host == "") {
			r.fail("check", "empty node or peer address")
		}
	default:
		return q, fmt.Errorf("%w: unknown op %d", ErrMalformed, uint8(op))
	}
	if err := r.end(); err != nil {
		return q, fmt.Errorf("%s request: %w", op, err)
	}
	return q, nil
}

// AppendRequest appends q as a local frame.
func AppendRequest(b []byte, q *Request) ([]byte, error) {
	var body []byte
	switch q.Op {
	case OpInitiate, OpAccept:
		if err := checkStr("peer host", q.Host, MaxHostLen); err != nil {
			return b, err
		}
		body = append(body, byte(q.Kind))
		body = appendStr(body, q.Host)
		if q.Op == OpAccept {
			body = appendBytes16(body, q.Token)
		} else if q.Encrypt {
			body = append(body, encryptFlag)
		}
	case OpContinue, OpConfirm:
		body = append(body, q.ID[:]...)
		body = appendBytes16(body, q.Token)
	case OpCheck:
		if err := checkStr("node", q.Node, MaxNodeNameLen); err != nil {
			return b, err
		}
		if err := checkStr("peer address", q.Host, MaxHostLen); err != nil {
			return b, err
		}
		if q.Node == "" || q.Host == "" {
			return b, errors.New("check: empty node or peer address")
		}
		body = binary.BigEndian.AppendUint64(body, q.Gen)
		body = appendStr(body, q.Node)
		body = appendStr(body, q.Host)
	default:
		return b, fmt.Errorf("unknown op %d", uint8(q.Op))
	}
	if len(q.Token) > MaxTokenSize {
		return b, fmt.Errorf("token of %d bytes, the limit is %d", len(q.Token), MaxTokenSize)
	}
	return append(appendLocalHeader(b, uint8(q.Op), len(body)), body...), nil
}

// AppendResponse appends the answer to a request with op as a local frame.
// Texts too long for their fields are cut (at a byte boundary that keeps
// them UTF-8).
func AppendResponse(b []byte, op Op, s *Response) []byte {
	var body []byte
	if s.Status != StatusOK {
		body = appendStr(body, cut(s.Reason, MaxReasonLen))
		body = appendStr(body, cut(s.Message, MaxMessageLen))
		return append(appendLocalHeader(b, StatusRefused, len(body)), body...)
	}
	switch op {
	case OpInitiate, OpAccept:
		body = append(body, s.ID[:]...)
		body = appendBytes16(body, s.Token)
	case OpContinue:
		body = appendBytes16(body, s.Token)
		body = appendStr(body, cut(s.PeerName, MaxNodeNameLen))
	case OpConfirm:
		body = binary.BigEndian.AppendUint32(body, s.Peer.UID)
		body = binary.BigEndian.AppendUint32(body, s.Peer.GID)
		body = appendStr(body, cut(s.Peer.User, MaxUserLen))
		body = appendStr(body, cut(s.Peer.Group, MaxGroupLen))
		body = appendStr(body, cut(s.Peer.NodeName, MaxNodeNameLen))
	case OpCheck:
		body = binary.BigEndian.AppendUint64(body, s.Gen)
		body = append(body, byte(s.Verdict))
		if s.Verdict == VerdictRevoked {
			reason := cut(s.Reason, MaxReasonLen)
			if reason == "" {
				reason = string(reasons.Revoked)
			}
			body = appendStr(body, reason)
			body = appendStr(body, cut(s.Message, MaxMessageLen))
		} else {
			body = appendStr(body, "")
			body = appendStr(body, "")
		}
	}
	if (op == OpContinue || op == OpConfirm) && s.Keys != nil {
		body = append(body, s.Keys.Send[:]...)
		body = append(body, s.Keys.Recv[:]...)
	}
	return append(appendLocalHeader(b, StatusOK, len(body)), body...)
}

// ReadResponse reads and decodes the answer to a request with op.
func ReadResponse(r io.Reader, op Op) (Response, error) {
	code, body, err := readLocal(r)
	if err != nil {
		return Response{}, err
	}
	return ParseResponse(op, code, body)
}

// ParseResponse decodes a response body with status code to a request
// with op.
func ParseResponse(op Op, code uint8, body []byte) (Response, error) {
	s := Response{Status: code}
	r := reader{b: body}
	switch {
	case code == StatusRefused:
		s.Reason = r.str(MaxReasonLen, "reason")
		s.Message = r.str(MaxMessageLen, "message")
	case code != StatusOK:
		return s, fmt.Errorf("%w: status %d", ErrMalformed, code)
	case op == OpInitiate || op == OpAccept:
		r.fixed(s.ID[:], "handshake id")
		s.Token = r.bytes16(MaxTokenSize, "token")
	case op == OpContinue:
		s.Token = r.bytes16(MaxTokenSize, "token")
		s.PeerName = r.str(MaxNodeNameLen, "peer name")
	case op == OpConfirm:
		s.Peer.UID = r.u32("uid")
		s.Peer.GID = r.u32("gid")
		s.Peer.User = r.str(MaxUserLen, "user")
		s.Peer.Group = r.str(MaxGroupLen, "group")
		s.Peer.NodeName = r.str(MaxNodeNameLen, "node name")
	case op == OpCheck:
		s.Gen = r.u64("generation")
		s.Verdict = Verdict(r.u8("verdict"))
		s.Reason = r.str(MaxReasonLen, "reason")
		s.Message = r.str(MaxMessageLen, "message")
		switch {
		case r.err != nil:
		case s.Verdict > VerdictUnchanged:
			r.fail("verdict", "%d: want 0, 1 or 2", s.Verdict)
		case (s.Verdict == VerdictRevoked) != (s.Reason != ""):
			r.fail("reason", "a revoked verdict and only it has a reason")
		case s.Verdict != VerdictRevoked && s.Message != "":
			r.fail("message", "only a revoked verdict has a message")
		}
	default:
		return s, fmt.Errorf("%w: unknown op %d", ErrMalformed, uint8(op))
	}
	if code == StatusOK && (op == OpContinue || op == OpConfirm) && r.err == nil && len(r.b) > 0 {
		var k ConnKeys
		r.fixed(k.Send[:], "send key")
		r.fixed(k.Recv[:], "receive key")
		s.Keys = &k
	}
	if err := r.end(); err != nil {
		return s, fmt.Errorf("%s response: %w", op, err)
	}
	return s, nil
}

// cut makes s fit a str field of at most n bytes: valid UTF-8, no NUL
// bytes, shortened without splitting a UTF-8 sequence.
func cut(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		i := n
		for i > 0 && s[i]&0xC0 == 0x80 {
			i--
		}
		s = s[:i]
	}
	return strings.ReplaceAll(s, "\x00", " ")
}

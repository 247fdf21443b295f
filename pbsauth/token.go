package pbsauth

import (
	"crypto/cipher"
	"encoding/binary"
	"fmt"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// Handshake steps (docs/OPENPBS.md section 2): the token's fourth byte.
const (
	StepPing  = 1 // initiator: a Ping frame
	StepReply = 2 // responder: a PingReply frame echoing step 1
	StepVouch = 3 // initiator: the Vouch echoing step 2
)

// Token layout.
const (
	tokenMagic0     = 0x4D // "M"
	tokenMagic1     = 0x50 // "P"
	tokenVersion    = 1
	tokenHeaderSize = 4
	vouchADSize     = tokenHeaderSize + 4 // header and key id
	// MaxTokenSize bounds every token (a Vouch with the longest names).
	MaxTokenSize = vouchADSize + ping.NonceSize + vouchFixed + 3*2 + MaxUserLen + MaxGroupLen + MaxNodeNameLen + ping.TagSize
)

// Field limits of the Vouch.
const (
	MaxUserLen     = 255
	MaxGroupLen    = 255
	MaxNodeNameLen = 64
	vouchFixed     = ping.RandomSize + 16 + 1 + 4 + 4 // echo, node id, kind, uid, gid
)

// Kind is the kind of PBS connection a handshake is for.
type Kind uint8

// Kinds, as PBS's AUTH_USER_CONN and AUTH_SERVICE_CONN.
const (
	KindUser    Kind = 0 // a command (qsub, qstat...) to pbs_server
	KindService Kind = 1 // a daemon to pbs_comm (TPP)
)

func (k Kind) String() string {
	switch k {
	case KindUser:
		return "user"
	case KindService:
		return "service"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k == KindUser || k == KindService }

// Vouch is what the initiator's daemon seals in step 3: who the local
// caller is (from SO_PEERCRED) and on which node, bound to this handshake
// by the echo of the responder's random bytes.
type Vouch struct {
	Echo     [ping.RandomSize]byte // random bytes of the step 2 PingReply
	Node     proto.NodeID          // initiator's node id
	Kind     Kind
	UID      uint32
	GID      uint32
	User     string // n <= MaxUserLen
	Group    string // n <= MaxGroupLen
	NodeName string // initiator's node name, n <= MaxNodeNameLen
}

func (v *Vouch) check() error {
	if !v.Kind.valid() {
		return fmt.Errorf("vouch kind %d: want 0 (user) or 1 (service)", v.Kind)
	}
	if v.User == "" {
		return fmt.Errorf("vouch user: empty")
	}
	if err := checkStr("vouch user", v.User, MaxUserLen); err != nil {
		return err
	}
	if err := checkStr("vouch group", v.Group, MaxGroupLen); err != nil {
		return err
	}
	return checkStr("vouch node name", v.NodeName, MaxNodeNameLen)
}

func tokenHeader(b []byte, step byte) []byte {
	return append(b, tokenMagic0, tokenMagic1, tokenVersion, step)
}

// WrapFrame makes the step 1 or step 2 token of a Ping or PingReply frame.
func WrapFrame(step byte, frame []byte) []byte {
	return append(tokenHeader(make([]byte, 0, tokenHeaderSize+len(frame)), step), frame...)
}

// Step returns the step of a token after checking its header.
func Step(token []byte) (byte, error) {
	if len(token) < tokenHeaderSize {
		return 0, fmt.Errorf("%w: token of %d bytes", ErrMalformed, len(token))
	}
	if token[0] != tokenMagic0 || token[1] != tokenMagic1 {
		return 0, fmt.Errorf("%w: not a momgate token (magic %#x %#x)", ErrMalformed, token[0], token[1])
	}
	if token[2] != tokenVersion {
		return 0, fmt.Errorf("%w: token version %d, want %d", ping.ErrVersion, token[2], tokenVersion)
	}
	if token[3] < StepPing || token[3] > StepVouch {
		return 0, fmt.Errorf("%w: step %d", ErrMalformed, token[3])
	}
	return token[3], nil
}

// UnwrapFrame returns a copy of the frame inside a step 1 or step 2 token
// (ping.Open decrypts in place; the token stays intact), and whether it is
// the session form (SessionPing, SessionReply: an encrypted connection) or
// the plain one (Ping, PingReply). The frame's type is checked when it is
// opened; here only its length.
func UnwrapFrame(step byte, token []byte) ([]byte, bool, error) {
	got, err := Step(token)
	if err != nil {
		return nil, false, err
	}
	if got != step {
		return nil, false, fmt.Errorf("%w: step %d token where step %d was due", ErrMalformed, got, step)
	}
	plain, sealed := ping.FrameSize, ping.ExtFrameSize
	if step == StepReply {
		plain, sealed = ping.ReplyFrameSize, ping.ExtReplyFrameSize
	}
	n := len(token) - tokenHeaderSize
	if n != plain && n != sealed {
		return nil, false, fmt.Errorf("%w: step %d token of %d bytes, want %d (plain) or %d (encrypted)", ErrMalformed, step,
			len(token), tokenHeaderSize+plain, tokenHeaderSize+sealed)
	}
	return append([]byte(nil), token[tokenHeaderSize:]...), n == sealed, nil
}

func encodeVouch(b []byte, v *Vouch) []byte {
	b = append(b, v.Echo[:]...)
	b = append(b, v.Node[:]...)
	b = append(b, byte(v.Kind))
	b = binary.BigEndian.AppendUint32(b, v.UID)
	b = binary.BigEndian.AppendUint32(b, v.GID)
	b = appendStr(b, v.User)
	b = appendStr(b, v.Group)
	return appendStr(b, v.NodeName)
}

func decodeVouch(plain []byte) (Vouch, error) {
	var v Vouch
	r := reader{b: plain}
	r.fixed(v.Echo[:], "echo")
	r.fixed(v.Node[:], "node id")
	v.Kind = Kind(r.u8("kind"))
	v.UID = r.u32("uid")
	v.GID = r.u32("gid")
	v.User = r.str(MaxUserLen, "user")
	v.Group = r.str(MaxGroupLen, "group")
	v.NodeName = r.str(MaxNodeNameLen, "node name")
	if err := r.end(); err != nil {
		return v, err
	}
	if err := v.check(); err != nil {
		return v, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return v, nil
}

// SealVouch makes the step 3 token: v sealed under the cluster key keyID
// (aead) with nonce. Deterministic given its arguments.
func SealVouch(v *Vouch, keyID uint32, aead cipher.AEAD, nonce *[ping.NonceSize]byte) ([]byte, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	plain := encodeVouch(make([]byte, 0, vouchFixed+6+len(v.User)+len(v.Group)+len(v.NodeName)), v)
	out := tokenHeader(make([]byte, 0, vouchADSize+ping.NonceSize+len(plain)+ping.TagSize), StepVouch)
	out = binary.BigEndian.AppendUint32(out, keyID)
	ad := out[:vouchADSize:vouchADSize]
	out = append(out, nonce[:]...)
	out = aead.Seal(out, nonce[:], plain, ad)
	clear(plain)
	return out, nil
}

// OpenVouch checks a step 3 token's layout, opens it under the key it
// names (ping.ErrUnknownKey, ping.ErrAuth) and decodes the Vouch.
func OpenVouch(token []byte, keys ping.KeySource) (Vouch, uint32, error) {
	step, err := Step(token)
	if err != nil {
		return Vouch{}, 0, err
	}
	if step != StepVouch {
		return Vouch{}, 0, fmt.Errorf("%w: step %d token where step 3 was due", ErrMalformed, step)
	}
	if len(token) < vouchADSize+ping.NonceSize+vouchFixed+6+ping.TagSize || len(token) > MaxTokenSize {
		return Vouch{}, 0, fmt.Errorf("%w: vouch of %d bytes", ErrMalformed, len(token))
	}
	keyID := binary.BigEndian.Uint32(token[tokenHeaderSize:vouchADSize])
	aead := keys.Open(keyID)
	if aead == nil {
		return Vouch{}, keyID, ping.ErrUnknownKey
	}
	nonce := token[vouchADSize : vouchADSize+ping.NonceSize]
	sealed := token[vouchADSize+ping.NonceSize:]
	plain, err := aead.Open(nil, nonce, sealed, token[:vouchADSize])
	if err != nil {
		return Vouch{}, keyID, ping.ErrAuth
	}
	v, err := decodeVouch(plain)
	clear(plain)
	return v, keyID, err
}

package session

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/hkdf"
)

// HKDF labels of the key schedule (section 6.3).
const (
	labelSecret = "momgate session v1 secret"
	labelRekey  = "momgate session v1 rekey"
	labelI2R    = "momgate session v1 i2r"
	labelR2I    = "momgate session v1 r2i"
)

// KeySize is the size of session secrets and record keys.
const KeySize = 32

// InitialSecret is S0 of section 6.3: HKDF-SHA256 with the transcript hash
// as salt over the two shares, then (when present) the ephemeral DH output
// and the static identity DH output.
func InitialSecret(th *[32]byte, initShare, respShare *[32]byte, ee, ss *[KeySize]byte) [KeySize]byte {
	ikm := make([]byte, 0, 4*KeySize)
	ikm = append(ikm, initShare[:]...)
	ikm = append(ikm, respShare[:]...)
	if ee != nil {
		ikm = append(ikm, ee[:]...)
	}
	if ss != nil {
		ikm = append(ikm, ss[:]...)
	}
	prk := hkdf.Extract(sha256.New, ikm, th[:])
	out := expand(prk, []byte(labelSecret))
	clear(ikm)
	clear(prk)
	return out
}

// NextSecret is S(g) from S(g-1) (section 6.6): HKDF-SHA256 with the
// previous secret as salt over the rekey's DH output (empty under Auth),
// the info naming the generation and both ephemeral public keys.
func NextSecret(prev *[KeySize]byte, gen uint64, initEph, respEph *[32]byte, dh *[KeySize]byte) [KeySize]byte {
	var ikm []byte
	if dh != nil {
		ikm = dh[:]
	}
	info := make([]byte, 0, len(labelRekey)+8+64)
	info = append(info, labelRekey...)
	info = binary.BigEndian.AppendUint64(info, gen)
	info = append(info, initEph[:]...)
	info = append(info, respEph[:]...)
	prk := hkdf.Extract(sha256.New, ikm, prev[:])
	out := expand(prk, info)
	clear(prk)
	return out
}

// DirectionKeys derives the record keys of one generation from its secret:
// initiator to responder, and responder to initiator.
func DirectionKeys(s *[KeySize]byte) (i2r, r2i [KeySize]byte) {
	return expand(s[:], []byte(labelI2R)), expand(s[:], []byte(labelR2I))
}

func expand(prk, info []byte) [KeySize]byte {
	var out [KeySize]byte
	if _, err := io.ReadFull(hkdf.Expand(sha256.New, prk, info), out[:]); err != nil {
		panic("hkdf expand of 32 bytes failed: " + err.Error()) // cannot happen: 32 <= 255*32
	}
	return out
}

// ephemeral is an X25519 key pair used for one exchange.
type ephemeral struct {
	priv, pub [32]byte
}

// newEphemeral draws a private key from rnd.
func newEphemeral(rnd io.Reader) (ephemeral, error) {
	var e ephemeral
	if _, err := io.ReadFull(rnd, e.priv[:]); err != nil {
		return e, fmt.Errorf("ephemeral key: %w", err)
	}
	pub, err := curve25519.X25519(e.priv[:], curve25519.Basepoint)
	if err != nil {
		return e, fmt.Errorf("ephemeral key: %w", err)
	}
	copy(e.pub[:], pub)
	return e, nil
}

// shared is X25519(priv, peer); a low-order peer key is an error.
func shared(priv, peer *[32]byte) ([KeySize]byte, error) {
	var out [KeySize]byte
	s, err := curve25519.X25519(priv[:], peer[:])
	if err != nil {
		return out, fmt.Errorf("x25519 with the peer's key: %v", err)
	}
	copy(out[:], s)
	clear(s)
	return out, nil
}

func (e *ephemeral) zero() { clear(e.priv[:]) }

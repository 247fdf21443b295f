package proto

import "encoding/binary"

// Sealed lengths of the session PING frames (docs/PROTOCOL.md section 6.2):
// the Ping and PingReply plaintexts, a 68-byte session extension, the tag.
const (
	SessionExtLen         = 68
	SessionPingSealedLen  = PingSealedLen + SessionExtLen
	SessionReplySealedLen = ReplySealedLen + SessionExtLen
)

// SessionPing is a Ping that also offers a sealed session; package ping
// opens it and package session reads the offer.
type SessionPing struct {
	v2
	KeyID  uint32
	Nonce  [24]byte
	Sealed [SessionPingSealedLen]byte
}

// Type returns TypeSessionPing.
func (*SessionPing) Type() Type { return TypeSessionPing }

// AppendBody encodes the body.
func (m *SessionPing) AppendBody(b []byte) []byte {
	return appendSealedPing(b, m.KeyID, &m.Nonce, m.Sealed[:])
}

func (m *SessionPing) decode(r *reader) { decodeSealedPing(r, &m.KeyID, &m.Nonce, m.Sealed[:]) }

// SessionReply is a PingReply that also answers a session offer.
type SessionReply struct {
	v2
	KeyID  uint32
	Nonce  [24]byte
	Sealed [SessionReplySealedLen]byte
}

// Type returns TypeSessionReply.
func (*SessionReply) Type() Type { return TypeSessionReply }

// AppendBody encodes the body.
func (m *SessionReply) AppendBody(b []byte) []byte {
	return appendSealedPing(b, m.KeyID, &m.Nonce, m.Sealed[:])
}

func (m *SessionReply) decode(r *reader) { decodeSealedPing(r, &m.KeyID, &m.Nonce, m.Sealed[:]) }

// appendSealedPing encodes the body shared by the session PING frames:
// key id, nonce, sealed payload.
func appendSealedPing(b []byte, keyID uint32, nonce *[24]byte, sealed []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, keyID)
	b = append(b, nonce[:]...)
	return append(b, sealed...)
}

func decodeSealedPing(r *reader, keyID *uint32, nonce *[24]byte, sealed []byte) {
	*keyID = r.u32("key id")
	r.fixed(nonce[:], "nonce")
	r.fixed(sealed, "sealed")
}

package ping

import (
	"crypto/cipher"

	"github.com/momgate/momgate/proto"
)

// ExtSize is the size of the session extension that ends the plaintext of
// a SessionPing or SessionReply (docs/PROTOCOL.md section 6.2). This
// package seals, opens and checks those frames like Ping and PingReply and
// treats the extension as opaque bytes; package session gives them meaning.
const ExtSize = 68

// Sizes of the session PING frames.
const (
	// ExtFrameSize is the length of a whole SessionPing frame.
	ExtFrameSize = FrameSize + ExtSize
	// ExtReplyFrameSize is the length of a whole SessionReply frame.
	ExtReplyFrameSize = ReplyFrameSize + ExtSize
)

// SealPayloadExt appends a sealed SessionPing (reply false) or SessionReply
// (reply true) whose plaintext is p's fields then ext. Like SealPayload it
// is deterministic, for the test vectors.
func SealPayloadExt(dst []byte, reply bool, keyID uint32, aead cipher.AEAD, nonce *[NonceSize]byte, p *Payload, ext *[ExtSize]byte) []byte {
	sc := scratchPool.Get().(*sealScratch)
	defer scratchPool.Put(sc)
	return sealPayload(dst, reply, keyID, aead, nonce, p, ext, sc)
}

// OpenExt is Open for a SessionPing or SessionReply: checks 1 to 4, the
// payload into p and the extension into ext. A Ping or PingReply is
// ErrMalformed here, as a session frame is for Open.
func OpenExt(frame []byte, keys KeySource, p *Payload, ext *[ExtSize]byte) (keyID uint32, reply bool, err error) {
	return openFrame(frame, keys, p, ext)
}

// PingExt appends a SessionPing from src to dest carrying ext. sent gets
// what was sealed (its random bytes are what the reply must echo; the
// session transcript needs the rest).
func (s *Sealer) PingExt(dst []byte, src, dest proto.Addr, ext *[ExtSize]byte, sent *Result) ([]byte, error) {
	*sent = Result{Payload: Payload{Sender: src, Dest: dest}}
	return s.sealExt(dst, sent, ext)
}

// ReplyExt appends a SessionReply from src to dest echoing the initiator's
// random bytes and carrying ext; sent gets what was sealed.
func (s *Sealer) ReplyExt(dst []byte, src, dest proto.Addr, echo [RandomSize]byte, ext *[ExtSize]byte, sent *Result) ([]byte, error) {
	*sent = Result{Payload: Payload{Sender: src, Dest: dest, Echo: echo}, Reply: true}
	return s.sealExt(dst, sent, ext)
}

func (s *Sealer) sealExt(dst []byte, sent *Result, ext *[ExtSize]byte) ([]byte, error) {
	out, err := s.seal(dst, sent.Reply, &sent.Payload, ext)
	if err == nil {
		sent.KeyID, _ = KeyIDOf(out[len(dst):])
	}
	return out, err
}

// VerifyPingExt runs every check of section 3.2 on a SessionPing, as
// VerifyPing does on a Ping, and copies its extension to ext.
func (v *Verifier) VerifyPingExt(frame []byte, source, local proto.Addr, res *Result, ext *[ExtSize]byte) error {
	return v.verify(frame, source, local, nil, res, ext)
}

// VerifyPingExtAttested is VerifyPingAttested for a SessionPing: the
// caller's own attestation of node (the server's, after the node's Hello
// or Enroll on the same connection) is used for a SessionPing naming node.
func (v *Verifier) VerifyPingExtAttested(frame []byte, source, local proto.Addr, node proto.NodeID, att Attestation, res *Result, ext *[ExtSize]byte) error {
	return v.verifyWith(frame, source, local, nil, ext, &attested{node: node, att: att}, res)
}

// VerifyReplyExt runs every check on a SessionReply to a SessionPing whose
// random bytes were echo, and copies its extension to ext.
func (v *Verifier) VerifyReplyExt(frame []byte, source, local proto.Addr, echo *[RandomSize]byte, res *Result, ext *[ExtSize]byte) error {
	return v.verify(frame, source, local, echo, res, ext)
}

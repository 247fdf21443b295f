package ping

import (
	"crypto/subtle"
	"time"

	"github.com/momgate/momgate/proto"
)

// Revoker tells whether a sender has been denied (deleted from the cluster).
type Revoker interface {
	// RevokedUnder reports whether a PING from node at addr sealed under
	// key keyID must be refused.
	RevokedUnder(node proto.NodeID, addr proto.Addr, keyID uint32) bool
}

// Result is what a verified PING says.
type Result struct {
	Payload
	KeyID uint32 // key the PING was sealed with
	Reply bool   // PingReply rather than Ping
}

// Verifier runs every check of docs/PROTOCOL.md section 3.2 on received
// PINGs. Its fields are set once before use; it is safe for concurrent use.
type Verifier struct {
	Keys    KeySource
	Guard   *Guard
	Revoker Revoker          // nil: nobody is revoked
	Now     func() time.Time // receiver's wall clock, for first contact
}

// VerifyPing checks a Ping that arrived on a connection from source to
// local and, if it passes, advances the sender's mark. frame is decrypted in
// place (see Open). It does not allocate.
func (v *Verifier) VerifyPing(frame []byte, source, local proto.Addr, res *Result) error {
	return v.verify(frame, source, local, nil, res, nil)
}

// VerifyReply checks a PingReply to a Ping whose random bytes were echo.
func (v *Verifier) VerifyReply(frame []byte, source, local proto.Addr, echo *[RandomSize]byte, res *Result) error {
	return v.verify(frame, source, local, echo, res, nil)
}

func (v *Verifier) verify(frame []byte, source, local proto.Addr, echo *[RandomSize]byte, res *Result, ext *[ExtSize]byte) error {
	keyID, reply, err := openFrame(frame, v.Keys, &res.Payload, ext)
	res.KeyID, res.Reply = keyID, reply
	if err != nil {
		return err
	}
	if reply != (echo != nil) {
		return ErrMalformed
	}
	if res.Sender != source {
		return ErrAddrMismatch
	}
	if res.Dest != local {
		return ErrWrongDest
	}
	if echo != nil && subtle.ConstantTimeCompare(res.Echo[:], echo[:]) != 1 {
		return ErrEcho
	}
	revoked := v.Revoker != nil && v.Revoker.RevokedUnder(res.Node, res.Sender, res.KeyID)
	return v.Guard.Advance(res.Node, res.Timestamp, v.Now, revoked)
}

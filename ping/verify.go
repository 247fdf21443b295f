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
	// Attest, if set, asks the server for its attestation of a sender the
	// guard holds no vouched mark for (docs/PROTOCOL.md section 3.4). It is
	// called outside the guard's locks, only on first contact and only for
	// a PING that passed checks 1 to 7 and is not revoked; it may block
	// (bounded by its own deadline) and must return Attestation{} when the
	// server cannot answer.
	Attest func(node proto.NodeID) Attestation
}

// VerifyPing checks a Ping that arrived on a connection from source to
// local and, if it passes, advances the sender's mark. frame is decrypted in
// place (see Open). It does not allocate.
func (v *Verifier) VerifyPing(frame []byte, source, local proto.Addr, res *Result) error {
	return v.verify(frame, source, local, nil, res, nil)
}

// VerifyPingAttested is VerifyPing with the caller's own attestation of
// node, used instead of asking Attest when the PING names node (a PING
// naming another sender gets no attestation): for the server, whose
// control connection has just authenticated node by its identity key
// (docs/PROTOCOL.md section 4.9).
func (v *Verifier) VerifyPingAttested(frame []byte, source, local proto.Addr, node proto.NodeID, att Attestation, res *Result) error {
	return v.verifyWith(frame, source, local, nil, nil, &attested{node: node, att: att}, res)
}

// attested is a caller's attestation of one sender.
type attested struct {
	node proto.NodeID
	att  Attestation
}

// VerifyReply checks a PingReply to a Ping whose random bytes were echo.
func (v *Verifier) VerifyReply(frame []byte, source, local proto.Addr, echo *[RandomSize]byte, res *Result) error {
	return v.verify(frame, source, local, echo, res, nil)
}

func (v *Verifier) verify(frame []byte, source, local proto.Addr, echo *[RandomSize]byte, res *Result, ext *[ExtSize]byte) error {
	return v.verifyWith(frame, source, local, echo, ext, nil, res)
}

// verifyWith runs every check; given, if not nil, is the caller's
// attestation of one sender, used instead of asking Attest.
func (v *Verifier) verifyWith(frame []byte, source, local proto.Addr, echo *[RandomSize]byte, ext *[ExtSize]byte, given *attested, res *Result) error {
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
	var att Attestation
	switch {
	case given != nil:
		if given.node == res.Node {
			att = given.att
		}
	case v.Attest != nil && !revoked && v.Guard.NeedsAttestation(res.Node):
		att = v.Attest(res.Node)
	}
	return v.Guard.AdvanceAttested(res.Node, res.Timestamp, v.Now, revoked, att)
}

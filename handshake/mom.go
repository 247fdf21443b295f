package handshake

import (
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// The MOM half of a control connection, steps 1 to 3 of docs/PROTOCOL.md
// section 4.1: read ServerHello, prove the enrollment token (first start)
// or the node identity (later starts), read Welcome and unwrap the cluster
// keys it carries. The swap with the server follows (Initiate).

// Sentinel errors callers branch on.
var (
	// ErrServerKey means the server's key is not the one pinned by the
	// token or by the earlier enrollment: possibly an impostor.
	ErrServerKey = errors.New("server key does not match the pinned key")
	// ErrFinal wraps a server refusal that retrying cannot fix (bad, used
	// or expired token, wrong address, unknown node).
	ErrFinal = errors.New("refused by server")
	// ErrRevoked means the server refused an enrolled node's Hello as
	// revoked: the node was deleted, so no retry will be admitted.
	ErrRevoked = errors.New("this node was deleted from the cluster")
)

// MomParams is what the MOM presents. Token is set on first start; NodeID
// and ServerKey (pinned at enrollment) on later starts.
type MomParams struct {
	Ident    *keys.Identity
	Rand     io.Reader // the nonces of the sealed proofs
	IMPort   uint16
	Versions uint8
	Token    *keys.Token

	NodeID    proto.NodeID
	ServerKey [32]byte
	KeyIDs    []uint32 // cluster keys held, reported in Hello

	// Sessions sets the capability bit of the proof: this MOM speaks
	// sealed sessions (docs/PROTOCOL.md 6.4). With it, the proof also
	// sets VersionBitFloorProbe: the MOM answers FloorProbe and may send
	// RecoveryLookup on its sealed session (section 4.9).
	Sessions bool
}

// versions is the versions byte of the proof.
func (p *MomParams) versions() uint8 {
	if p.Sessions {
		return p.Versions | proto.VersionBitSessions | proto.VersionBitFloorProbe
	}
	return p.Versions
}

// Authenticate runs the MOM half on rw until Welcome and returns both
// server messages.
func Authenticate(rw io.ReadWriter, p *MomParams) (*proto.ServerHello, *proto.Welcome, error) {
	sh, err := ReadServerHello(rw)
	if err != nil {
		return nil, nil, err
	}
	w, err := Prove(rw, sh, p)
	return sh, w, err
}

// ReadServerHello reads the server's first frame.
func ReadServerHello(r io.Reader) (*proto.ServerHello, error) {
	frame, err := proto.ReadFrameLimit(r, nil, PreAuthMaxFrame)
	if err != nil {
		return nil, fmt.Errorf("read server hello: %w", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, fmt.Errorf("decode server hello: %w", err)
	}
	sh, ok := msg.(*proto.ServerHello)
	if !ok {
		return nil, fmt.Errorf("expected ServerHello, got %s", msg.Type())
	}
	return sh, nil
}

// Prove answers sh with Enroll (p.Token set) or Hello and reads Welcome.
func Prove(rw io.ReadWriter, sh *proto.ServerHello, p *MomParams) (*proto.Welcome, error) {
	var out proto.Message
	if p.Token != nil {
		if err := p.Token.CheckServer(sh.ServerKey); err != nil {
			return nil, fmt.Errorf("%w: server presents %s, the token pins %s: %v", ErrServerKey,
				keys.FingerprintText(sh.ServerKey), keys.FormatFingerprint(p.Token.ServerFP), err)
		}
		proof := proto.EnrollProof{Secret: p.Token.Secret, Challenge: sh.Challenge, IMPort: p.IMPort, Versions: p.versions()}
		e := &proto.Enroll{TokenID: p.Token.ID, NodeKey: p.Ident.Public}
		if _, err := io.ReadFull(p.Rand, e.Nonce[:]); err != nil {
			return nil, fmt.Errorf("enroll nonce: %w", err)
		}
		e.Sealed = box.Seal(nil, proof.Marshal(), &e.Nonce, &sh.ServerKey, &p.Ident.Private)
		out = e
	} else {
		if p.ServerKey != sh.ServerKey {
			return nil, fmt.Errorf("%w: server presents %s, enrolled with %s", ErrServerKey,
				keys.FingerprintText(sh.ServerKey), keys.FingerprintText(p.ServerKey))
		}
		proof := proto.HelloProof{Challenge: sh.Challenge, IMPort: p.IMPort, Versions: p.versions(), KeyIDs: p.KeyIDs}
		h := &proto.Hello{NodeID: p.NodeID}
		if _, err := io.ReadFull(p.Rand, h.Nonce[:]); err != nil {
			return nil, fmt.Errorf("hello nonce: %w", err)
		}
		h.Sealed = box.Seal(nil, proof.Marshal(), &h.Nonce, &sh.ServerKey, &p.Ident.Private)
		out = h
	}
	if err := proto.WriteFrame(rw, out); err != nil {
		return nil, fmt.Errorf("send %s: %w", out.Type(), err)
	}
	frame, err := proto.ReadFrameLimit(rw, nil, PreAuthMaxFrame)
	if err != nil {
		return nil, fmt.Errorf("read welcome: %w", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, fmt.Errorf("decode welcome: %w", err)
	}
	switch w := msg.(type) {
	case *proto.Reject:
		rerr := PeerRejected(w)
		if final(w.Code, p.Token != nil) {
			return nil, fmt.Errorf("%w: %w", ErrFinal, rerr)
		}
		if p.Token == nil && w.Code == proto.RejectRevoked {
			return nil, fmt.Errorf("%w: %w", ErrRevoked, rerr)
		}
		return nil, rerr
	case *proto.Welcome:
		return w, nil
	default:
		return nil, fmt.Errorf("expected Welcome, got %s", msg.Type())
	}
}

// final reports whether a Reject code ends an enrollment for good.
func final(code proto.RejectCode, enrolling bool) bool {
	if !enrolling {
		return false
	}
	switch code {
	case proto.RejectTokenUnknown, proto.RejectTokenUsed, proto.RejectTokenExpired, proto.RejectAuth,
		proto.RejectAddrMismatch, proto.RejectNotAllowed, proto.RejectUnknownNode:
		return true
	}
	return false
}

// Keyring unwraps the keys of a Welcome, each wrapped for ident by the
// server key, into a keyring that must have an active key.
func Keyring(w *proto.Welcome, serverKey *[32]byte, ident *keys.Identity, now time.Time) (*keys.Keyring, error) {
	wr := keys.NewWrapper(serverKey, &ident.Private)
	ring := keys.NewKeyring()
	for _, pw := range w.Keys {
		k, err := wr.Unwrap(FromWire(pw), now)
		if err != nil {
			return nil, fmt.Errorf("unwrap key %08x: %w", pw.KeyID, err)
		}
		if ring, err = ring.WithKey(k); err != nil {
			return nil, fmt.Errorf("install key %s: %w", k.ID, err)
		}
	}
	if ring.Active() == nil {
		return nil, fmt.Errorf("server sent no active cluster key: %w", keys.ErrNoActive)
	}
	return ring, nil
}

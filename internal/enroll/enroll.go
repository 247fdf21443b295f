// Package enroll is the MOM side of the control handshake, steps 1 to 3 of
// docs/PROTOCOL.md section 4.1: read ServerHello, prove the enrollment
// token (first start) or the node identity (later starts), read Welcome and
// unwrap the cluster keys it carries. The MOM daemon and the scale
// simulator share it; the PING swap that follows is internal/swap.
package enroll

import (
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/internal/swap"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// Sentinel errors callers branch on.
var (
	// ErrServerKey means the server's key is not the one pinned by the
	// token or by the earlier enrollment: possibly an impostor.
	ErrServerKey = errors.New("server key does not match the pinned key")
	// ErrFinal wraps a server refusal that retrying cannot fix (bad, used
	// or expired token, wrong address, unknown node).
	ErrFinal = errors.New("refused by server")
)

// Params is what the MOM presents. Token is set on first start; NodeID and
// ServerKey (pinned at enrollment) on later starts.
type Params struct {
	Ident    *keys.Identity
	Rand     io.Reader
	IMPort   uint16
	Versions uint8
	Token    *keys.Token

	NodeID    proto.NodeID
	ServerKey [32]byte
	KeyIDs    []uint32 // cluster keys held, reported in Hello
}

// Handshake runs the exchange on c until Welcome and returns both server
// messages. The caller sets c's deadline.
func Handshake(c net.Conn, p *Params) (*proto.ServerHello, *proto.Welcome, error) {
	sh, err := ReadServerHello(c)
	if err != nil {
		return nil, nil, err
	}
	w, err := Prove(c, sh, p)
	return sh, w, err
}

// ReadServerHello reads the server's first frame.
func ReadServerHello(c net.Conn) (*proto.ServerHello, error) {
	frame, err := proto.ReadFrameLimit(c, nil, swap.PreAuthMaxFrame)
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
func Prove(c net.Conn, sh *proto.ServerHello, p *Params) (*proto.Welcome, error) {
	var out proto.Message
	if p.Token != nil {
		if err := p.Token.CheckServer(sh.ServerKey); err != nil {
			return nil, fmt.Errorf("%w: server presents %s, the token pins %s: %v", ErrServerKey,
				keys.FingerprintText(sh.ServerKey), keys.FormatFingerprint(p.Token.ServerFP), err)
		}
		proof := proto.EnrollProof{Secret: p.Token.Secret, Challenge: sh.Challenge, IMPort: p.IMPort, Versions: p.Versions}
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
		proof := proto.HelloProof{Challenge: sh.Challenge, IMPort: p.IMPort, Versions: p.Versions, KeyIDs: p.KeyIDs}
		h := &proto.Hello{NodeID: p.NodeID}
		if _, err := io.ReadFull(p.Rand, h.Nonce[:]); err != nil {
			return nil, fmt.Errorf("hello nonce: %w", err)
		}
		h.Sealed = box.Seal(nil, proof.Marshal(), &h.Nonce, &sh.ServerKey, &p.Ident.Private)
		out = h
	}
	if err := proto.WriteFrame(c, out); err != nil {
		return nil, fmt.Errorf("send %s: %w", out.Type(), err)
	}
	frame, err := proto.ReadFrameLimit(c, nil, swap.PreAuthMaxFrame)
	if err != nil {
		return nil, fmt.Errorf("read welcome: %w", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, fmt.Errorf("decode welcome: %w", err)
	}
	switch w := msg.(type) {
	case *proto.Reject:
		rerr := &swap.RejectError{Code: w.Code, Reason: w.Reason}
		if final(w.Code, p.Token != nil) {
			return nil, fmt.Errorf("%w: %w", ErrFinal, rerr)
		}
		return nil, rerr
	case *proto.Welcome:
		return w, nil
	default:
		return nil, fmt.Errorf("expected Welcome, got %s", msg.Type())
	}
}

// final reports whether a Reject code ends an enrollment for good.
func final(code uint16, enrolling bool) bool {
	if !enrolling {
		return false
	}
	switch code {
	case swap.CodeTokenUnknown, swap.CodeTokenUsed, swap.CodeTokenExpired, swap.CodeAuth,
		swap.CodeAddrMismatch, swap.CodeNotAllowed, swap.CodeUnknownNode:
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
		k, err := wr.Unwrap(FromProto(pw), now)
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

// FromProto converts a wire WrappedKey.
func FromProto(w proto.WrappedKey) keys.WrappedKey {
	return keys.WrappedKey{ID: keys.KeyID(w.KeyID), State: keys.State(w.State), Nonce: w.Nonce, Sealed: w.Sealed}
}

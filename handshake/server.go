package handshake

import (
	"crypto/subtle"
	"fmt"
	"io"
	"net/netip"

	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
	"github.com/momgate/momgate/session"
)

// The server half of a control connection (docs/PROTOCOL.md sections 4.1
// and 4.3): ServerHello; then LegacyHello (a v1 session, no key), or
// Enroll or Hello, Welcome and the swap in which the MOM proves it holds a
// current cluster key.

// ServerParams is what the server half needs of the server itself.
type ServerParams struct {
	ID       proto.NodeID
	Ident    *keys.Identity
	Rand     io.Reader // the challenge
	Sealer   *ping.Sealer
	Verifier *ping.Verifier
	// Sessions, when set, makes the server speak sealed sessions (section
	// 6.4): a MOM that proves it speaks them gets the Welcome's session
	// trailer and must make its swap a session swap. Nil: the server of
	// before sealed sessions (tests of a mixed cluster).
	Sessions *SessionParams
}

// HelloGate is an optional interface of a Registry: AfterHello is called
// once the client's first frame has been read, before any public-key work
// and before the frame is decoded. It may wait for a slot (bounding how
// many handshakes do that work at once, so that a storm of reconnecting
// MOMs cannot starve the rest of the server) and returns the slot's
// release, called when the handshake ends; its error refuses the client.
type HelloGate interface {
	AfterHello() (release func(), err *Rejection)
}

// HelloOpener is an optional interface of a Registry: OpenHello opens the
// sealed proof of a Hello from the node NodeKey just named, as box.Open
// with that node's identity key and the server's would, but with the box
// shared key it may have kept from an earlier connection of the node: one
// X25519 fewer on every reconnection.
type HelloOpener interface {
	OpenHello(sealed []byte, nonce *[24]byte) ([]byte, bool)
}

// Registry is the server's node registry as one handshake sees it; the
// server half calls it in protocol order, on one connection. Its refusals
// are *Rejection errors (Refuse).
type Registry interface {
	// Mode is the server's mode, given in ServerHello.
	Mode() proto.Mode
	// LegacyHello admits or refuses a v1 session from src, which the mode
	// allows.
	LegacyHello(h *proto.LegacyHello, src netip.Addr, mode proto.Mode) error
	// Enroll redeems the token of an Enroll from src whose proof opened
	// under the server key and answers this connection's challenge.
	Enroll(e *proto.Enroll, proof *proto.EnrollProof, src netip.Addr) error
	// NodeKey returns the identity key and name of the enrolled node a
	// Hello from src names, or refuses the node (unknown, at another
	// address, revoked).
	NodeKey(id proto.NodeID, src netip.Addr) (pub [32]byte, name string, err error)
	// Hello records the proof of the node that NodeKey named.
	Hello(proof *proto.HelloProof)
	// Sessions is told whether the node that enrolled or proved itself
	// also proved it speaks sealed sessions (the capability bit inside its
	// proof); it may refuse an unsealed session from a node known to speak
	// them (reasons.SessionDowngrade), and returns the cluster's
	// im_security for the Welcome's session trailer.
	Sessions(speaks bool) (imSecurity uint8, err error)
	// Welcome is the Welcome of the node that enrolled or proved itself;
	// claims are the key ids a returning MOM says it holds.
	Welcome(enrolling bool, claims []uint32) (*proto.Welcome, error)
}

// Admitted is a control session the server half admitted.
type Admitted struct {
	Version  proto.Version // V1: a legacy session (no PING, no key)
	Node     proto.NodeID  // V2: the node the swap authenticated
	KeyID    uint32        // V2: the cluster key of the MOM's PING
	Enrolled bool          // V2: the session began with an enrollment
	// Session is the sealed session of a MOM that speaks sealed sessions
	// (always encrypt on control); nil for a plain swap.
	Session *session.Session
	// Timestamp is the stamp of the swap's Ping (V2), the first the
	// server can attest the node by (docs/PROTOCOL.md section 4.9).
	Timestamp uint64
	// FloorProbe: the MOM proved (VersionBitFloorProbe) and the Welcome
	// confirmed (WelcomeFloorProbe) the recovery attestation of section
	// 4.9 on this sealed session; never without Session.
	FloorProbe bool
}

// Serve runs the server half on rw, whose peer is remote and whose own
// address is local. Every error is a *Rejection.
func Serve(rw io.ReadWriter, remote, local proto.Addr, p *ServerParams, reg Registry) (*Admitted, error) {
	a, err := serve(rw, remote, local, p, reg)
	if err != nil {
		return nil, RejectionOf(err)
	}
	return a, nil
}

func serve(conn io.ReadWriter, remote, local proto.Addr, p *ServerParams, reg Registry) (*Admitted, error) {
	rw := NewRecorder(conn) // the binding hash of a control session (6.4)
	var challenge [32]byte
	if _, err := io.ReadFull(p.Rand, challenge[:]); err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	mode := reg.Mode()
	hello := &proto.ServerHello{ServerID: p.ID, ServerKey: p.Ident.Public, Challenge: challenge,
		Mode: mode, Versions: migration.ServerVersions(mode)}
	if err := proto.WriteFrame(rw, hello); err != nil {
		return nil, fmt.Errorf("send server hello: %w", err)
	}
	frame, err := proto.ReadFrameLimit(rw, nil, PreAuthMaxFrame)
	if err != nil {
		return nil, ReadRejection("read hello", err)
	}
	if g, ok := reg.(HelloGate); ok {
		release, rej := g.AfterHello()
		if rej != nil {
			return nil, rej
		}
		defer release()
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, Refuse(reasons.Malformed, "decode hello: %w", err)
	}
	src := remote.Netip()
	if lh, ok := msg.(*proto.LegacyHello); ok {
		if mode == proto.ModePing {
			return nil, Refuse(reasons.V1Refused,
				"server is in ping mode: legacy (v1) hello from %s refused; restart the MOM speaking PING", src)
		}
		if err := reg.LegacyHello(lh, src, mode); err != nil {
			return nil, err
		}
		return &Admitted{Version: proto.V1}, nil
	}
	if mode == proto.ModeLegacy {
		return nil, Refuse(reasons.V2Refused,
			"server is in legacy mode: PING hellos refused (connection from %s); switch with set server mode=compat", src)
	}
	var claims []uint32 // keys a returning MOM says it holds
	var nodePub [32]byte
	var versions uint8
	enrolling := false
	switch m := msg.(type) {
	case *proto.Enroll:
		enrolling = true
		proof, err := openEnroll(m, &p.Ident.Private, &challenge)
		if err != nil {
			return nil, err
		}
		if err := reg.Enroll(m, proof, src); err != nil {
			return nil, err
		}
		nodePub, versions = m.NodeKey, proof.Versions
	case *proto.Hello:
		pub, name, err := reg.NodeKey(m.NodeID, src)
		if err != nil {
			return nil, err
		}
		open := func() ([]byte, bool) { return box.Open(nil, m.Sealed, &m.Nonce, &pub, &p.Ident.Private) }
		if o, ok := reg.(HelloOpener); ok {
			open = func() ([]byte, bool) { return o.OpenHello(m.Sealed, &m.Nonce) }
		}
		proof, err := openHello(name, open, &challenge)
		if err != nil {
			return nil, err
		}
		reg.Hello(proof)
		claims = proof.KeyIDs
		nodePub, versions = pub, proof.Versions
	default:
		return nil, Refuse(reasons.Malformed, "expected Enroll or Hello, got %s", msg.Type())
	}
	// The capability is inside the proof's box: only the node's identity
	// key could have set it, so no one on path can hide it.
	speaks := p.Sessions != nil && versions&proto.VersionBitSessions != 0
	imSecurity, err := reg.Sessions(speaks)
	if err != nil {
		return nil, err
	}
	welcome, err := reg.Welcome(enrolling, claims)
	if err != nil {
		return nil, err
	}
	probe := speaks && versions&proto.VersionBitFloorProbe != 0
	if speaks {
		trailer := &proto.WelcomeSessionProof{Challenge: challenge, Flags: proto.WelcomeSealed, IMSecurity: imSecurity}
		if probe {
			trailer.Flags |= proto.WelcomeFloorProbe
		}
		if welcome.Session, err = SealWelcomeSession(p.Rand, &p.Ident.Private, &nodePub, trailer); err != nil {
			return nil, Refuse(reasons.Internal, "%w", err)
		}
	}
	if err := proto.WriteFrame(rw, welcome); err != nil {
		return nil, fmt.Errorf("send welcome: %w", err)
	}
	transcript := rw.Stop()
	// The swap: the MOM proves it holds a current cluster key.
	frame, err = proto.ReadFrameLimit(rw, nil, PreAuthMaxFrame)
	if err != nil {
		return nil, ReadRejection("read ping", err)
	}
	// The node has just proven who it is (Hello or Enroll on this
	// connection's challenge): the server attests it itself, so a node
	// whose clock runs ahead is admitted by a server holding no mark for
	// it (docs/PROTOCOL.md section 4.9).
	var res ping.Result
	adm := &Admitted{Version: proto.V2, Enrolled: enrolling, FloorProbe: probe}
	if speaks {
		if proto.Type(frame[3]) != proto.TypeSessionPing {
			return nil, Refuse(reasons.SessionDowngrade,
				"node %s proved it speaks sealed sessions but sent a %s, not a SessionPing: refused (downgrade)", welcome.Name, proto.Type(frame[3]))
		}
		binding, err := session.NewBinding(&p.Ident.Private, &nodePub, transcript)
		if err != nil {
			return nil, Refuse(reasons.Auth, "node %s: %w", welcome.Name, err)
		}
		cfg := session.Config{Channel: session.ChannelControl, Min: session.Encrypt, Rand: p.Rand, Binding: binding,
			ExpectNode: welcome.NodeID, Attest: &ping.Attestation{OK: true, Fresh: true}, Limits: p.Sessions.Limits}
		if adm.Session, err = RespondSession(rw, frame, remote, local, p.Sealer, p.Verifier, cfg, p.Sessions.Now, &res); err != nil {
			return nil, SessionRejection(err)
		}
	} else {
		if err := RespondAttested(rw, frame, remote, local, p.Sealer, p.Verifier, welcome.NodeID, ping.Attestation{OK: true, Fresh: true}, &res); err != nil {
			return nil, answered(err)
		}
		if res.Node != welcome.NodeID {
			return nil, Refuse(reasons.NodeMismatch, "ping names node %x, connection is %s", res.Node, welcome.Name)
		}
	}
	adm.Node, adm.KeyID, adm.Timestamp = res.Node, res.KeyID, res.Timestamp
	return adm, nil
}

// openEnroll opens an Enroll's proof with the server's private key and
// checks it answers this connection's challenge.
func openEnroll(m *proto.Enroll, serverPriv, challenge *[32]byte) (*proto.EnrollProof, error) {
	plain, ok := box.Open(nil, m.Sealed, &m.Nonce, &m.NodeKey, serverPriv)
	if !ok {
		return nil, Refuse(reasons.Auth, "enroll proof does not open under the server key")
	}
	proof, err := proto.DecodeEnrollProof(plain)
	if err != nil {
		return nil, Refuse(reasons.Malformed, "enroll proof: %w", err)
	}
	if subtle.ConstantTimeCompare(proof.Challenge[:], challenge[:]) != 1 {
		return nil, Refuse(reasons.Auth, "enroll proof answers another challenge")
	}
	return proof, nil
}

// openHello opens a Hello's proof from node name with open (the box of
// the node's identity key and the server's) and checks it answers this
// connection's challenge.
func openHello(name string, open func() ([]byte, bool), challenge *[32]byte) (*proto.HelloProof, error) {
	plain, ok := open()
	if !ok {
		return nil, Refuse(reasons.Auth, "hello proof of node %s does not open with its identity key", name)
	}
	proof, err := proto.DecodeHelloProof(plain)
	if err != nil {
		return nil, Refuse(reasons.Malformed, "hello proof: %w", err)
	}
	if subtle.ConstantTimeCompare(proof.Challenge[:], challenge[:]) != 1 {
		return nil, Refuse(reasons.Auth, "hello proof answers another challenge (replayed hello)")
	}
	return proof, nil
}

package session

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// Config is one side's part in a session swap.
type Config struct {
	Channel Channel
	// Min is the weakest protection this side accepts: on IM the cluster's
	// im_security as last heard; control sessions are always Encrypt
	// (Min is then ignored).
	Min Protection
	// Rand draws the share and the ephemeral keys (crypto/rand.Reader in
	// the daemons).
	Rand io.Reader
	// Binding ties a control session to its handshake and to both
	// identity keys; it must be set for ChannelControl and nil for IM.
	Binding *Binding
	// ExpectNode is the node the peer must be: on a control session the
	// node its Hello or Enroll proved (at the server) or the server's id
	// (at the MOM); a swap naming another is ErrNode. Required on control,
	// ignored when zero on IM.
	ExpectNode proto.NodeID
	// Attest, when set, is the responder's own attestation of ExpectNode
	// (the server's, whose control connection has just authenticated the
	// node by its identity key): its SessionPing is judged with it rather
	// than by the freshness window (docs/PROTOCOL.md section 4.9).
	Attest *ping.Attestation
	// Limits bound the session's keys; zero fields mean the defaults.
	Limits Limits
	// Ephemerals, when set, is this side's reused ephemeral key and its
	// cache of exchanges (docs/PROTOCOL.md 6.3): a swap costs at most one
	// X25519 and none with a peer key met before. Nil makes a fresh key
	// for the swap (a key pair and an exchange).
	Ephemerals *Ephemerals
}

// min returns the minimum protection this side requires.
func (c *Config) min() Protection {
	if c.Channel == ChannelControl {
		return Encrypt
	}
	return c.Min
}

func (c *Config) check() error {
	switch {
	case !c.Channel.valid():
		return fmt.Errorf("session config: channel %d", c.Channel)
	case !c.Min.Valid():
		return fmt.Errorf("session config: protection %s", c.Min)
	case (c.Channel == ChannelControl) != (c.Binding != nil):
		return fmt.Errorf("session config: a control session needs a binding, an IM session has none")
	case c.Channel == ChannelControl && c.ExpectNode == (proto.NodeID{}):
		return fmt.Errorf("session config: a control session needs the node it expects")
	case c.Rand == nil:
		return fmt.Errorf("session config: no randomness")
	}
	_, err := c.Limits.withDefaults()
	return err
}

// Binding ties a control session to what authenticated it (section 6.4):
// the hash of the control handshake frames, and the static X25519 secret of
// the MOM's and the server's identity keys, which only those two can
// compute. Static is secret: a Binding serves one swap, which zeroes
// Static once the session secret is derived (or the swap failed).
type Binding struct {
	Hash   [32]byte
	Static [KeySize]byte
}

// wipe zeroes the static secret (nil-safe).
func (b *Binding) wipe() {
	if b != nil {
		clear(b.Static[:])
	}
}

// NewBinding computes the binding of a control session: ownPrivate is this
// side's identity private key, peerPublic the other side's identity public
// key (the server's as pinned, or the node's as enrolled), and handshake the
// frames ServerHello, Enroll or Hello, and Welcome, whole, in that order, as
// sent and received.
func NewBinding(ownPrivate, peerPublic *[32]byte, handshake ...[]byte) (*Binding, error) {
	ss, err := shared(ownPrivate, peerPublic)
	if err != nil {
		return nil, fmt.Errorf("control binding: %w", err)
	}
	h := sha256.New()
	for _, f := range handshake {
		h.Write(f)
	}
	b := &Binding{Static: ss}
	h.Sum(b.Hash[:0])
	return b, nil
}

// secrets returns the static secret, or nil without a binding.
func (b *Binding) secrets() *[KeySize]byte {
	if b == nil {
		return nil
	}
	return &b.Static
}

// Initiator is the side that sends the SessionPing: make one per swap.
type Initiator struct {
	cfg    Config
	offer  Offer
	eph    ephemeral   // a fresh key (no Ephemerals), erased by Finish
	pooled *ephKey     // or the Ephemerals' key
	sent   ping.Result // the SessionPing as sealed
	ready  bool
	done   bool // Finish ran: the initiator is spent
}

// NewInitiator draws the share and, when Encrypt is offered, the ephemeral
// key, from cfg.Rand in that order.
func NewInitiator(cfg Config) (*Initiator, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	in := &Initiator{cfg: cfg, offer: Offer{Channel: cfg.Channel, Offered: OfferMask(cfg.min())}}
	if _, err := io.ReadFull(cfg.Rand, in.offer.Share[:]); err != nil {
		return nil, fmt.Errorf("session share: %w", err)
	}
	if in.offer.Offered.Has(Encrypt) {
		if cfg.Ephemerals != nil {
			k, err := cfg.Ephemerals.acquire()
			if err != nil {
				return nil, err
			}
			in.pooled, in.offer.Ephemeral = k, k.e.pub
			return in, nil
		}
		e, err := newEphemeral(cfg.Rand)
		if err != nil {
			return nil, err
		}
		in.eph, in.offer.Ephemeral = e, e.pub
	}
	return in, nil
}

// AppendPing appends the SessionPing, from src to dest, sealed by s.
func (in *Initiator) AppendPing(dst []byte, s *ping.Sealer, src, dest proto.Addr) ([]byte, error) {
	if in.done || in.ready {
		return dst, fmt.Errorf("session ping sealed twice, or after the swap finished: make one initiator per swap")
	}
	var ext Ext
	in.offer.Encode(&ext)
	defer clear(ext[:])
	out, err := s.PingExt(dst, src, dest, &ext, &in.sent)
	if err != nil {
		return dst, fmt.Errorf("seal session ping: %w", err)
	}
	in.ready = true
	return out, nil
}

// Random returns the random bytes of the sealed SessionPing: what the
// SessionReply must echo (zero before AppendPing).
func (in *Initiator) Random() [ping.RandomSize]byte { return in.sent.Random }

// Finish verifies the SessionReply (every PING check, from source to
// local, decrypting it in place), checks the answer against the offer,
// derives the keys and returns the session, established at now; a nil
// session with a nil error means the responder chose None (frames stay in
// the clear, by authenticated agreement). res gets the reply's PING fields,
// as after a plain swap. PING failures are ping's errors; session ones wrap
// ErrOffer.
func (in *Initiator) Finish(reply []byte, v *ping.Verifier, source, local proto.Addr, now time.Time, res *ping.Result) (*Session, error) {
	if !in.ready {
		return nil, fmt.Errorf("session finish without a sealed ping (or a second time)")
	}
	in.ready, in.done = false, true
	defer in.eph.zero()
	defer clear(in.offer.Share[:])
	defer in.cfg.Binding.wipe()
	var ext Ext
	defer clear(ext[:])
	// The reply is decrypted in place: its plaintext (the responder's
	// share) is erased from the caller's buffer once read.
	defer wipePlaintext(reply)
	if err := v.VerifyReplyExt(reply, source, local, &in.sent.Random, res, &ext); err != nil {
		return nil, err
	}
	if in.cfg.ExpectNode != (proto.NodeID{}) && res.Node != in.cfg.ExpectNode {
		return nil, nodeMismatch("reply", res.Node, in.cfg.ExpectNode)
	}
	a, err := DecodeAnswer(&ext)
	if err != nil {
		return nil, err
	}
	defer clear(a.Share[:])
	if a.Channel != in.offer.Channel || a.Offered != in.offer.Offered {
		return nil, fmt.Errorf("answer for a %s session offering %s, we offered %s on %s: %w",
			a.Channel, a.Offered, in.offer.Offered, in.offer.Channel, ErrOffer)
	}
	if a.Chosen == None {
		return nil, nil
	}
	var ee *[KeySize]byte
	if a.Chosen == Encrypt {
		s, err := ephExchange(in.cfg.Ephemerals, in.pooled, &in.eph, &a.Ephemeral)
		if err != nil {
			return nil, fmt.Errorf("answer: %w", err)
		}
		defer clear(s[:])
		ee = &s
	}
	t := newTranscript(in.cfg.Channel, in.offer.Offered, a.Chosen, &in.sent, res, &in.offer.Ephemeral, &a.Ephemeral, in.cfg.Binding)
	th := t.Hash()
	s0 := InitialSecret(&th, &in.offer.Share, &a.Share, ee, in.cfg.Binding.secrets())
	return NewSession(RoleInitiator, a.Chosen, &s0, now, in.cfg.Limits, in.cfg.Rand)
}

// nodeMismatch is ErrNode for a swap frame from got where want was due.
// The ids are copied in: formatting them moves only these copies to the
// heap, not the caller's result and config on every swap.
func nodeMismatch(frame string, got, want proto.NodeID) error {
	return fmt.Errorf("session %s from node %x, expected %x: %w", frame, got[:4], want[:4], ErrNode)
}

// ephExchange is the swap's ee: with the Ephemerals' key k (cached per peer
// key) or with the fresh key e. A low-order peer key wraps ErrOffer; a
// pooled key erased before the swap ended, ErrExpired.
func ephExchange(p *Ephemerals, k *ephKey, e *ephemeral, peer *[32]byte) ([KeySize]byte, error) {
	var s [KeySize]byte
	var err error
	if k != nil {
		s, err = p.shared(k, peer)
	} else {
		s, err = e.shared(peer)
	}
	if err != nil && !errors.Is(err, ErrExpired) {
		err = fmt.Errorf("%v: %w", err, ErrOffer)
	}
	return s, err
}

// wipePlaintext zeroes the plaintext of a session PING frame that was
// decrypted in place (after the key id and the nonce, before the tag); a
// frame of another size is left alone.
func wipePlaintext(frame []byte) {
	const start = proto.HeaderSize + 4 + ping.NonceSize
	if len(frame) == ping.ExtFrameSize || len(frame) == ping.ExtReplyFrameSize {
		clear(frame[start : len(frame)-TagSize])
	}
}

// Respond verifies a SessionPing (every PING check, from source to local,
// decrypting it in place), chooses the protection, appends the SessionReply
// sealed by s to dst and returns the session, established at now, with
// Protection None (nil *Session) when that was chosen. res gets the PING's
// fields, as after a plain swap. On error nothing is appended: PING failures
// are ping's errors, session ones wrap ErrOffer or ErrPolicy (RejectCode
// gives their Reject codes).
func Respond(dst, frame []byte, s *ping.Sealer, v *ping.Verifier, source, local proto.Addr, cfg Config, now time.Time, res *ping.Result) ([]byte, *Session, error) {
	defer cfg.Binding.wipe()
	if err := cfg.check(); err != nil {
		return dst, nil, err
	}
	var ext Ext
	defer clear(ext[:])
	defer wipePlaintext(frame) // decrypted in place: the initiator's share
	verify := func() error { return v.VerifyPingExt(frame, source, local, res, &ext) }
	if cfg.Attest != nil {
		verify = func() error {
			return v.VerifyPingExtAttested(frame, source, local, cfg.ExpectNode, *cfg.Attest, res, &ext)
		}
	}
	if err := verify(); err != nil {
		return dst, nil, err
	}
	if cfg.ExpectNode != (proto.NodeID{}) && res.Node != cfg.ExpectNode {
		return dst, nil, nodeMismatch("ping", res.Node, cfg.ExpectNode)
	}
	o, err := DecodeOffer(&ext)
	if err != nil {
		return dst, nil, err
	}
	defer clear(o.Share[:])
	if o.Channel != cfg.Channel {
		return dst, nil, fmt.Errorf("%s session offered on a %s connection: %w", o.Channel, cfg.Channel, ErrOffer)
	}
	chosen, err := Choose(o.Offered, cfg.min())
	if err != nil {
		return dst, nil, err
	}
	a := Answer{Channel: o.Channel, Offered: o.Offered, Chosen: chosen}
	defer clear(a.Share[:])
	if chosen != None {
		if _, err := io.ReadFull(cfg.Rand, a.Share[:]); err != nil {
			return dst, nil, fmt.Errorf("session share: %w", err)
		}
	}
	var ee *[KeySize]byte
	if chosen == Encrypt {
		var eph ephemeral
		var pooled *ephKey
		if cfg.Ephemerals != nil {
			if pooled, err = cfg.Ephemerals.acquire(); err != nil {
				return dst, nil, err
			}
			a.Ephemeral = pooled.e.pub
		} else {
			if eph, err = newEphemeral(cfg.Rand); err != nil {
				return dst, nil, err
			}
			defer eph.zero()
			a.Ephemeral = eph.pub
		}
		s, err := ephExchange(cfg.Ephemerals, pooled, &eph, &o.Ephemeral)
		if err != nil {
			return dst, nil, fmt.Errorf("offer: %w", err)
		}
		defer clear(s[:])
		ee = &s
	}
	a.Encode(&ext)
	var sent ping.Result
	out, err := s.ReplyExt(dst, local, source, res.Random, &ext, &sent)
	if err != nil {
		return dst, nil, fmt.Errorf("seal session reply: %w", err)
	}
	if chosen == None {
		return out, nil, nil
	}
	t := newTranscript(cfg.Channel, o.Offered, chosen, res, &sent, &o.Ephemeral, &a.Ephemeral, cfg.Binding)
	th := t.Hash()
	s0 := InitialSecret(&th, &o.Share, &a.Share, ee, cfg.Binding.secrets())
	sess, err := NewSession(RoleResponder, chosen, &s0, now, cfg.Limits, cfg.Rand)
	if err != nil {
		return dst, nil, err
	}
	return out, sess, nil
}

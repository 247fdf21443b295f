package session

import (
	"fmt"

	"github.com/momgate/momgate/ping"
)

// ExtVersion is the version of the session extension this package speaks.
const ExtVersion = 1

// Ext is the session extension carried at the end of a sealed PING's
// plaintext (docs/PROTOCOL.md section 6.2).
type Ext = [ping.ExtSize]byte

// Offer is the initiator's extension, in its SessionPing.
type Offer struct {
	Channel   Channel
	Offered   Mask
	Share     [32]byte // fresh random secret, input to the key schedule
	Ephemeral [32]byte // X25519 public key; zero unless Encrypt is offered
}

// Answer is the responder's extension, in its SessionReply.
type Answer struct {
	Channel   Channel    // the offer's
	Offered   Mask       // the offer's, echoed: the initiator checks it
	Chosen    Protection // one of Offered
	Share     [32]byte
	Ephemeral [32]byte // zero unless Chosen is Encrypt
}

// Encode writes o in the layout of section 6.2.
func (o *Offer) Encode(b *Ext) {
	b[0], b[1], b[2], b[3] = ExtVersion, byte(o.Channel), byte(o.Offered), 0
	copy(b[4:36], o.Share[:])
	copy(b[36:68], o.Ephemeral[:])
}

// DecodeOffer strictly decodes an offer; every failure wraps ErrOffer.
func DecodeOffer(b *Ext) (Offer, error) {
	o := Offer{Channel: Channel(b[1]), Offered: Mask(b[2])}
	copy(o.Share[:], b[4:36])
	copy(o.Ephemeral[:], b[36:68])
	if err := checkExt(b, o.Channel, o.Offered); err != nil {
		return Offer{}, err
	}
	if b[3] != 0 {
		return Offer{}, fmt.Errorf("offer reserved byte 0x%02x: %w", b[3], ErrOffer)
	}
	if err := checkEphemeral(&o.Ephemeral, o.Offered.Has(Encrypt), "offer"); err != nil {
		return Offer{}, err
	}
	return o, nil
}

// Encode writes a in the layout of section 6.2.
func (a *Answer) Encode(b *Ext) {
	b[0], b[1], b[2], b[3] = ExtVersion, byte(a.Channel), byte(a.Offered), byte(a.Chosen)
	copy(b[4:36], a.Share[:])
	copy(b[36:68], a.Ephemeral[:])
}

// DecodeAnswer strictly decodes an answer; every failure wraps ErrOffer.
func DecodeAnswer(b *Ext) (Answer, error) {
	a := Answer{Channel: Channel(b[1]), Offered: Mask(b[2]), Chosen: Protection(b[3])}
	copy(a.Share[:], b[4:36])
	copy(a.Ephemeral[:], b[36:68])
	if err := checkExt(b, a.Channel, a.Offered); err != nil {
		return Answer{}, err
	}
	if !a.Offered.Has(a.Chosen) {
		return Answer{}, fmt.Errorf("answer chose %s, not among %s: %w", a.Chosen, a.Offered, ErrOffer)
	}
	if a.Chosen == None && !isZero(&a.Share) {
		return Answer{}, fmt.Errorf("answer chose none but carries a share: %w", ErrOffer)
	}
	if err := checkEphemeral(&a.Ephemeral, a.Chosen == Encrypt, "answer"); err != nil {
		return Answer{}, err
	}
	return a, nil
}

// checkExt checks the fields offer and answer share: version, channel and
// the offered set (control sessions are always encrypted).
func checkExt(b *Ext, c Channel, m Mask) error {
	switch {
	case b[0] != ExtVersion:
		return fmt.Errorf("session extension version %d, want %d: %w", b[0], ExtVersion, ErrOffer)
	case !c.valid():
		return fmt.Errorf("session channel %d: %w", b[1], ErrOffer)
	case !m.valid():
		return fmt.Errorf("offered protections 0x%02x: %w", b[2], ErrOffer)
	case c == ChannelControl && m != 1<<Encrypt:
		return fmt.Errorf("control session offering %s, must offer encrypt only: %w", m, ErrOffer)
	}
	return nil
}

func checkEphemeral(e *[32]byte, want bool, what string) error {
	if isZero(e) == want {
		if want {
			return fmt.Errorf("%s lacks the ephemeral key encrypt needs: %w", what, ErrOffer)
		}
		return fmt.Errorf("%s carries an ephemeral key without encrypt: %w", what, ErrOffer)
	}
	return nil
}

func isZero(b *[32]byte) bool { return *b == [32]byte{} }

package session

import (
	"fmt"
	"strings"
)

// Protection is what a session does to the frames after the swap.
type Protection uint8

// Protections, weakest first.
const (
	// None: frames go in the clear, as before sealed sessions.
	None Protection = 0
	// Auth: every frame is authenticated (integrity, order, no replay);
	// its bytes stay visible.
	Auth Protection = 1
	// Encrypt: every frame is authenticated and encrypted, under keys
	// from an ephemeral X25519 exchange (forward secrecy).
	Encrypt Protection = 2
)

var protectionNames = [...]string{None: "none", Auth: "auth", Encrypt: "encrypt"}

// Valid reports whether p is a defined protection.
func (p Protection) Valid() bool { return p <= Encrypt }

func (p Protection) String() string {
	if p.Valid() {
		return protectionNames[p]
	}
	return fmt.Sprintf("Protection(%d)", uint8(p))
}

// ParseProtection parses "none", "auth" or "encrypt".
func ParseProtection(s string) (Protection, error) {
	for p, n := range protectionNames {
		if strings.EqualFold(s, n) {
			return Protection(p), nil
		}
	}
	return 0, fmt.Errorf("protection %q: want none, auth or encrypt", s)
}

// Mask is a set of protections: bit 1<<p for each protection p.
type Mask uint8

const allProtections = Mask(1<<None | 1<<Auth | 1<<Encrypt)

// Has reports whether p is in m.
func (m Mask) Has(p Protection) bool { return p.Valid() && m&(1<<p) != 0 }

// valid reports whether m is a non-empty set of defined protections.
func (m Mask) valid() bool { return m != 0 && m&^allProtections == 0 }

// OfferMask is what an initiator whose minimum is min offers: every
// protection at least as strong.
func OfferMask(min Protection) Mask {
	var m Mask
	for p := min; p <= Encrypt; p++ {
		m |= 1 << p
	}
	return m
}

// Choose is the responder's choice: the weakest offered protection that is
// at least its own minimum, so both sides get at least what they asked for
// and no more than the stronger of them asked. ErrPolicy if there is none.
func Choose(offered Mask, min Protection) (Protection, error) {
	for p := min; p <= Encrypt; p++ {
		if offered.Has(p) {
			return p, nil
		}
	}
	return 0, fmt.Errorf("offered %s, this side requires at least %s: %w", offered, min, ErrPolicy)
}

func (m Mask) String() string {
	var parts []string
	for p := None; p <= Encrypt; p++ {
		if m.Has(p) {
			parts = append(parts, p.String())
		}
	}
	if m&^allProtections != 0 {
		parts = append(parts, fmt.Sprintf("0x%02x", uint8(m&^allProtections)))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// Channel is the kind of connection a session protects.
type Channel uint8

// Channels.
const (
	// ChannelIM: MOM to MOM, authenticated by the cluster key.
	ChannelIM Channel = 1
	// ChannelControl: MOM to server, also bound to both identity keys.
	ChannelControl Channel = 2
)

func (c Channel) valid() bool { return c == ChannelIM || c == ChannelControl }

func (c Channel) String() string {
	switch c {
	case ChannelIM:
		return "im"
	case ChannelControl:
		return "control"
	}
	return fmt.Sprintf("Channel(%d)", uint8(c))
}

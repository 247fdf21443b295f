package proto

// Frames and fields of sealed sessions on control connections
// (docs/PROTOCOL.md sections 6.4 and 6.7). The capability a MOM proves in
// its Hello or Enroll, the one the server proves in its Welcome, and the
// two pushes that travel on sealed control sessions only.

// VersionBitSessions, in the versions byte of an EnrollProof or a
// HelloProof (inside the nacl/box, so only the node's identity key can set
// it), says the MOM speaks sealed sessions. Servers that predate them
// ignore the bit.
const VersionBitSessions uint8 = 1 << 3

// Flags of a WelcomeSessionProof.
const (
	// WelcomeSealed: the server speaks sealed sessions; the MOM must make
	// its control session a session swap and must never fall back.
	WelcomeSealed uint8 = 1 << 0
)

// Sizes of the Welcome's session trailer.
const (
	// WelcomeSessionProofSize is the plaintext: challenge, flags,
	// im_security.
	WelcomeSessionProofSize = 32 + 1 + 1
	// WelcomeSessionSealedLen is the nacl/box of it (16-byte tag).
	WelcomeSessionSealedLen = WelcomeSessionProofSize + 16
	// WelcomeSessionSize is the whole trailer: nonce and box.
	WelcomeSessionSize = 24 + WelcomeSessionSealedLen
)

// WelcomeSession ends the Welcome of a MOM whose proof set
// VersionBitSessions (never another: a MOM that predates sealed sessions
// would refuse the trailing bytes). Sealed is the nacl/box, from the
// server's identity key to the node's, of a WelcomeSessionProof.
type WelcomeSession struct {
	Nonce  [24]byte
	Sealed [WelcomeSessionSealedLen]byte
}

func (s *WelcomeSession) append(b []byte) []byte {
	b = append(b, s.Nonce[:]...)
	return append(b, s.Sealed[:]...)
}

func (s *WelcomeSession) decode(r *reader) {
	r.fixed(s.Nonce[:], "session nonce")
	r.fixed(s.Sealed[:], "session proof")
}

// WelcomeSessionProof is the plaintext inside WelcomeSession: the
// connection's challenge (so the trailer cannot be replayed on another
// connection), the server's capabilities, and the cluster's im_security
// (0 none, 1 auth, 2 encrypt).
type WelcomeSessionProof struct {
	Challenge  [32]byte
	Flags      uint8
	IMSecurity uint8
}

// Marshal encodes p.
func (p *WelcomeSessionProof) Marshal() []byte {
	b := make([]byte, 0, WelcomeSessionProofSize)
	b = append(b, p.Challenge[:]...)
	return append(b, p.Flags, p.IMSecurity)
}

// DecodeWelcomeSessionProof strictly decodes a WelcomeSessionProof.
func DecodeWelcomeSessionProof(b []byte) (*WelcomeSessionProof, error) {
	r := &reader{b: b, typ: TypeWelcome}
	p := &WelcomeSessionProof{}
	r.fixed(p.Challenge[:], "session challenge")
	p.Flags = r.u8("session flags")
	r.check("session flags", r.err != nil || p.Flags&^(WelcomeSealed|WelcomeFloorProbe) == 0, "flags %#02x", p.Flags)
	p.IMSecurity = r.u8("im_security")
	r.check("im_security", r.err != nil || p.IMSecurity <= MaxProtection, "im_security %d", p.IMSecurity)
	return p, r.end()
}

// MaxProtection is the strongest protection value (encrypt).
const MaxProtection = 2

// IMSecurity is the cluster's im_security, pushed by the server on every
// sealed control session when an administrator changes it: the weakest
// protection MOMs accept on new IM sessions with a peer that speaks sealed
// sessions.
type IMSecurity struct {
	v2
	Protection uint8 // 0 none, 1 auth, 2 encrypt
}

// Type returns TypeIMSecurity.
func (*IMSecurity) Type() Type { return TypeIMSecurity }

// AppendBody encodes the body.
func (m *IMSecurity) AppendBody(b []byte) []byte { return append(b, m.Protection) }

func (m *IMSecurity) decode(r *reader) {
	m.Protection = r.u8("protection")
	r.check("protection", r.err != nil || m.Protection <= MaxProtection, "protection %d", m.Protection)
}

// SealedNodes tells a MOM which nodes speak sealed sessions (the server
// saw the capability in their Hello or Enroll): an unsealed IM swap with
// one of them is refused, and a refusal of a SessionPing to one is never
// a reason to fall back. Op and entries are those of NodeUpgraded.
type SealedNodes struct {
	v2
	Op      uint8 // UpgradedAdd, UpgradedRemove or UpgradedReplace
	Entries []NodeAddr
}

// Type returns TypeSealedNodes.
func (*SealedNodes) Type() Type { return TypeSealedNodes }

// AppendBody encodes the body.
func (m *SealedNodes) AppendBody(b []byte) []byte { return appendOpEntries(b, m.Op, m.Entries) }

func (m *SealedNodes) decode(r *reader) { m.Op, m.Entries = decodeOpEntries(r) }

package proto

import "encoding/binary"

// EnrollProof is the plaintext sealed inside Enroll.
type EnrollProof struct {
	Secret    [32]byte // token secret
	Challenge [32]byte // from ServerHello
	IMPort    uint16
	Versions  uint8
}

// EnrollProofSize is the encoded size of an EnrollProof.
const EnrollProofSize = 67

// Marshal encodes p.
func (p *EnrollProof) Marshal() []byte {
	b := make([]byte, 0, EnrollProofSize)
	b = append(b, p.Secret[:]...)
	b = append(b, p.Challenge[:]...)
	b = binary.BigEndian.AppendUint16(b, p.IMPort)
	return append(b, p.Versions)
}

// DecodeEnrollProof strictly decodes an EnrollProof.
func DecodeEnrollProof(b []byte) (*EnrollProof, error) {
	r := &reader{b: b, typ: TypeEnroll}
	p := &EnrollProof{}
	r.fixed(p.Secret[:], "proof secret")
	r.fixed(p.Challenge[:], "proof challenge")
	p.IMPort = r.u16("proof im port")
	p.Versions = r.u8("proof versions")
	return p, r.end()
}

// HelloProof is the plaintext sealed inside Hello.
type HelloProof struct {
	Challenge [32]byte
	IMPort    uint16
	Versions  uint8
	KeyIDs    []uint32 // cluster keys the MOM holds
}

// Marshal encodes p.
func (p *HelloProof) Marshal() []byte {
	b := make([]byte, 0, 36+4*len(p.KeyIDs))
	b = append(b, p.Challenge[:]...)
	b = binary.BigEndian.AppendUint16(b, p.IMPort)
	b = append(b, p.Versions, byte(len(p.KeyIDs)))
	for _, id := range p.KeyIDs {
		b = binary.BigEndian.AppendUint32(b, id)
	}
	return b
}

// DecodeHelloProof strictly decodes a HelloProof.
func DecodeHelloProof(b []byte) (*HelloProof, error) {
	r := &reader{b: b, typ: TypeHello}
	p := &HelloProof{}
	r.fixed(p.Challenge[:], "proof challenge")
	p.IMPort = r.u16("proof im port")
	p.Versions = r.u8("proof versions")
	n := r.count(1, MaxHeldKeys, 4, "proof key count")
	for i := 0; i < n; i++ {
		p.KeyIDs = append(p.KeyIDs, r.u32("proof key id"))
	}
	return p, r.end()
}

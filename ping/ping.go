package ping

import (
	"crypto/cipher"
	"encoding/binary"
	"sync"

	"github.com/momgate/momgate/proto"
)

// Sizes of the PING layout (docs/PROTOCOL.md section 3.1).
const (
	RandomSize     = 16
	NonceSize      = 24
	TagSize        = 16
	PlainSize      = 72                      // Ping plaintext
	ReplyPlainSize = PlainSize + RandomSize  // PingReply plaintext
	adSize         = proto.HeaderSize + 4    // header and key id
	bodyOverhead   = 4 + NonceSize + TagSize // key id, nonce, tag
	// FrameSize is the length of a whole Ping frame.
	FrameSize = proto.HeaderSize + bodyOverhead + PlainSize
	// ReplyFrameSize is the length of a whole PingReply frame.
	ReplyFrameSize = proto.HeaderSize + bodyOverhead + ReplyPlainSize
)

// Payload is the plaintext of a Ping or PingReply.
type Payload struct {
	Random    [RandomSize]byte // fresh CSPRNG bytes
	Timestamp uint64           // sender's monotonic timestamp, ns since the epoch
	Sender    proto.Addr       // address the sender connects from
	Dest      proto.Addr       // address of the receiver it is for
	Node      proto.NodeID     // sender's node id
	Echo      [RandomSize]byte // PingReply only: the initiator's Random
}

// KeySource gives the AEADs of the cluster keys. Implementations must be
// safe for concurrent use and must not allocate in Open.
type KeySource interface {
	// Open returns the AEAD of key id if the id is accepted (next, active
	// or previous), or nil.
	Open(id uint32) cipher.AEAD
	// Seal returns the id and AEAD of the active key, or a nil AEAD when
	// there is none.
	Seal() (uint32, cipher.AEAD)
}

// SealPayload appends a sealed Ping (reply false) or PingReply (reply true)
// frame to dst. It is deterministic given nonce and p, which is what the
// test vectors check; Sealer supplies fresh randomness and timestamps.
func SealPayload(dst []byte, reply bool, keyID uint32, aead cipher.AEAD, nonce *[NonceSize]byte, p *Payload) []byte {
	sc := scratchPool.Get().(*sealScratch)
	defer scratchPool.Put(sc)
	return sealPayload(dst, reply, keyID, aead, nonce, p, nil, sc)
}

// sealScratch holds what a seal passes to the AEAD interface (and so
// would otherwise escape to the heap on every call).
type sealScratch struct {
	nonce [NonceSize]byte
	plain [ReplyPlainSize + ExtSize]byte
	ad    [adSize]byte
	rnd   [RandomSize + NonceSize]byte
}

var scratchPool = sync.Pool{New: func() any { return new(sealScratch) }}

// sealPayload seals a Ping or PingReply, or with ext a SessionPing or
// SessionReply whose plaintext ends with ext (section 6.2).
func sealPayload(dst []byte, reply bool, keyID uint32, aead cipher.AEAD, nonce *[NonceSize]byte, p *Payload, ext *[ExtSize]byte, sc *sealScratch) []byte {
	typ, plainLen := frameType(reply, ext != nil)
	start := len(dst)
	h := proto.Header{Version: proto.V2, Type: typ, Length: uint32(bodyOverhead + plainLen)}
	dst = proto.AppendHeader(dst, h)
	dst = binary.BigEndian.AppendUint32(dst, keyID)
	dst = append(dst, nonce[:]...)
	encodePayload(sc.plain[:plainLen], p)
	if ext != nil {
		copy(sc.plain[plainLen-ExtSize:plainLen], ext[:])
	}
	// Seal may grow dst, so the associated data is copied out first.
	copy(sc.ad[:], dst[start:start+adSize])
	sc.nonce = *nonce
	dst = aead.Seal(dst, sc.nonce[:], sc.plain[:plainLen], sc.ad[:])
	clear(sc.plain[:])
	return dst
}

// frameType returns the type and plaintext length of a PING frame.
func frameType(reply, ext bool) (proto.Type, int) {
	switch {
	case reply && ext:
		return proto.TypeSessionReply, ReplyPlainSize + ExtSize
	case ext:
		return proto.TypeSessionPing, PlainSize + ExtSize
	case reply:
		return proto.TypePingReply, ReplyPlainSize
	}
	return proto.TypePing, PlainSize
}

// encodePayload writes the PING fields of p to b (PlainSize bytes, or
// ReplyPlainSize with the echo); an extension follows them.
func encodePayload(b []byte, p *Payload) {
	copy(b[0:16], p.Random[:])
	binary.BigEndian.PutUint64(b[16:24], p.Timestamp)
	copy(b[24:40], p.Sender[:])
	copy(b[40:56], p.Dest[:])
	copy(b[56:72], p.Node[:])
	if len(b) >= ReplyPlainSize {
		copy(b[72:88], p.Echo[:])
	}
}

func decodePayload(b []byte, p *Payload) {
	copy(p.Random[:], b[0:16])
	p.Timestamp = binary.BigEndian.Uint64(b[16:24])
	copy(p.Sender[:], b[24:40])
	copy(p.Dest[:], b[40:56])
	copy(p.Node[:], b[56:72])
	if len(b) >= ReplyPlainSize {
		copy(p.Echo[:], b[72:88])
	} else {
		p.Echo = [RandomSize]byte{}
	}
}

// KeyIDOf returns the key id of a Ping or PingReply frame without opening it,
// for diagnostics; ok is false if the frame is too short.
func KeyIDOf(frame []byte) (id uint32, ok bool) {
	if len(frame) < adSize {
		return 0, false
	}
	return binary.BigEndian.Uint32(frame[proto.HeaderSize:adSize]), true
}

// Open runs checks 1 to 4 of docs/PROTOCOL.md section 3.2 on one whole
// Ping or PingReply frame and decodes its payload into p. It decrypts in
// place: frame's ciphertext is overwritten (callers that keep a frame, as
// replay tests do, pass a copy). It does not allocate.
func Open(frame []byte, keys KeySource, p *Payload) (keyID uint32, reply bool, err error) {
	return openFrame(frame, keys, p, nil)
}

// openFrame opens a Ping or PingReply (ext nil), or a SessionPing or
// SessionReply whose extension it copies to ext; any other type, or a type
// of the other family, is ErrMalformed.
func openFrame(frame []byte, keys KeySource, p *Payload, ext *[ExtSize]byte) (keyID uint32, reply bool, err error) {
	if len(frame) < proto.HeaderSize || frame[0] != byte(proto.Magic>>8) || frame[1] != byte(proto.Magic&0xff) {
		return 0, false, ErrMalformed
	}
	if proto.Version(frame[2]) != proto.V2 {
		return 0, false, ErrVersion
	}
	h, herr := proto.ParseHeader(frame)
	if herr != nil {
		return 0, false, ErrMalformed
	}
	pingType, pingPlain := frameType(false, ext != nil)
	replyType, replyPlain := frameType(true, ext != nil)
	switch {
	case h.Type == pingType && len(frame) == adSize+NonceSize+pingPlain+TagSize && int(h.Length) == len(frame)-proto.HeaderSize:
	case h.Type == replyType && len(frame) == adSize+NonceSize+replyPlain+TagSize && int(h.Length) == len(frame)-proto.HeaderSize:
		reply = true
	default:
		return 0, false, ErrMalformed
	}
	keyID = binary.BigEndian.Uint32(frame[proto.HeaderSize:adSize])
	aead := keys.Open(keyID)
	if aead == nil {
		return keyID, reply, ErrUnknownKey
	}
	nonce := frame[adSize : adSize+NonceSize]
	sealed := frame[adSize+NonceSize:]
	plain, oerr := aead.Open(sealed[:0], nonce, sealed, frame[:adSize])
	if oerr != nil {
		return keyID, reply, ErrAuth
	}
	if ext != nil {
		copy(ext[:], plain[len(plain)-ExtSize:])
		plain = plain[:len(plain)-ExtSize]
	}
	decodePayload(plain, p)
	return keyID, reply, nil
}

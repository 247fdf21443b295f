package ping

import (
	"errors"
	"fmt"
	"io"

	"github.com/momgate/momgate/proto"
)

// ErrNoActiveKey means the key source has no key to seal with.
var ErrNoActiveKey = errors.New("no active cluster key")

// Sealer builds this node's PINGs: fresh random bytes and nonce from Rand,
// a timestamp from Stamper, the active key from Keys. Safe for concurrent
// use if Rand is (crypto/rand.Reader is).
type Sealer struct {
	Keys    KeySource
	Stamper *Stamper
	Rand    io.Reader
	Node    proto.NodeID // this node's id
}

// Ping appends a Ping from src to dest to dst and returns it with the
// random bytes the reply must echo.
func (s *Sealer) Ping(dst []byte, src, dest proto.Addr) ([]byte, [RandomSize]byte, error) {
	p := Payload{Sender: src, Dest: dest}
	out, err := s.seal(dst, false, &p, nil)
	return out, p.Random, err
}

// Reply appends a PingReply from src to dest echoing the initiator's
// random bytes.
func (s *Sealer) Reply(dst []byte, src, dest proto.Addr, echo [RandomSize]byte) ([]byte, error) {
	p := Payload{Sender: src, Dest: dest, Echo: echo}
	return s.seal(dst, true, &p, nil)
}

func (s *Sealer) seal(dst []byte, reply bool, p *Payload, ext *[ExtSize]byte) ([]byte, error) {
	id, aead := s.Keys.Seal()
	if aead == nil {
		return dst, ErrNoActiveKey
	}
	sc := scratchPool.Get().(*sealScratch)
	defer scratchPool.Put(sc)
	if _, err := io.ReadFull(s.Rand, sc.rnd[:]); err != nil {
		return dst, fmt.Errorf("ping random bytes: %w", err)
	}
	ts, err := s.Stamper.Next()
	if err != nil {
		return dst, err
	}
	copy(p.Random[:], sc.rnd[:RandomSize])
	p.Timestamp = ts
	p.Node = s.Node
	var nonce [NonceSize]byte
	copy(nonce[:], sc.rnd[RandomSize:])
	return sealPayload(dst, reply, id, aead, &nonce, p, ext, sc), nil
}

package pbsauth

import (
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/session"
)

// ChannelPBS is the session channel of a PBS connection (docs/OPENPBS.md
// section 6): its offers and answers, and its transcripts, carry this
// value where IM carries 1 and control 2, so that no key of a PBS
// connection is ever a key of a momgate session.
const ChannelPBS session.Channel = 3

// pbsOffered is the only offer a PBS handshake makes: encrypt alone (PBS
// asks a plugin for encryption or for nothing).
const pbsOffered = session.Mask(1 << session.Encrypt)

// ConnKeys are the two record keys of one encrypted PBS connection, as
// one side uses them.
type ConnKeys struct {
	Send, Recv [session.KeySize]byte
}

// Wipe zeroes the keys.
func (k *ConnKeys) Wipe() { clear(k.Send[:]); clear(k.Recv[:]) }

// ephemeral is one side's X25519 key pair and share for one handshake.
type ephemeral struct {
	priv, pub, share [32]byte
}

func newEphemeral(rnd io.Reader) (ephemeral, error) {
	var e ephemeral
	if _, err := io.ReadFull(rnd, e.share[:]); err != nil {
		return e, fmt.Errorf("%w: session share: %v", ErrInternal, err)
	}
	if _, err := io.ReadFull(rnd, e.priv[:]); err != nil {
		return e, fmt.Errorf("%w: ephemeral key: %v", ErrInternal, err)
	}
	pub, err := curve25519.X25519(e.priv[:], curve25519.Basepoint)
	if err != nil {
		return e, fmt.Errorf("%w: ephemeral key: %v", ErrInternal, err)
	}
	copy(e.pub[:], pub)
	return e, nil
}

func (e *ephemeral) wipe() { clear(e.priv[:]); clear(e.share[:]) }

// encodeOffer is the extension of an encrypted step 1: the layout of
// docs/PROTOCOL.md 6.2 with channel 3 and encrypt offered alone.
func encodeOffer(e *ephemeral) session.Ext {
	var b session.Ext
	b[0], b[1], b[2], b[3] = session.ExtVersion, byte(ChannelPBS), byte(pbsOffered), 0
	copy(b[4:36], e.share[:])
	copy(b[36:68], e.pub[:])
	return b
}

// encodeAnswer is the extension of an encrypted step 2: encrypt chosen.
func encodeAnswer(e *ephemeral) session.Ext {
	b := encodeOffer(e)
	b[3] = byte(session.Encrypt)
	return b
}

// decodeExt checks the extension of an encrypted step 1 (answer false) or
// step 2 and returns the peer's share and ephemeral key. Every failure is
// ErrMalformed: the extension is inside the PING's AEAD, so only a holder
// of the cluster key can send a bad one.
func decodeExt(b *session.Ext, answer bool) (share, pub [32]byte, err error) {
	want := byte(0)
	if answer {
		want = byte(session.Encrypt)
	}
	switch {
	case b[0] != session.ExtVersion:
		return share, pub, fmt.Errorf("%w: session extension version %d, want %d", ErrMalformed, b[0], session.ExtVersion)
	case session.Channel(b[1]) != ChannelPBS:
		return share, pub, fmt.Errorf("%w: session channel %d, a PBS connection is %d", ErrMalformed, b[1], ChannelPBS)
	case session.Mask(b[2]) != pbsOffered:
		return share, pub, fmt.Errorf("%w: offered protections 0x%02x, a PBS connection offers encrypt alone", ErrMalformed, b[2])
	case b[3] != want:
		return share, pub, fmt.Errorf("%w: session extension byte 3 is 0x%02x, want 0x%02x", ErrMalformed, b[3], want)
	}
	copy(share[:], b[4:36])
	copy(pub[:], b[36:68])
	if pub == [32]byte{} {
		return share, pub, fmt.Errorf("%w: session extension without an ephemeral key", ErrMalformed)
	}
	return share, pub, nil
}

// sealedSide is what one side of an encrypted handshake knows when it
// derives the keys: the transcript (both PINGs as sealed and opened), its
// own ephemeral key pair and share, the peer's share and public key.
type sealedSide struct {
	initiator bool
	t         session.Transcript
	own       *ephemeral
	peerShare [32]byte
	peerPub   [32]byte
}

// deriveKeys runs the key schedule of docs/PROTOCOL.md 6.3 on a PBS
// connection's transcript: S0 from the transcript hash over both shares
// and the ephemeral X25519 output, then one key per direction. It wipes
// the private key and the shares.
func deriveKeys(s *sealedSide) (ConnKeys, error) {
	defer s.own.wipe()
	ee, err := curve25519.X25519(s.own.priv[:], s.peerPub[:])
	if err != nil {
		return ConnKeys{}, fmt.Errorf("%w: ephemeral key of low order: %v", ErrMalformed, err)
	}
	var eeb [session.KeySize]byte
	copy(eeb[:], ee)
	clear(ee)
	defer clear(eeb[:])
	shareI, shareR := &s.own.share, &s.peerShare
	if !s.initiator {
		shareI, shareR = shareR, shareI
	}
	th := s.t.Hash()
	s0 := session.InitialSecret(&th, shareI, shareR, &eeb, nil)
	clear(s.peerShare[:])
	i2r, r2i := session.DirectionKeys(&s0)
	clear(s0[:])
	if s.initiator {
		return ConnKeys{Send: i2r, Recv: r2i}, nil
	}
	return ConnKeys{Send: r2i, Recv: i2r}, nil
}

// transcriptOf fills the transcript of an encrypted PBS handshake from the
// two PINGs (ini the step 1 SessionPing, resp the step 2 SessionReply) and
// both ephemeral public keys; the binding hash stays zero, as on IM.
func transcriptOf(ini, resp *ping.Result, iniPub, respPub *[32]byte) session.Transcript {
	return session.Transcript{
		Channel: ChannelPBS, Offered: pbsOffered, Chosen: session.Encrypt,
		InitKeyID: ini.KeyID, RespKeyID: resp.KeyID,
		InitRandom: ini.Random, RespRandom: resp.Random,
		InitTimestamp: ini.Timestamp, RespTimestamp: resp.Timestamp,
		InitAddr: ini.Sender, RespAddr: resp.Sender,
		InitNode: ini.Node, RespNode: resp.Node,
		InitEphemeral: *iniPub, RespEphemeral: *respPub,
	}
}

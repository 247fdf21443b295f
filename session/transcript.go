package session

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// transcriptLabel starts every transcript (domain separation).
const transcriptLabel = "momgate session v1"

// TranscriptSize is the encoded size of a Transcript.
const TranscriptSize = len(transcriptLabel) + 5 + 2*4 + 2*16 + 2*8 + 2*16 + 2*16 + 2*32 + 32

// Transcript is everything the swap established, as both sides saw it: the
// session keys are bound to all of it (section 6.3). "Init" is the side that
// sent the SessionPing, "Resp" the side that answered.
type Transcript struct {
	Channel Channel
	Offered Mask
	Chosen  Protection

	InitKeyID, RespKeyID         uint32 // cluster key ids of the two PINGs
	InitRandom, RespRandom       [ping.RandomSize]byte
	InitTimestamp, RespTimestamp uint64
	InitAddr, RespAddr           proto.Addr
	InitNode, RespNode           proto.NodeID
	InitEphemeral, RespEphemeral [32]byte // zero without Encrypt

	// Binding is the control handshake hash (Binding.Hash); zero on IM.
	Binding [32]byte
}

// Append appends the encoding of section 6.3 to b.
func (t *Transcript) Append(b []byte) []byte {
	b = append(b, transcriptLabel...)
	b = append(b, byte(proto.V2), ExtVersion, byte(t.Channel), byte(t.Offered), byte(t.Chosen))
	b = binary.BigEndian.AppendUint32(b, t.InitKeyID)
	b = binary.BigEndian.AppendUint32(b, t.RespKeyID)
	b = append(b, t.InitRandom[:]...)
	b = append(b, t.RespRandom[:]...)
	b = binary.BigEndian.AppendUint64(b, t.InitTimestamp)
	b = binary.BigEndian.AppendUint64(b, t.RespTimestamp)
	b = append(b, t.InitAddr[:]...)
	b = append(b, t.RespAddr[:]...)
	b = append(b, t.InitNode[:]...)
	b = append(b, t.RespNode[:]...)
	b = append(b, t.InitEphemeral[:]...)
	b = append(b, t.RespEphemeral[:]...)
	return append(b, t.Binding[:]...)
}

// Hash is SHA-256 of the encoding: the transcript hash TH.
func (t *Transcript) Hash() [32]byte {
	var buf [TranscriptSize]byte
	return sha256.Sum256(t.Append(buf[:0]))
}

// newTranscript fills a transcript from the two verified PINGs.
func newTranscript(ch Channel, offered Mask, chosen Protection, init, resp *ping.Result, initEph, respEph *[32]byte, b *Binding) Transcript {
	t := Transcript{
		Channel: ch, Offered: offered, Chosen: chosen,
		InitKeyID: init.KeyID, RespKeyID: resp.KeyID,
		InitRandom: init.Random, RespRandom: resp.Random,
		InitTimestamp: init.Timestamp, RespTimestamp: resp.Timestamp,
		InitAddr: init.Sender, RespAddr: resp.Sender,
		InitNode: init.Node, RespNode: resp.Node,
		InitEphemeral: *initEph, RespEphemeral: *respEph,
	}
	if b != nil {
		t.Binding = b.Hash
	}
	return t
}

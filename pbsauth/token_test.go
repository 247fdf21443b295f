package pbsauth

import (
	"bytes"
	"testing"

	"github.com/momgate/momgate/ping"
)

func sampleVouch() Vouch {
	return Vouch{Echo: [16]byte{1, 2, 3}, Node: [16]byte{15: 11}, Kind: KindService, UID: 0, GID: 0,
		User: "root", Group: "root", NodeName: "pbsn1"}
}

func TestVouchRoundTrip(t *testing.T) {
	keys := newCluster(t, 1, 7)
	id, aead := keys.Seal()
	v := sampleVouch()
	tok, err := SealVouch(&v, id, aead, &[ping.NonceSize]byte{9})
	if err != nil {
		t.Fatal(err)
	}
	got, keyID, err := OpenVouch(tok, keys)
	if err != nil || keyID != 7 || got != v {
		t.Fatalf("got %+v key %d: %v", got, keyID, err)
	}
	// Every byte matters: the header and key id are associated data.
	for i := range tok {
		c := bytes.Clone(tok)
		c[i] ^= 0x01
		if _, _, err := OpenVouch(c, keys); err == nil {
			t.Fatalf("opened with byte %d flipped", i)
		}
	}
	if _, _, err := OpenVouch(tok, newCluster(t, 2, 7)); err == nil {
		t.Fatal("opened under another cluster's key")
	}
	if _, _, err := OpenVouch(append(bytes.Clone(tok), 0), keys); err == nil {
		t.Fatal("opened with a trailing byte")
	}
}

func TestSealVouchChecksFields(t *testing.T) {
	keys := newCluster(t, 1, 7)
	id, aead := keys.Seal()
	for _, f := range []func(v *Vouch){
		func(v *Vouch) { v.User = "" },
		func(v *Vouch) { v.Kind = 3 },
		func(v *Vouch) { v.NodeName = string(make([]byte, MaxNodeNameLen+1)) },
		func(v *Vouch) { v.Group = "a\x00b" },
	} {
		v := sampleVouch()
		f(&v)
		if _, err := SealVouch(&v, id, aead, &[ping.NonceSize]byte{}); err == nil {
			t.Fatalf("sealed %+v", v)
		}
	}
}

func TestUnwrapFrame(t *testing.T) {
	frame := make([]byte, ping.FrameSize)
	tok := WrapFrame(StepPing, frame)
	got, sealed, err := UnwrapFrame(StepPing, tok)
	if err != nil || sealed || !bytes.Equal(got, frame) {
		t.Fatal(err)
	}
	if _, sealed, err := UnwrapFrame(StepPing, WrapFrame(StepPing, make([]byte, ping.ExtFrameSize))); err != nil || !sealed {
		t.Fatalf("a SessionPing-sized step 1: sealed %v, %v", sealed, err)
	}
	if _, _, err := UnwrapFrame(StepReply, WrapFrame(StepReply, make([]byte, ping.ExtFrameSize))); err == nil {
		t.Fatal("a step 2 of a SessionPing's size was unwrapped")
	}
	got[0] = 1
	if tok[tokenHeaderSize] != 0 {
		t.Fatal("UnwrapFrame returned the token's own bytes")
	}
	for _, bad := range [][]byte{tok[:3], tok[:len(tok)-1], WrapFrame(StepReply, frame), append([]byte("MP\x02\x01"), frame...)} {
		if _, _, err := UnwrapFrame(StepPing, bad); err == nil {
			t.Fatalf("unwrapped %x", bad[:4])
		}
	}
}

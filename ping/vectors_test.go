package ping

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"crypto/cipher"

	"golang.org/x/crypto/chacha20poly1305"
)

// The test vectors of docs/PROTOCOL.md section 5. Keep both in step.
const (
	vectorKeyHex   = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	vectorKeyID    = 0x0a1b2c3d
	vectorNonceHex = "404142434445464748494a4b4c4d4e4f5051525354555657"
	vectorRandHex  = "808182838485868788898a8b8c8d8e8f"
	vectorEchoHex  = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
	vectorTS       = 1764000000000000000 // 2025-11-24T16:00:00Z
	vectorNodeHex  = "6ba7b8109dad11d180b400c04fd430c8"
	// Ping plaintext: random | timestamp | sender | dest | node.
	vectorPlainHex = "808182838485868788898a8b8c8d8e8f" + "187afca767ca0000" +
		"00000000000000000000ffff7f000002" + "00000000000000000000ffff7f000003" +
		"6ba7b8109dad11d180b400c04fd430c8"
	vectorPingHex = "4d470210000000740a1b2c3d" +
		"404142434445464748494a4b4c4d4e4f5051525354555657" +
		"54b887f35465ff91077d0d352311eb1d8ac051637493539a6a31fd450904239016f9fd912a928412" +
		"ffb2f44c0adadaf19b6b82171085b49fdd5bb0e48e1f5d85da9ff8b25b677500" +
		"8dcca9cca541257089041615744dbdf9"
	vectorReplyHex = "4d470211000000840a1b2c3d" +
		"404142434445464748494a4b4c4d4e4f5051525354555657" +
		"54b887f35465ff91077d0d352311eb1d8ac051637493539a6a31fd450904239016f9fd912a928412" +
		"ffb2f44c0adadaf19b6b82171085b49fdd5bb0e48e1f5d85da9ff8b25b677500" +
		"25a2125c78dc3a485e6eac808490cad8" + "19eb125990b1274a44aa331508622eb0"
)

func vectorPayload(t *testing.T) Payload {
	var p Payload
	copy(p.Random[:], mustHex(t, vectorRandHex))
	p.Timestamp = vectorTS
	p.Sender = addr("127.0.0.2")
	p.Dest = addr("127.0.0.3")
	copy(p.Node[:], mustHex(t, vectorNodeHex))
	return p
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorPlaintext(t *testing.T) {
	p := vectorPayload(t)
	got := make([]byte, PlainSize)
	encodePayload(got, &p)
	if want := mustHex(t, vectorPlainHex); !bytes.Equal(got, want) {
		t.Fatalf("plaintext:\n got  %x\n want %x", got, want)
	}
}

func TestVectors(t *testing.T) {
	aead, err := chacha20poly1305.NewX(mustHex(t, vectorKeyHex))
	if err != nil {
		t.Fatal(err)
	}
	var nonce [NonceSize]byte
	copy(nonce[:], mustHex(t, vectorNonceHex))
	p := vectorPayload(t)
	cases := []struct {
		name  string
		reply bool
		want  string
	}{
		{"ping", false, vectorPingHex},
		{"reply", true, vectorReplyHex},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := p
			if tc.reply {
				copy(q.Echo[:], mustHex(t, vectorEchoHex))
			}
			got := SealPayload(nil, tc.reply, vectorKeyID, aead, &nonce, &q)
			want := mustHex(t, tc.want)
			if !bytes.Equal(got, want) {
				t.Fatalf("sealed %s:\n got  %x\n want %x", tc.name, got, want)
			}
			keys := &testKeys{active: vectorKeyID, aeads: map[uint32]cipher.AEAD{vectorKeyID: aead}}
			var out Payload
			id, reply, err := Open(bytes.Clone(want), keys, &out)
			if err != nil || id != vectorKeyID || reply != tc.reply || out != q {
				t.Fatalf("open: id %x reply %v err %v payload %+v", id, reply, err, out)
			}
		})
	}
}

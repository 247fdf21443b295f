package proto

import (
	"reflect"
	"testing"
)

func sampleEnrollProof() *EnrollProof {
	p := &EnrollProof{IMPort: 15003, Versions: VersionBitV1 | VersionBitV2}
	copy(p.Secret[:], fill(32, 0x01))
	copy(p.Challenge[:], fill(32, 0x81))
	return p
}

func sampleHelloProof(n int) *HelloProof {
	p := &HelloProof{IMPort: 15004, Versions: VersionBitV2}
	copy(p.Challenge[:], fill(32, 0x33))
	for i := 0; i < n; i++ {
		p.KeyIDs = append(p.KeyIDs, uint32(0x0a1b2c3d+i))
	}
	return p
}

func TestEnrollProof(t *testing.T) {
	p := sampleEnrollProof()
	b := p.Marshal()
	if len(b) != EnrollProofSize {
		t.Fatalf("EnrollProof is %d bytes, want %d", len(b), EnrollProofSize)
	}
	got, err := DecodeEnrollProof(b)
	if err != nil || *got != *p {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"short", b[:EnrollProofSize-1], ErrTruncated},
		{"long", append(p.Marshal(), 0), ErrTrailing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeEnrollProof(tc.b)
			checkSentinel(t, err, tc.want)
		})
	}
}

func TestHelloProof(t *testing.T) {
	for _, n := range []int{0, 1, MaxHeldKeys} {
		p := sampleHelloProof(n)
		b := p.Marshal()
		if len(b) != 36+4*n {
			t.Fatalf("HelloProof with %d keys is %d bytes", n, len(b))
		}
		got, err := DecodeHelloProof(b)
		if err != nil || !reflect.DeepEqual(got, p) {
			t.Fatalf("round trip of %d keys: %+v, %v", n, got, err)
		}
	}
	full := sampleHelloProof(2).Marshal()
	over := sampleHelloProof(MaxHeldKeys + 1).Marshal()
	countOnly := append(sampleHelloProof(0).Marshal()[:35], 200)
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"no count", full[:35], ErrTruncated},
		{"key ids short", full[:len(full)-1], ErrTruncated},
		{"count past the ids", append(sampleHelloProof(0).Marshal()[:35], 3, 0, 0, 0, 1), ErrTruncated},
		{"trailing", append(full, 0), ErrTrailing},
		{"nine keys", over, ErrCountLimit},
		{"count 200", countOnly, ErrCountLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeHelloProof(tc.b)
			checkSentinel(t, err, tc.want)
		})
	}
}

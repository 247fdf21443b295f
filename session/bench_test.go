package session

import (
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// The record layer against the bare AEAD on the same sizes, side by side
// (goal of issue 12: open+verify of a sealed frame >= 0.9x the bare AEAD
// open): BenchmarkOpenRecord/encrypt against BenchmarkBareAEADOpen (the
// same decryption and tag), BenchmarkOpenRecord/auth against
// BenchmarkBareAEADOpenAuth (the same tag over the frame). Each is one
// goroutine: ns/op is per core, and 1e9/(ns/op) frames per second per
// core. Run with `make bench`; the lead records figures on a quiet machine.

var benchSizes = []struct {
	name string
	n    int
}{{"256B", 256}, {"64KiB", 64 << 10}}

// BenchmarkBareAEADOpen is the floor: ChaCha20-Poly1305 open of a frame of
// the size, with an 8-byte header as associated data, into a reused buffer.
func BenchmarkBareAEADOpen(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			aead, err := chacha20poly1305.New(make([]byte, KeySize))
			if err != nil {
				b.Fatal(err)
			}
			nonce := make([]byte, chacha20poly1305.NonceSize)
			ad := make([]byte, 8)
			sealed := aead.Seal(nil, nonce, make([]byte, sz.n), ad)
			dst := make([]byte, 0, sz.n)
			b.ReportAllocs()
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := aead.Open(dst, nonce, sealed, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBareAEADOpenAuth is the floor of an auth record: the same
// AEAD verifying a tag over the frame as associated data (nothing to
// decrypt), as an auth record is opened.
func BenchmarkBareAEADOpenAuth(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			aead, err := chacha20poly1305.New(make([]byte, KeySize))
			if err != nil {
				b.Fatal(err)
			}
			nonce := make([]byte, chacha20poly1305.NonceSize)
			ad := make([]byte, 8+sz.n)
			tag := aead.Seal(nil, nonce, nil, ad)
			b.ReportAllocs()
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				if _, err := aead.Open(nil, nonce, tag, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkOpenRecord is the full receive path of one sealed frame:
// header check, counter, open, inner frame check, limits. The receiver's
// counter is reset before each open so one record serves every iteration.
func BenchmarkOpenRecord(b *testing.B) {
	for _, p := range []Protection{Encrypt, Auth} {
		for _, sz := range benchSizes {
			b.Run(p.String()+"/"+sz.name, func(b *testing.B) {
				a, r, clock := sessionPair(b, p, Limits{})
				rec, err := a.SealFrame(nil, imFrame(sz.n, 1), clock.Now())
				if err != nil {
					b.Fatal(err)
				}
				now := clock.Now()
				b.ReportAllocs()
				b.SetBytes(int64(sz.n))
				for b.Loop() {
					r.rx.next = 0
					if f, _, err := r.OpenRecord(rec, nil, now); err != nil || len(f) != sz.n {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkBareAEADSeal and BenchmarkSealFrame are the send side.
func BenchmarkBareAEADSeal(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			aead, err := chacha20poly1305.New(make([]byte, KeySize))
			if err != nil {
				b.Fatal(err)
			}
			nonce := make([]byte, chacha20poly1305.NonceSize)
			plain, ad := make([]byte, sz.n), make([]byte, 8)
			dst := make([]byte, 0, sz.n+TagSize)
			b.ReportAllocs()
			b.SetBytes(int64(sz.n))
			for b.Loop() {
				aead.Seal(dst, nonce, plain, ad)
			}
		})
	}
}

func BenchmarkSealFrame(b *testing.B) {
	for _, p := range []Protection{Encrypt, Auth} {
		for _, sz := range benchSizes {
			b.Run(p.String()+"/"+sz.name, func(b *testing.B) {
				a, _, clock := sessionPair(b, p, Limits{})
				f := imFrame(sz.n, 1)
				dst := make([]byte, 0, sz.n+RecordOverhead)
				now := clock.Now()
				b.ReportAllocs()
				b.SetBytes(int64(sz.n))
				for b.Loop() {
					if _, err := a.SealFrame(dst, f, now); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkSwap is a whole session swap in memory (both sides' PING seal
// and checks, X25519 and HKDF), without sockets.
func BenchmarkSwap(b *testing.B) {
	for _, p := range []Protection{Auth, Encrypt} {
		b.Run(p.String(), func(b *testing.B) {
			pa, pb := newPair(b)
			b.ReportAllocs()
			for b.Loop() {
				swap(b, pa, pb, imConfig(p, 1), imConfig(p, 2<<40))
			}
		})
	}
	// Both sides reuse their ephemeral keys, as MOMs do (Ephemerals):
	// after the first swap no X25519 at all.
	b.Run("encrypt-reused", func(b *testing.B) {
		pa, pb := newPair(b)
		ca, cb := imConfig(Encrypt, 1), imConfig(Encrypt, 2<<40)
		for _, c := range []*Config{&ca, &cb} {
			e, err := NewEphemerals(EphemeralConfig{Rand: &countingRand{n: 5}, Now: pa.clock.Now})
			if err != nil {
				b.Fatal(err)
			}
			c.Ephemerals = e
		}
		b.ReportAllocs()
		for b.Loop() {
			swap(b, pa, pb, ca, cb)
		}
	})
}

// BenchmarkX25519 is one ephemeral key pair and one exchange, half of what
// each side of a session swap with forward secrecy computes (four
// X25519 scalar multiplications per swap in all, two per side): the floor
// under the session swap rate that momgate-bench measures.
func BenchmarkX25519(b *testing.B) {
	rnd := &countingRand{n: 1}
	peer, err := newEphemeral(rnd)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		e, err := newEphemeral(rnd)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.shared(&peer.pub); err != nil {
			b.Fatal(err)
		}
	}
}

package ping

import (
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkBareAEADOpen is the floor: XChaCha20-Poly1305 open of a 72-byte
// plaintext with 12 bytes of associated data, as a PING carries.
func BenchmarkBareAEADOpen(b *testing.B) {
	key := make([]byte, chacha20poly1305.KeySize)
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, NonceSize)
	ad := make([]byte, adSize)
	sealed := aead.Seal(nil, nonce, make([]byte, PlainSize), ad)
	dst := make([]byte, 0, PlainSize)
	b.ReportAllocs()
	b.SetBytes(int64(FrameSize))
	for b.Loop() {
		if _, err := aead.Open(dst, nonce, sealed, ad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyPing is the full receive path: copy the frame out of the
// read buffer, open, check every field, advance the high-water mark.
// Frames are sealed in batches outside the timer, each newer than the last,
// from 64 senders, so every timed call is an admission.
func BenchmarkVerifyPing(b *testing.B) {
	keys := newTestKeys(b, 7)
	clock := &fakeClock{t: epoch}
	recv := addr("127.0.0.3")
	v := &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{}, nil), Revoker: &DenyList{}, Now: clock.Now}
	const senders, batch = 64, 4096
	eps := make([]*endpoint, senders)
	for i := range eps {
		eps[i] = newEndpoint(b, keys, "127.0.2."+itoa(i+1), byte(i+1), clock)
	}
	frames := make([][]byte, batch)
	for i := range frames {
		frames[i] = make([]byte, 0, FrameSize)
	}
	work := make([]byte, FrameSize)
	refill := func() {
		for i := range frames {
			e := eps[i%senders]
			frames[i], _, _ = e.sealer.Ping(frames[i][:0], e.addr, recv)
		}
	}
	var res Result
	b.ReportAllocs()
	b.SetBytes(int64(FrameSize))
	i := batch
	for b.Loop() {
		if i == batch {
			b.StopTimer()
			refill()
			i = 0
			b.StartTimer()
		}
		copy(work, frames[i])
		if err := v.VerifyPing(work, eps[i%senders].addr, recv, &res); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkSealPing is the send path with crypto/rand.
func BenchmarkSealPing(b *testing.B) {
	keys := newTestKeys(b, 7)
	clock := &fakeClock{t: epoch}
	e := newEndpoint(b, keys, "127.0.0.2", 2, clock)
	e.sealer.Rand = cryptoRand
	dst := make([]byte, 0, FrameSize)
	recv := addr("127.0.0.3")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := e.sealer.Ping(dst[:0], e.addr, recv); err != nil {
			b.Fatal(err)
		}
	}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

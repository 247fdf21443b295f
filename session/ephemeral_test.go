package session

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/hkdf"

	"github.com/momgate/momgate/ping"
)

// TestWipeECDHKey: erasing an ephemeral overwrites the private scalar
// inside crypto/ecdh's key, not only the package's references to it.
func TestWipeECDHKey(t *testing.T) {
	e, err := newEphemeral(&countingRand{n: 5})
	if err != nil {
		t.Fatal(err)
	}
	k := e.key
	if isZero((*[32]byte)(k.Bytes())) {
		t.Fatal("private key is zero before the wipe")
	}
	e.zero()
	if e.key != nil {
		t.Fatal("ephemeral keeps its key after zero")
	}
	if b := k.Bytes(); !isZero((*[32]byte)(b)) {
		t.Fatalf("crypto/ecdh key still holds %x after the wipe (has crypto/ecdh.PrivateKey changed its layout?)", b)
	}
	if _, err := e.shared(&e.pub); err == nil {
		t.Fatal("an erased ephemeral computed an exchange")
	}
	e.zero() // idempotent
}

// pooledConfig is imConfig(Encrypt) with an Ephemerals on the pair's clock.
func pooledConfig(t *testing.T, clock *fakeClock, seed uint64, ec EphemeralConfig) (Config, *Ephemerals) {
	t.Helper()
	ec.Rand, ec.Now = &countingRand{n: seed ^ 0x77}, clock.Now
	p, err := NewEphemerals(ec)
	if err != nil {
		t.Fatal(err)
	}
	cfg := imConfig(Encrypt, seed)
	cfg.Ephemerals = p
	return cfg, p
}

// swapKeys runs a swap and returns the initiator's ephemeral public key
// and both sessions.
func swapKeys(t *testing.T, a, b *peer, ca, cb Config) (ia [32]byte, sa, sb *Session) {
	t.Helper()
	in, frame := sessionPing(t, a, b, ca)
	ia = in.offer.Ephemeral
	var res ping.Result
	reply, sb, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr, cb, b.clock.Now(), &res)
	if err != nil {
		t.Fatalf("respond: %v", err)
	}
	sa, err = in.Finish(reply, a.verif, b.addr, a.addr, a.clock.Now(), &res)
	if err != nil {
		t.Fatalf("finish: %v", err)
	}
	return ia, sa, sb
}

// TestEphemeralsReuse: swaps between two sides that reuse their ephemeral
// keys cost one exchange per side for the first swap and none after it,
// and every session still has keys of its own.
func TestEphemeralsReuse(t *testing.T) {
	pa, pb := newPair(t)
	ca, ea := pooledConfig(t, pa.clock, 1, EphemeralConfig{})
	cb, eb := pooledConfig(t, pb.clock, 2<<40, EphemeralConfig{})
	var sessions [][2]*Session
	var offers [][32]byte
	for range 3 {
		ia, sa, sb := swapKeys(t, pa, pb, ca, cb)
		if sa == nil || sb == nil || sa.Protection() != Encrypt {
			t.Fatal("no encrypt session")
		}
		exchange(t, sa, sb, pa.clock)
		sessions, offers = append(sessions, [2]*Session{sa, sb}), append(offers, ia)
	}
	if offers[0] != offers[1] || offers[1] != offers[2] {
		t.Fatal("the initiator did not reuse its ephemeral key")
	}
	for _, p := range []*Ephemerals{ea, eb} {
		st := p.Stats()
		if st.Made != 1 || st.Uses != 3 || st.Exchanges != 1 || st.CacheHits != 2 {
			t.Fatalf("stats %+v: want one key, 3 uses, 1 exchange, 2 cache hits", st)
		}
	}
	// Unique keys per session: a record of the first session does not
	// open in the second.
	rec, err := sessions[0][0].SealFrame(nil, imFrame(64, 1), pa.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sessions[1][1].OpenRecord(rec, nil, pb.clock.Now()); !errors.Is(err, ErrAuth) {
		t.Fatalf("a record of one session opened in another: %v", err)
	}
}

// TestEphemeralsLifetime: a key serves swaps until Lifetime-Hold after its
// first swap, is erased by Lifetime, and Maintain makes the next one ahead
// so the swap that follows makes none itself.
func TestEphemeralsLifetime(t *testing.T) {
	clock := &fakeClock{t: epoch}
	p, err := NewEphemerals(EphemeralConfig{Rand: &countingRand{n: 9}, Now: clock.Now, Lifetime: 20 * time.Second, Hold: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if d, err := p.Maintain(); err != nil || !d.IsZero() {
		t.Fatalf("maintain: %v, deadline %v (want none before a swap)", d, err)
	}
	k1, err := p.acquire()
	if err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Made != 1 || st.MadeInline != 0 {
		t.Fatalf("stats %+v: the first swap should take the key made ahead", st)
	}
	select {
	case <-p.Wanted():
	default:
		t.Fatal("taking the ready key into service did not ask for the next")
	}
	d, err := p.Maintain()
	if err != nil || !d.Equal(epoch.Add(15*time.Second)) {
		t.Fatalf("deadline %v, %v: want the end of service at +15s", d, err)
	}
	peerKey, err := newEphemeral(&countingRand{n: 10})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := p.shared(k1, &peerKey.pub)
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(14 * time.Second)
	if k, _ := p.acquire(); k != k1 {
		t.Fatal("a key still in service was replaced")
	}
	clock.Add(time.Second) // +15 s: retired
	k2, err := p.acquire()
	if err != nil || k2 == k1 {
		t.Fatalf("a key past its service time still served: %v", err)
	}
	// Retired at +15 s: still usable by the swaps that hold it until
	// +20 s (hold 5 s), from the cache or not.
	if s, err := p.shared(k1, &peerKey.pub); err != nil || s != s1 {
		t.Fatalf("held key: %v", err)
	}
	d, _ = p.Maintain()
	if !d.Equal(epoch.Add(20 * time.Second)) {
		t.Fatalf("deadline %v: want the erasure of the old key at +20s", d)
	}
	clock.Add(5 * time.Second)
	if _, err := p.Maintain(); err != nil {
		t.Fatal(err)
	}
	if !k1.erased || k1.e.key != nil || k1.cache != nil {
		t.Fatal("the old key is not erased at its deadline")
	}
	if _, err := p.shared(k1, &peerKey.pub); !errors.Is(err, ErrExpired) {
		t.Fatalf("exchange with an erased key: %v, want ErrExpired", err)
	}
	if st := p.Stats(); st.Erased != 1 || st.MadeInline != 0 {
		t.Fatalf("stats %+v", st)
	}
	p.Close()
	if !k2.erased {
		t.Fatal("Close left a key")
	}
}

// TestEphemeralsMaxUses: a key serves at most MaxUses swaps.
func TestEphemeralsMaxUses(t *testing.T) {
	clock := &fakeClock{t: epoch}
	p, err := NewEphemerals(EphemeralConfig{Rand: &countingRand{n: 9}, Now: clock.Now, MaxUses: 3})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[*ephKey]int{}
	for range 7 {
		k, err := p.acquire()
		if err != nil {
			t.Fatal(err)
		}
		seen[k]++
	}
	if len(seen) != 3 {
		t.Fatalf("7 swaps with 3 uses per key used %d keys", len(seen))
	}
	for _, n := range seen {
		if n > 3 {
			t.Fatalf("a key served %d swaps", n)
		}
	}
	// Retired after its third swap, erased Hold later.
	clock.Add(DefaultEphemeralHold)
	if _, err := p.Maintain(); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.Erased != 2 {
		t.Fatalf("stats %+v: want the two used-up keys erased", st)
	}
}

// TestEphemeralsSlowSwap: an initiator whose key was erased before the
// reply came fails with ErrExpired, never with a wrong secret.
func TestEphemeralsSlowSwap(t *testing.T) {
	pa, pb := newPair(t)
	ca, ea := pooledConfig(t, pa.clock, 1, EphemeralConfig{Lifetime: 20 * time.Second, Hold: 5 * time.Second})
	in, frame := sessionPing(t, pa, pb, ca)
	var res ping.Result
	reply, _, err := Respond(nil, frame, pb.sealer, pb.verif, pa.addr, pb.addr, imConfig(Encrypt, 2<<40), pb.clock.Now(), &res)
	if err != nil {
		t.Fatal(err)
	}
	pa.clock.Add(20 * time.Second)
	if _, err := ea.Maintain(); err != nil {
		t.Fatal(err)
	}
	if _, err := in.Finish(reply, pa.verif, pb.addr, pa.addr, pa.clock.Now(), &res); !errors.Is(err, ErrExpired) {
		t.Fatalf("finish with an erased key: %v, want ErrExpired", err)
	}
}

// TestEphemeralsCacheBound: a key keeps at most CacheSize outputs.
func TestEphemeralsCacheBound(t *testing.T) {
	clock := &fakeClock{t: epoch}
	p, err := NewEphemerals(EphemeralConfig{Rand: &countingRand{n: 9}, Now: clock.Now, CacheSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	k, err := p.acquire()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		e, err := newEphemeral(&countingRand{n: uint64(100 + i)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.shared(k, &e.pub); err != nil {
			t.Fatal(err)
		}
		if len(k.cache) > 2 {
			t.Fatalf("cache of %d entries, bound 2", len(k.cache))
		}
	}
	var low [32]byte // the identity: low order, refused and not kept
	if _, err := p.shared(k, &low); err == nil {
		t.Fatal("a low-order key was accepted")
	}
	if st := p.Stats(); st.Exchanges != 5 || st.CacheHits != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestEphemeralsConcurrent runs swaps' key use beside the owner's
// maintenance and expiry (go test -race).
func TestEphemeralsConcurrent(t *testing.T) {
	clock := &fakeClock{t: epoch}
	p, err := NewEphemerals(EphemeralConfig{Rand: &countingRand{n: 9}, Now: clock.Now, MaxUses: 5, Lifetime: 2 * time.Second, Hold: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	peers := make([][32]byte, 4)
	for i := range peers {
		e, err := newEphemeral(&countingRand{n: uint64(200 + i)})
		if err != nil {
			t.Fatal(err)
		}
		peers[i] = e.pub
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				k, err := p.acquire()
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := p.shared(k, &peers[(g+i)%len(peers)]); err != nil && !errors.Is(err, ErrExpired) {
					t.Error(err)
					return
				}
			}
		}()
	}
	for range 50 {
		clock.Add(100 * time.Millisecond)
		if _, err := p.Maintain(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	p.Close()
	if st := p.Stats(); st.Uses != 200 || st.Erased != st.Made {
		t.Fatalf("stats %+v: want 200 uses and every key made erased", st)
	}
}

// TestScheduleMatchesHKDF: the schedule's HMAC steps are HKDF-SHA256 of
// golang.org/x/crypto/hkdf, for the lengths the schedule uses.
func TestScheduleMatchesHKDF(t *testing.T) {
	rnd := &countingRand{n: 3}
	for range 50 {
		var salt, ikm, info [96]byte
		_, _ = rnd.Read(salt[:])
		_, _ = rnd.Read(ikm[:])
		_, _ = rnd.Read(info[:])
		for _, n := range []int{0, 32, 64, 96} {
			want := hkdf.Extract(sha256.New, ikm[:n], salt[:32])
			got := extract(salt[:32], ikm[:n])
			if !bytes.Equal(got[:], want) {
				t.Fatalf("extract over %d bytes: %x, hkdf %x", n, got, want)
			}
			var w [KeySize]byte
			if _, err := io.ReadFull(hkdf.Expand(sha256.New, want, info[:n]), w[:]); err != nil {
				t.Fatal(err)
			}
			if e := expand(want, info[:n]); e != w {
				t.Fatalf("expand with %d bytes of info: %x, hkdf %x", n, e, w)
			}
		}
		var s [KeySize]byte
		copy(s[:], salt[:])
		a, b := DirectionKeys(&s)
		var wa, wb [KeySize]byte
		_, _ = io.ReadFull(hkdf.Expand(sha256.New, s[:], []byte(labelI2R)), wa[:])
		_, _ = io.ReadFull(hkdf.Expand(sha256.New, s[:], []byte(labelR2I)), wb[:])
		if a != wa || b != wb {
			t.Fatal("direction keys differ from hkdf's")
		}
	}
}

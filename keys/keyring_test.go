package keys

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"
)

func TestNewKey(t *testing.T) {
	now := t0.Add(1500 * time.Millisecond)
	k, err := NewKey(&countingRand{}, now, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want [32]byte
	for i := range want {
		want[i] = byte(i + 1)
	}
	if k.Secret != want || k.ID != 0x21222324 || k.State != StateNext || !k.Created.Equal(t0.Add(time.Second)) {
		t.Fatalf("NewKey = id %s state %s created %v secret %x", k.ID, k.State, k.Created, k.Secret)
	}
	// Taken ids (and 0) are skipped.
	k, err = NewKey(&countingRand{}, now, func(id KeyID) bool { return id == 0x21222324 })
	if err != nil || k.ID != 0x25262728 {
		t.Fatalf("with the first id taken: %v, %v", k, err)
	}
	if _, err := NewKey(zeroRand{}, now, nil); err == nil {
		t.Fatal("an id source that only gives 0 succeeded")
	}
	if _, err := NewKey(&failRand{n: 10}, now, nil); !errors.Is(err, errRand) {
		t.Fatalf("secret read failure: %v", err)
	}
	if _, err := NewKey(&failRand{n: 34}, now, nil); !errors.Is(err, errRand) {
		t.Fatalf("id read failure: %v", err)
	}
}

func TestKeyIDAndState(t *testing.T) {
	id, err := ParseKeyID("0a1b2c3d")
	if err != nil || id != 0x0a1b2c3d || id.String() != "0a1b2c3d" {
		t.Fatalf("ParseKeyID = %v, %v", id, err)
	}
	for _, bad := range []string{"", "0a1b2c3", "0a1b2c3d0", "00000000", "0x1b2c3d", "0a1b2c3g", "-a1b2c3d", "+a1b2c3d"} {
		if _, err := ParseKeyID(bad); err == nil {
			t.Errorf("ParseKeyID(%q) succeeded", bad)
		}
	}
	for s := StateNext; s <= StateRetired; s++ {
		got, err := ParseState(s.String())
		if err != nil || got != s {
			t.Errorf("ParseState(%q) = %v, %v", s.String(), got, err)
		}
	}
	if State(0).String() != "State(0)" || State(9).String() != "State(9)" {
		t.Errorf("unknown states print as %q, %q", State(0), State(9))
	}
	for _, bad := range []string{"", "Active", "State(0)", "zero"} {
		if _, err := ParseState(bad); err == nil {
			t.Errorf("ParseState(%q) succeeded", bad)
		}
	}
}

func TestKeyAEADAndZero(t *testing.T) {
	k := testKey(5, StateActive, t0)
	a := k.AEAD()
	if a == nil || k.AEAD() != a {
		t.Fatal("AEAD not made once")
	}
	nonce := make([]byte, a.NonceSize())
	sealed := a.Seal(nil, nonce, []byte("hello"), nil)
	k.Zero()
	if k.Secret != [32]byte{} || k.aead != nil {
		t.Fatal("Zero left the secret or the AEAD")
	}
	if _, err := k.AEAD().Open(nil, nonce, sealed, nil); err == nil {
		t.Fatal("the zeroed key still opens")
	}
}

// TestKeyringLifecycle walks a key through next, active, previous and
// retired, checking each ring and that earlier rings never change.
func TestKeyringLifecycle(t *testing.T) {
	must := ringMust(t)
	a, b, c := testKey(0xa, StateNext, t0), testKey(0xb, StateNext, t0.Add(time.Hour)), testKey(0xc, StateNext, t0.Add(2*time.Hour))
	r0 := NewKeyring()
	r1 := must(r0.AddNext(a))
	r2 := must(r1.Activate(0xa))
	r3 := must(r2.AddNext(b))
	r4 := must(r3.Activate(0xb))
	r5 := must(r4.AddNext(c))
	r6 := must(r5.Activate(0xc)) // a was previous: retired (dropped)
	r7 := must(r6.Retire(0xb))
	steps := []struct {
		name string
		r    *Keyring
		want map[KeyID]State
	}{
		{"empty", r0, map[KeyID]State{}},
		{"a next", r1, map[KeyID]State{0xa: StateNext}},
		{"a active", r2, map[KeyID]State{0xa: StateActive}},
		{"b next", r3, map[KeyID]State{0xa: StateActive, 0xb: StateNext}},
		{"b active, a previous", r4, map[KeyID]State{0xa: StatePrevious, 0xb: StateActive}},
		{"c next", r5, map[KeyID]State{0xa: StatePrevious, 0xb: StateActive, 0xc: StateNext}},
		{"c active, b previous, a retired", r6, map[KeyID]State{0xb: StatePrevious, 0xc: StateActive}},
		{"b retired", r7, map[KeyID]State{0xc: StateActive}},
	}
	for _, s := range steps {
		if got := states(s.r); !maps.Equal(got, s.want) {
			t.Errorf("%s: ring %v, want %v", s.name, got, s.want)
		}
		if s.r.Len() != len(s.want) {
			t.Errorf("%s: Len %d", s.name, s.r.Len())
		}
	}
	if r6.Active().ID != 0xc || r6.Next() != nil || r5.Next().ID != 0xc || r0.Active() != nil {
		t.Errorf("Active/Next wrong")
	}
	if r6.Lookup(0xa) != nil || r4.Lookup(0xa) == nil || r4.Lookup(0xa).State != StatePrevious {
		t.Errorf("Lookup of a retired / previous key wrong")
	}
	// The caller's key is not changed by being added in another state.
	if a.State != StateNext {
		t.Errorf("AddNext changed the caller's key to %s", a.State)
	}
	// Every key in a ring has its AEAD ready (the hot path does not make it).
	for _, k := range r5.Keys() {
		if k.aead == nil {
			t.Errorf("key %s in a ring has no AEAD", k.ID)
		}
	}
}

func TestKeyringOrder(t *testing.T) {
	r := NewKeyring()
	var err error
	for i, k := range []*Key{
		testKey(1, StatePrevious, t0.Add(3*time.Hour)),
		testKey(2, StateNext, t0),
		testKey(3, StatePrevious, t0.Add(time.Hour)),
		testKey(4, StateActive, t0.Add(5*time.Hour)),
	} {
		if r, err = r.WithKey(k); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
	}
	var ids []KeyID
	for _, k := range r.Keys() {
		ids = append(ids, k.ID)
	}
	if want := []KeyID{4, 2, 3, 1}; !equalIDs(ids, want) {
		t.Fatalf("order %v, want active, next, then previous by creation %v", ids, want)
	}
	// Keys returns a copy.
	ks := r.Keys()
	ks[0] = nil
	if r.Keys()[0] == nil {
		t.Fatal("Keys exposes the ring's slice")
	}
}

func equalIDs(a, b []KeyID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestKeyringInvalidTransitions(t *testing.T) {
	must := ringMust(t)
	active := must(must(NewKeyring().AddNext(testKey(1, StateNext, t0))).Activate(1))
	withNext := must(active.AddNext(testKey(2, StateNext, t0)))
	withPrev := must(withNext.Activate(2)) // 1 previous, 2 active

	cases := []struct {
		name string
		do   func() (*Keyring, error)
		want error
	}{
		{"second next key", func() (*Keyring, error) { return withNext.AddNext(testKey(3, StateNext, t0)) }, ErrBadTransition},
		{"add an id already held", func() (*Keyring, error) { return active.AddNext(testKey(1, StateNext, t0)) }, ErrDuplicateKey},
		{"add key id 0", func() (*Keyring, error) { return active.AddNext(testKey(0, StateNext, t0)) }, ErrBadTransition},
		{"activate unknown", func() (*Keyring, error) { return active.Activate(9) }, ErrNoSuchKey},
		{"activate previous", func() (*Keyring, error) { return withPrev.Activate(1) }, ErrBadTransition},
		{"retire the active key", func() (*Keyring, error) { return withPrev.Retire(2) }, ErrBadTransition},
		{"second active key", func() (*Keyring, error) { return active.WithKey(testKey(5, StateActive, t0)) }, ErrBadTransition},
		{"key in state retired", func() (*Keyring, error) { return active.WithKey(testKey(5, StateRetired, t0)) }, ErrBadTransition},
		{"key in state 0", func() (*Keyring, error) { return active.WithKey(testKey(5, 0, t0)) }, ErrBadTransition},
		{"key in state 9", func() (*Keyring, error) { return active.WithKey(testKey(5, 9, t0)) }, ErrBadTransition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := tc.do()
			if r != nil || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", r, err, tc.want)
			}
		})
	}
	// Rings are unchanged by refused transitions.
	if got := states(withPrev); !maps.Equal(got, map[KeyID]State{1: StatePrevious, 2: StateActive}) {
		t.Fatalf("ring changed: %v", got)
	}
}

func TestKeyringIdempotentAfterCrash(t *testing.T) {
	must := ringMust(t)
	r := must(must(NewKeyring().AddNext(testKey(1, StateNext, t0))).Activate(1))
	if again, err := r.Activate(1); err != nil || again != r {
		t.Fatalf("repeated activate: %v, %v", again, err)
	}
	if again, err := r.Retire(77); err != nil || again != r {
		t.Fatalf("retire of an unknown key: %v, %v", again, err)
	}
	// An abandoned next key can be retired.
	n := must(r.AddNext(testKey(2, StateNext, t0)))
	if got := states(must(n.Retire(2))); !maps.Equal(got, map[KeyID]State{1: StateActive}) {
		t.Fatalf("after retiring the next key: %v", got)
	}
}

func TestKeyringMaxKeys(t *testing.T) {
	must := ringMust(t)
	r := must(NewKeyring().WithKey(testKey(1, StateActive, t0)))
	for i := 2; i <= MaxKeys; i++ {
		r = must(r.WithKey(testKey(KeyID(i), StatePrevious, t0.Add(time.Duration(i)*time.Minute))))
	}
	if r.Len() != MaxKeys {
		t.Fatalf("%d keys", r.Len())
	}
	if got, err := r.AddNext(testKey(100, StateNext, t0)); got != nil || !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("key %d: %v, %v", MaxKeys+1, got, err)
	}
	if got, err := r.WithKey(testKey(100, StatePrevious, t0)); got != nil || !errors.Is(err, ErrTooManyKeys) {
		t.Fatalf("key %d: %v, %v", MaxKeys+1, got, err)
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	must := ringMust(t)
	r := must(NewKeyring().WithKey(testKey(1, StateActive, t0)))
	r = must(r.WithKey(testKey(2, StatePrevious, t0)))
	h := NewHolder(r)
	if n := testing.AllocsPerRun(100, func() {
		_ = r.Lookup(2)
		_ = r.Lookup(3)
		_ = h.Open(2)
		_, _ = h.Seal()
	}); n != 0 {
		t.Fatalf("Lookup/Open/Seal allocate %v times", n)
	}
}

func TestHolder(t *testing.T) {
	must := ringMust(t)
	if id, a := NewHolder(NewKeyring()).Seal(); id != 0 || a != nil {
		t.Fatalf("Seal of an empty ring = %d, %v", id, a)
	}
	r1 := must(must(NewKeyring().AddNext(testKey(1, StateNext, t0))).Activate(1))
	r2 := must(r1.AddNext(testKey(2, StateNext, t0)))
	h := NewHolder(r1)
	if h.Load() != r1 || h.Open(2) != nil || h.Open(1) == nil {
		t.Fatal("holder of r1 wrong")
	}
	h.Store(r2)
	if h.Load() != r2 || h.Open(2) == nil {
		t.Fatal("holder of r2 wrong")
	}
	if id, a := h.Seal(); id != 1 || a != r2.Lookup(1).AEAD() {
		t.Fatalf("Seal = %d, %v", id, a)
	}
	// A holder made empty and filled later: Store of the first ring.
	var empty Holder
	empty.Store(r1)
	if empty.Load() != r1 {
		t.Fatal("Store into a zero Holder")
	}
}

// TestHolderStoreZeroesRetired: a key that leaves the ring has its secret
// zeroed; keys that stay keep theirs; an AEAD a reader already holds keeps
// working (it is left to the garbage collector).
func TestHolderStoreZeroesRetired(t *testing.T) {
	must := ringMust(t)
	a, b, c := testKey(0xa, StateNext, t0), testKey(0xb, StateNext, t0), testKey(0xc, StateNext, t0)
	secretB := b.Secret
	r := must(must(NewKeyring().AddNext(a)).Activate(0xa))
	r = must(must(r.AddNext(b)).Activate(0xb)) // a previous
	h := NewHolder(r)
	heldA := r.Lookup(0xa)
	aeadA := h.Open(0xa)
	nonce := make([]byte, aeadA.NonceSize())
	sealed := aeadA.Seal(nil, nonce, []byte("in flight"), nil)

	next := must(must(r.AddNext(c)).Activate(0xc)) // a retired, b previous
	h.Store(next)
	if heldA.Secret != [32]byte{} {
		t.Fatal("retired key's secret was not zeroed")
	}
	if h.Open(0xa) != nil {
		t.Fatal("retired key still accepted")
	}
	if got := r.Lookup(0xb).Secret; got != secretB || next.Lookup(0xb).Secret != secretB {
		t.Fatal("a key still held lost its secret")
	}
	if plain, err := aeadA.Open(nil, nonce, sealed, nil); err != nil || string(plain) != "in flight" {
		t.Fatalf("an AEAD a reader held broke: %v", err)
	}

	// Retire of the previous key b through the holder zeroes it too.
	heldB := next.Lookup(0xb)
	h.Store(must(next.Retire(0xb)))
	if heldB.Secret != [32]byte{} {
		t.Fatal("retired previous key's secret was not zeroed")
	}
	if h.Load().Lookup(0xc).Secret == [32]byte{} {
		t.Fatal("the active key was zeroed")
	}
}

// TestHolderConcurrent: readers Open and Seal while a writer rotates keys
// for as long as they read; run with -race. A reader that sealed with a
// key id either finds that id no longer accepted or opens what it sealed.
func TestHolderConcurrent(t *testing.T) {
	must := ringMust(t)
	const readers, reads, maxRotations = 4, 2000, 1_000_000
	first := must(must(NewKeyring().AddNext(testKey(1, StateNext, t0))).Activate(1))
	h := NewHolder(first)
	errc := make(chan error, readers)
	var wg sync.WaitGroup
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nonce := make([]byte, 24)
			for range reads {
				id, a := h.Seal()
				if a == nil {
					errc <- errors.New("no active key during rotation")
					return
				}
				sealed := a.Seal(nil, nonce, []byte("ping"), nil)
				if o := h.Open(id); o != nil {
					if p, err := o.Open(nil, nonce, sealed, nil); err != nil || !bytes.Equal(p, []byte("ping")) {
						errc <- fmt.Errorf("key %08x opened with a different key", id)
						return
					}
				}
			}
		}()
	}
	readersDone := make(chan struct{})
	go func() { wg.Wait(); close(readersDone) }()

	r, rotations := first, 0
rotate:
	for i := KeyID(2); rotations < maxRotations; i++ {
		select {
		case <-readersDone:
			break rotate
		default:
		}
		r = must(r.AddNext(testKey(i, StateNext, t0)))
		h.Store(r)
		r = must(r.Activate(i))
		h.Store(r)
		r = must(r.Retire(i - 1))
		h.Store(r)
		rotations++
	}
	<-readersDone
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if rotations == 0 || h.Load().Active().ID != KeyID(1+rotations) || h.Load().Len() != 1 {
		t.Fatalf("after %d rotations: ring %v", rotations, states(h.Load()))
	}
	t.Logf("%d reads during %d rotations", readers*reads, rotations)
}

package keys

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"
)

func TestWrapUnwrap(t *testing.T) {
	server, node := testIdentity(t, 1), testIdentity(t, 2)
	now := t0.Add(2500 * time.Millisecond)
	for _, st := range []State{StateNext, StateActive, StatePrevious} {
		k := testKey(0x0a1b2c3d, StateActive, t0)
		wk, err := Wrap(&countingRand{n: 9}, k, st, &node.Public, &server.Private)
		if err != nil {
			t.Fatal(err)
		}
		if wk.ID != k.ID || wk.State != st || len(wk.Sealed) != 53 {
			t.Fatalf("wrapped header %s %s, %d sealed bytes", wk.ID, wk.State, len(wk.Sealed))
		}
		got, err := Unwrap(wk, &server.Public, &node.Private, now)
		if err != nil {
			t.Fatalf("unwrap %s: %v", st, err)
		}
		if got.ID != k.ID || got.State != st || got.Secret != k.Secret || !got.Created.Equal(t0.Add(2*time.Second)) || got.aead == nil {
			t.Fatalf("unwrapped %s %s created %v", got.ID, got.State, got.Created)
		}
	}
	// The precomputed Wrapper and the one-shot functions agree.
	k := testKey(7, StateNext, t0)
	w1, _ := NewWrapper(&node.Public, &server.Private).Wrap(&countingRand{n: 3}, k, StateNext)
	w2, _ := Wrap(&countingRand{n: 3}, k, StateNext, &node.Public, &server.Private)
	if w1 != w2 {
		t.Fatal("Wrapper.Wrap and Wrap differ")
	}
	if got, err := NewWrapper(&server.Public, &node.Private).Unwrap(w1, now); err != nil || got.Secret != k.Secret {
		t.Fatalf("Wrapper.Unwrap: %v", err)
	}
	// Fresh nonces: wrapping twice gives different bytes.
	rnd := &countingRand{}
	a, _ := Wrap(rnd, k, StateNext, &node.Public, &server.Private)
	b, _ := Wrap(rnd, k, StateNext, &node.Public, &server.Private)
	if a.Nonce == b.Nonce || a.Sealed == b.Sealed {
		t.Fatal("two wraps share a nonce")
	}
	if _, err := Wrap(&failRand{}, k, StateNext, &node.Public, &server.Private); !errors.Is(err, errRand) {
		t.Fatalf("wrap with a failing source: %v", err)
	}
}

func TestUnwrapRefuses(t *testing.T) {
	server, node, other, imposter := testIdentity(t, 1), testIdentity(t, 2), testIdentity(t, 3), testIdentity(t, 4)
	k := testKey(0x0a1b2c3d, StateActive, t0)
	wrap := func(k *Key, st State, from *Identity, to *Identity) WrappedKey {
		wk, err := Wrap(&countingRand{n: 40}, k, st, &to.Public, &from.Private)
		if err != nil {
			t.Fatal(err)
		}
		return wk
	}
	good := wrap(k, StateActive, server, node)
	flip := func(f func(wk *WrappedKey)) WrappedKey {
		wk := good
		f(&wk)
		return wk
	}
	cases := []struct {
		name     string
		wk       WrappedKey
		unwrapBy *Identity // node side
		want     error
	}{
		{"wrong recipient", good, other, ErrUnwrap},
		{"wrong sender (not the server)", wrap(k, StateActive, imposter, node), node, ErrUnwrap},
		{"sender wrapped for itself", wrap(k, StateActive, server, server), node, ErrUnwrap},
		{"sealed byte flipped", flip(func(wk *WrappedKey) { wk.Sealed[0] ^= 1 }), node, ErrUnwrap},
		{"tag byte flipped", flip(func(wk *WrappedKey) { wk.Sealed[52] ^= 0x80 }), node, ErrUnwrap},
		{"nonce byte flipped", flip(func(wk *WrappedKey) { wk.Nonce[23] ^= 1 }), node, ErrUnwrap},
		{"zero sealed", flip(func(wk *WrappedKey) { wk.Sealed = [53]byte{} }), node, ErrUnwrap},
		{"clear id changed", flip(func(wk *WrappedKey) { wk.ID++ }), node, ErrWrapMismatch},
		{"clear state changed", flip(func(wk *WrappedKey) { wk.State = StateNext }), node, ErrWrapMismatch},
		{"wrapped as retired", wrap(k, StateRetired, server, node), node, ErrBadTransition},
		{"wrapped in state 0", wrap(k, 0, server, node), node, ErrBadTransition},
		{"wrapped with id 0", wrap(testKey(0, StateNext, t0), StateNext, server, node), node, ErrBadTransition},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Unwrap(tc.wk, &server.Public, &tc.unwrapBy.Private, t0)
			if got != nil || !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// A node's Wrapper opens what the node seals for the server, as box.Open
// does, and nothing sealed by another node; it says which identity key it
// was made for.
func TestWrapperOpensFromNode(t *testing.T) {
	server, node, other := testIdentity(t, 1), testIdentity(t, 2), testIdentity(t, 3)
	w := NewWrapper(&node.Public, &server.Private)
	if !w.For(&node.Public) || w.For(&other.Public) {
		t.Fatal("Wrapper.For does not tell the node's key from another")
	}
	var nonce [24]byte
	nonce[0] = 5
	msg := []byte("hello proof")
	sealed := box.Seal(nil, msg, &nonce, &server.Public, &node.Private)
	if got, ok := w.OpenFromNode(sealed, &nonce); !ok || !bytes.Equal(got, msg) {
		t.Fatalf("OpenFromNode = %q, %v", got, ok)
	}
	forged := box.Seal(nil, msg, &nonce, &server.Public, &other.Private)
	if _, ok := w.OpenFromNode(forged, &nonce); ok {
		t.Fatal("a box sealed by another node opened")
	}
	sealed[len(sealed)-1] ^= 1
	if _, ok := w.OpenFromNode(sealed, &nonce); ok {
		t.Fatal("a damaged box opened")
	}
}

// Package keys holds momgate's key material: the cluster keyring (key ids
// and the states next, active, previous, retired), key files with
// owner-only permissions, node and server identity keys (X25519), wrapping
// of a cluster key for one node's identity, and enrollment tokens.
//
// A Keyring is an immutable value: every change returns a new one, so
// readers on the PING hot path never lock (see Holder).
package keys

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sentinel errors of keyring transitions.
var (
	ErrNoSuchKey      = errors.New("no such key")
	ErrBadTransition  = errors.New("invalid key state transition")
	ErrDuplicateKey   = errors.New("duplicate key id")
	ErrNoActive       = errors.New("no active key")
	ErrTooManyKeys    = errors.New("too many keys")
	ErrInvalidKeyFile = errors.New("invalid key file")
)

// MaxKeys bounds a keyring.
const MaxKeys = 8

// KeyID names a cluster key on the wire; 0 is never used.
type KeyID uint32

func (id KeyID) String() string { return fmt.Sprintf("%08x", uint32(id)) }

// ParseKeyID parses 8 hex digits.
func ParseKeyID(s string) (KeyID, error) {
	if len(s) != 8 {
		return 0, fmt.Errorf("key id %q: want 8 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 32)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("key id %q: want 8 hex digits, not all zero", s)
	}
	return KeyID(v), nil
}

// State is a key's place in its life cycle.
type State uint8

// Key states; the values are the WrappedKey state byte.
const (
	StateNext     State = 1 // distributed, not yet used to seal; accepted
	StateActive   State = 2 // seals; accepted
	StatePrevious State = 3 // replaced; accepted during the grace period
	StateRetired  State = 4 // zeroed; never accepted
)

var stateNames = []string{StateNext: "next", StateActive: "active", StatePrevious: "previous", StateRetired: "retired"}

func (s State) String() string {
	if int(s) < len(stateNames) && s > 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// ParseState parses a state name.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if i > 0 && n == s {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("key state %q: want next, active, previous or retired", s)
}

// Key is one cluster key.
type Key struct {
	ID      KeyID
	State   State
	Secret  [32]byte
	Created time.Time
	aead    cipher.AEAD
}

// NewKey makes a key with a fresh secret and a random nonzero id for which
// taken is false. The key's state is StateNext.
func NewKey(rnd io.Reader, now time.Time, taken func(KeyID) bool) (*Key, error) {
	k := &Key{State: StateNext, Created: now.UTC().Truncate(time.Second)}
	if _, err := io.ReadFull(rnd, k.Secret[:]); err != nil {
		return nil, fmt.Errorf("generate key: %w", err)
	}
	for range 64 {
		var b [4]byte
		if _, err := io.ReadFull(rnd, b[:]); err != nil {
			return nil, fmt.Errorf("generate key id: %w", err)
		}
		if id := KeyID(binary.BigEndian.Uint32(b[:])); id != 0 && (taken == nil || !taken(id)) {
			k.ID = id
			return k, nil
		}
	}
	return nil, errors.New("generate key id: no free id after 64 tries")
}

// AEAD returns the key's XChaCha20-Poly1305 instance.
func (k *Key) AEAD() cipher.AEAD {
	if k.aead == nil {
		k.aead, _ = chacha20poly1305.NewX(k.Secret[:]) // 32-byte key: cannot fail
	}
	return k.aead
}

// Zero overwrites the secret.
func (k *Key) Zero() {
	k.Secret = [32]byte{}
	k.aead = nil
}

// clone copies k with the given state; the AEAD is shared (it is immutable).
func (k *Key) with(s State) *Key {
	c := *k
	c.State = s
	c.AEAD()
	return &c
}

// Keyring is an immutable set of cluster keys: at most one active, at most
// one next, and previous keys still accepted.
type Keyring struct {
	keys []*Key // sorted by state, then creation
}

// NewKeyring returns an empty keyring.
func NewKeyring() *Keyring { return &Keyring{} }

// Active returns the active key, or nil.
func (r *Keyring) Active() *Key {
	for _, k := range r.keys {
		if k.State == StateActive {
			return k
		}
	}
	return nil
}

// Next returns the next key, or nil.
func (r *Keyring) Next() *Key {
	for _, k := range r.keys {
		if k.State == StateNext {
			return k
		}
	}
	return nil
}

// Lookup returns key id if it is accepted (next, active or previous), or
// nil. It does not allocate.
func (r *Keyring) Lookup(id KeyID) *Key {
	for _, k := range r.keys {
		if k.ID == id {
			return k
		}
	}
	return nil
}

// Keys returns the keys sorted by state, then creation.
func (r *Keyring) Keys() []*Key { return append([]*Key(nil), r.keys...) }

// Len is the number of keys.
func (r *Keyring) Len() int { return len(r.keys) }

func (r *Keyring) replace(keys []*Key) (*Keyring, error) {
	if len(keys) > MaxKeys {
		return nil, fmt.Errorf("%d keys, limit %d: %w", len(keys), MaxKeys, ErrTooManyKeys)
	}
	active, next := 0, 0
	seen := map[KeyID]bool{}
	for _, k := range keys {
		switch {
		case k.ID == 0:
			return nil, fmt.Errorf("key id 0: %w", ErrBadTransition)
		case seen[k.ID]:
			return nil, fmt.Errorf("key %s: %w", k.ID, ErrDuplicateKey)
		case k.State < StateNext || k.State > StatePrevious:
			return nil, fmt.Errorf("key %s in state %s: %w", k.ID, k.State, ErrBadTransition)
		}
		seen[k.ID] = true
		if k.State == StateActive {
			active++
		}
		if k.State == StateNext {
			next++
		}
	}
	if active > 1 || next > 1 {
		return nil, fmt.Errorf("%d active and %d next keys: %w", active, next, ErrBadTransition)
	}
	out := append([]*Key(nil), keys...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].State != out[j].State {
			return stateOrder(out[i].State) < stateOrder(out[j].State)
		}
		return out[i].Created.Before(out[j].Created)
	})
	return &Keyring{keys: out}, nil
}

// stateOrder puts the active key first: it is the one Lookup hits most.
func stateOrder(s State) int {
	switch s {
	case StateActive:
		return 0
	case StateNext:
		return 1
	}
	return 2
}

// WithKey returns a ring with k added in k's state.
func (r *Keyring) WithKey(k *Key) (*Keyring, error) {
	return r.replace(append(r.Keys(), k.with(k.State)))
}

// AddNext returns a ring with k added as the next key.
func (r *Keyring) AddNext(k *Key) (*Keyring, error) {
	if r.Next() != nil {
		return nil, fmt.Errorf("add %s: ring already has next key %s: %w", k.ID, r.Next().ID, ErrBadTransition)
	}
	return r.replace(append(r.Keys(), k.with(StateNext)))
}

// Activate makes the next key id active; the active key becomes previous
// and any older previous key is retired (dropped and zeroed).
func (r *Keyring) Activate(id KeyID) (*Keyring, error) {
	k := r.Lookup(id)
	if k == nil {
		return nil, fmt.Errorf("activate %s: %w", id, ErrNoSuchKey)
	}
	if k.State == StateActive {
		return r, nil // idempotent: a repeated activate after a crash
	}
	if k.State != StateNext {
		return nil, fmt.Errorf("activate %s in state %s: %w", id, k.State, ErrBadTransition)
	}
	var out []*Key
	for _, o := range r.keys {
		switch {
		case o.ID == id:
			out = append(out, o.with(StateActive))
		case o.State == StateActive:
			out = append(out, o.with(StatePrevious))
		case o.State == StatePrevious:
			// retired: left out; its secret is zeroed in the new ring's absence
		default:
			out = append(out, o)
		}
	}
	return r.replace(out)
}

// Retire drops a previous (or next, abandoned) key; the active key cannot
// be retired. Retiring an unknown key is a no-op, so a repeated retire
// after a crash succeeds.
func (r *Keyring) Retire(id KeyID) (*Keyring, error) {
	k := r.Lookup(id)
	if k == nil {
		return r, nil
	}
	if k.State == StateActive {
		return nil, fmt.Errorf("retire %s: it is the active key: %w", id, ErrBadTransition)
	}
	var out []*Key
	for _, o := range r.keys {
		if o.ID != id {
			out = append(out, o)
		}
	}
	return r.replace(out)
}

package keys

import (
	"crypto/cipher"
	"sync"
	"sync/atomic"
)

// Holder is the live keyring of a daemon: lock-free reads of the current
// Keyring, serialised swaps. It is a ping.KeySource.
type Holder struct {
	mu  sync.Mutex // serialises Store
	cur atomic.Pointer[Keyring]
}

// NewHolder returns a holder of r.
func NewHolder(r *Keyring) *Holder {
	h := &Holder{}
	h.cur.Store(r)
	return h
}

// Load returns the current keyring.
func (h *Holder) Load() *Keyring { return h.cur.Load() }

// Store makes r current. Keys of the old ring that r no longer holds are
// retired: their secrets are zeroed (their AEAD instances, which readers
// may still be using, are left to the garbage collector).
func (h *Holder) Store(r *Keyring) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.cur.Swap(r)
	if old == nil {
		return
	}
	for _, k := range old.keys {
		if r.Lookup(k.ID) == nil {
			k.Secret = [32]byte{}
		}
	}
}

// Open returns the AEAD of an accepted key id, or nil. No allocation.
func (h *Holder) Open(id uint32) cipher.AEAD {
	if k := h.cur.Load().Lookup(KeyID(id)); k != nil {
		return k.aead
	}
	return nil
}

// Seal returns the active key's id and AEAD, or a nil AEAD.
func (h *Holder) Seal() (uint32, cipher.AEAD) {
	if k := h.cur.Load().Active(); k != nil {
		return uint32(k.ID), k.aead
	}
	return 0, nil
}

package rotation

import (
	"errors"
	"fmt"

	"github.com/momgate/momgate/keys"
)

// ErrKeyNotHeld means a MOM was told to activate a key it does not hold.
var ErrKeyNotHeld = errors.New("key not held")

// ApplyUpdate is the MOM's side of KeyUpdate (and of a manual key import):
// k becomes the next key. A key already held is left as it is (a repeated
// update after a crash); a different next key, from an abandoned
// rotation, is replaced. changed is false when ring is returned as is.
func ApplyUpdate(ring *keys.Keyring, k *keys.Key) (out *keys.Keyring, changed bool, err error) {
	if ring.Lookup(k.ID) != nil {
		return ring, false, nil
	}
	if n := ring.Next(); n != nil {
		if ring, err = ring.Retire(n.ID); err != nil {
			return nil, false, fmt.Errorf("replace next key %s: %w", n.ID, err)
		}
	}
	c := *k
	c.State = keys.StateNext
	if out, err = ring.AddNext(&c); err != nil {
		return nil, false, fmt.Errorf("store key %s as next: %w", k.ID, err)
	}
	return out, true, nil
}

// ApplyActivate is the MOM's side of KeyActivate: seal with key id from now
// on and keep the old active key as previous (older previous keys are
// dropped). Activating the active key changes nothing.
func ApplyActivate(ring *keys.Keyring, id keys.KeyID) (out *keys.Keyring, changed bool, err error) {
	k := ring.Lookup(id)
	switch {
	case k == nil:
		return nil, false, fmt.Errorf("activate key %s: %w", id, ErrKeyNotHeld)
	case k.State == keys.StateActive:
		return ring, false, nil
	case k.State != keys.StateNext:
		return nil, false, fmt.Errorf("activate key %s in state %s: %w", id, k.State, keys.ErrBadTransition)
	}
	if out, err = ring.Activate(id); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

// ApplyRetire is the MOM's side of KeyRetire: drop the key (the holder
// zeroes it). Retiring a key not held changes nothing; the active key is
// never retired.
func ApplyRetire(ring *keys.Keyring, id keys.KeyID) (out *keys.Keyring, changed bool, err error) {
	if ring.Lookup(id) == nil {
		return ring, false, nil
	}
	if out, err = ring.Retire(id); err != nil {
		return nil, false, err
	}
	return out, true, nil
}

package keys

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/momgate/momgate/strictjson"
)

// keyJSON is one key in a keyring or key file.
type keyJSON struct {
	ID      string    `json:"id"`
	State   string    `json:"state"`
	Secret  string    `json:"secret"`
	Created time.Time `json:"created"`
}

type keyringJSON struct {
	Format int       `json:"format"`
	Keys   []keyJSON `json:"keys"`
}

func (k *Key) toJSON() keyJSON {
	return keyJSON{ID: k.ID.String(), State: k.State.String(), Secret: base64.StdEncoding.EncodeToString(k.Secret[:]), Created: k.Created}
}

func keyFromJSON(j keyJSON, i int) (*Key, error) {
	id, err := ParseKeyID(j.ID)
	if err != nil {
		return nil, fmt.Errorf("keys[%d].id: %w", i, err)
	}
	st, err := ParseState(j.State)
	if err != nil || st == StateRetired {
		return nil, fmt.Errorf("keys[%d].state %q: want next, active or previous", i, j.State)
	}
	secret, err := base64.StdEncoding.DecodeString(j.Secret)
	if err != nil || len(secret) != 32 {
		return nil, fmt.Errorf("keys[%d].secret: want 32 bytes of standard base64", i)
	}
	k := &Key{ID: id, State: st, Created: j.Created}
	copy(k.Secret[:], secret)
	return k, nil
}

// EncodeKeyring encodes r as JSON.
func EncodeKeyring(r *Keyring) ([]byte, error) {
	out := keyringJSON{Format: 1, Keys: []keyJSON{}}
	for _, k := range r.keys {
		out.Keys = append(out.Keys, k.toJSON())
	}
	return json.MarshalIndent(out, "", "  ")
}

// DecodeKeyring strictly decodes a keyring file.
func DecodeKeyring(data []byte) (*Keyring, error) {
	var in keyringJSON
	if err := strictjson.Decode(data, &in); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKeyFile, err)
	}
	if in.Format != 1 {
		return nil, fmt.Errorf("%w: format %d, want 1", ErrInvalidKeyFile, in.Format)
	}
	keys := make([]*Key, 0, len(in.Keys))
	for i, j := range in.Keys {
		if i >= MaxKeys {
			return nil, fmt.Errorf("%w: more than %d keys", ErrInvalidKeyFile, MaxKeys)
		}
		k, err := keyFromJSON(j, i)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrInvalidKeyFile, err)
		}
		k.AEAD()
		keys = append(keys, k)
	}
	r, err := NewKeyring().replace(keys)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKeyFile, err)
	}
	return r, nil
}

type keyFileJSON struct {
	Format int     `json:"format"`
	Key    keyJSON `json:"key"`
}

// EncodeKeyFile encodes one key for manual distribution.
func EncodeKeyFile(k *Key) ([]byte, error) {
	return json.MarshalIndent(keyFileJSON{Format: 1, Key: k.toJSON()}, "", "  ")
}

// DecodeKeyFile strictly decodes a single-key file.
func DecodeKeyFile(data []byte) (*Key, error) {
	var in keyFileJSON
	if err := strictjson.Decode(data, &in); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKeyFile, err)
	}
	if in.Format != 1 {
		return nil, fmt.Errorf("%w: format %d, want 1", ErrInvalidKeyFile, in.Format)
	}
	k, err := keyFromJSON(in.Key, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKeyFile, err)
	}
	return k, nil
}

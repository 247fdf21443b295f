package keys

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/momgate/momgate/internal/statefile"
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

// SaveKeyring writes r to path atomically with mode 0600.
func SaveKeyring(path string, r *Keyring) error {
	data, err := EncodeKeyring(r)
	if err != nil {
		return fmt.Errorf("save keyring %s: %w", path, err)
	}
	if err := statefile.WriteAtomic(path, data, 0o600); err != nil {
		return fmt.Errorf("save keyring: %w", err)
	}
	return nil
}

// LoadKeyring reads a keyring file, refusing one that group or others can
// read or that another user owns.
func LoadKeyring(path string) (*Keyring, error) {
	data, err := statefile.ReadPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("load keyring: %w", err)
	}
	r, err := DecodeKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("load keyring %s: %w", path, err)
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

// ExportKeyFile writes k to a new file with mode 0400; it refuses to
// overwrite an existing file.
func ExportKeyFile(path string, k *Key) error {
	data, err := EncodeKeyFile(k)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return fmt.Errorf("export key %s to %s: %w", k.ID, path, err)
	}
	if err := f.Chmod(0o400); err == nil {
		_, err = f.Write(data)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			return nil
		}
	} else {
		f.Close()
	}
	os.Remove(path)
	return fmt.Errorf("export key %s to %s: %w", k.ID, path, err)
}

// ImportKeyFile reads a key file, refusing one that group or others can
// read or that another user owns.
func ImportKeyFile(path string) (*Key, error) {
	data, err := statefile.ReadPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("import key: %w", err)
	}
	k, err := DecodeKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("import key %s: %w", path, err)
	}
	return k, nil
}

// Package keystore reads and writes the files that hold key material: the
// cluster keyring, single-key export files and X25519 identities. The
// keys package encodes and decodes their bytes; this package adds the file
// rules: secret files are written atomically with mode 0600 and read only
// when private to the running user (statefile.ReadPrivate), and an export
// is a new file of mode 0400 that never replaces an existing one.
package keystore

import (
	"fmt"
	"os"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/keys"
)

// Modes of the files this package writes.
const (
	SecretMode = 0o600 // keyring and identity
	ExportMode = 0o400 // exported key file
)

// SaveKeyring writes r to path atomically with mode 0600.
func SaveKeyring(path string, r *keys.Keyring) error {
	data, err := keys.EncodeKeyring(r)
	if err != nil {
		return fmt.Errorf("save keyring %s: %w", path, err)
	}
	if err := statefile.WriteAtomic(path, data, SecretMode); err != nil {
		return fmt.Errorf("save keyring: %w", err)
	}
	return nil
}

// LoadKeyring reads a keyring file, refusing one that group or others can
// read or that another user owns.
func LoadKeyring(path string) (*keys.Keyring, error) {
	data, err := statefile.ReadPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("load keyring: %w", err)
	}
	r, err := keys.DecodeKeyring(data)
	if err != nil {
		return nil, fmt.Errorf("load keyring %s: %w", path, err)
	}
	return r, nil
}

// ExportKeyFile writes k to a new file with mode 0400; it refuses to
// overwrite an existing file.
func ExportKeyFile(path string, k *keys.Key) error {
	data, err := keys.EncodeKeyFile(k)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, ExportMode)
	if err != nil {
		return fmt.Errorf("export key %s to %s: %w", k.ID, path, err)
	}
	if err := f.Chmod(ExportMode); err == nil {
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
func ImportKeyFile(path string) (*keys.Key, error) {
	data, err := statefile.ReadPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("import key: %w", err)
	}
	k, err := keys.DecodeKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("import key %s: %w", path, err)
	}
	return k, nil
}

// SaveIdentity writes id to path atomically with mode 0600.
func SaveIdentity(path string, id *keys.Identity) error {
	data, err := keys.EncodeIdentity(id)
	if err != nil {
		return err
	}
	if err := statefile.WriteAtomic(path, data, SecretMode); err != nil {
		return fmt.Errorf("save identity: %w", err)
	}
	return nil
}

// LoadIdentity reads an identity file with the permission checks of
// statefile.ReadPrivate.
func LoadIdentity(path string) (*keys.Identity, error) {
	data, err := statefile.ReadPrivate(path)
	if err != nil {
		return nil, fmt.Errorf("load identity: %w", err)
	}
	id, err := keys.DecodeIdentity(data)
	if err != nil {
		return nil, fmt.Errorf("load identity %s: %w", path, err)
	}
	return id, nil
}

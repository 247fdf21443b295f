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
	return writeSecret(path, "save keyring", func() ([]byte, error) { return keys.EncodeKeyring(r) })
}

// LoadKeyring reads a keyring file, refusing one that group or others can
// read or that another user owns.
func LoadKeyring(path string) (*keys.Keyring, error) {
	return readPrivate(path, "load keyring", keys.DecodeKeyring)
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
	return readPrivate(path, "import key", keys.DecodeKeyFile)
}

// SaveIdentity writes id to path atomically with mode 0600.
func SaveIdentity(path string, id *keys.Identity) error {
	return writeSecret(path, "save identity", func() ([]byte, error) { return keys.EncodeIdentity(id) })
}

// LoadIdentity reads an identity file with the permission checks of
// statefile.ReadPrivate.
func LoadIdentity(path string) (*keys.Identity, error) {
	return readPrivate(path, "load identity", keys.DecodeIdentity)
}

// writeSecret writes what encode returns to path atomically with mode
// 0600; op starts the error message.
func writeSecret(path, op string, encode func() ([]byte, error)) error {
	data, err := encode()
	if err != nil {
		return fmt.Errorf("%s %s: %w", op, path, err)
	}
	if err := statefile.WriteAtomic(path, data, SecretMode); err != nil {
		return fmt.Errorf("%s: %w", op, err) // the statefile error names path
	}
	return nil
}

// readPrivate decodes the private file at path; op starts the error
// message, which names path.
func readPrivate[T any](path, op string, decode func([]byte) (T, error)) (T, error) {
	var zero T
	data, err := statefile.ReadPrivate(path)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", op, err) // the statefile error names path
	}
	v, err := decode(data)
	if err != nil {
		return zero, fmt.Errorf("%s %s: %w", op, path, err)
	}
	return v, nil
}

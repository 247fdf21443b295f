package replica

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/google/uuid"
)

// The field types of commands read and write one canonical text form
// each, so that a decoded command encodes back to the same bytes.

// UUID is a node id, written in the canonical lowercase 8-4-4-4-12 form.
type UUID [16]byte

// MarshalText writes the canonical form.
func (u UUID) MarshalText() ([]byte, error) { return []byte(uuid.UUID(u).String()), nil }

// UnmarshalText accepts the canonical form only.
func (u *UUID) UnmarshalText(b []byte) error {
	p, err := uuid.ParseBytes(b)
	if err != nil || p.String() != string(b) {
		return fmt.Errorf("uuid %q: want the lowercase 8-4-4-4-12 form", b)
	}
	*u = UUID(p)
	return nil
}

// ID16 is a 16-byte token id, written as 32 lowercase hex digits.
type ID16 [16]byte

// MarshalText writes lowercase hex.
func (v ID16) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(v[:])), nil }

// UnmarshalText accepts 32 lowercase hex digits.
func (v *ID16) UnmarshalText(b []byte) error { return unhex(b, v[:], "token id") }

// Hash32 is a SHA-256 value, written as 64 lowercase hex digits.
type Hash32 [32]byte

// MarshalText writes lowercase hex.
func (v Hash32) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(v[:])), nil }

// UnmarshalText accepts 64 lowercase hex digits.
func (v *Hash32) UnmarshalText(b []byte) error { return unhex(b, v[:], "hash") }

func unhex(b, dst []byte, what string) error {
	if len(b) != 2*len(dst) {
		return fmt.Errorf("%s: %d characters, want %d lowercase hex digits", what, len(b), 2*len(dst))
	}
	for _, c := range b {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return fmt.Errorf("%s: want lowercase hex digits", what)
		}
	}
	_, err := hex.Decode(dst, b)
	return err
}

// Key32 is an X25519 public key, written in standard base64.
type Key32 [32]byte

// MarshalText writes standard base64.
func (k Key32) MarshalText() ([]byte, error) {
	return []byte(base64.StdEncoding.EncodeToString(k[:])), nil
}

// UnmarshalText accepts 32 bytes of canonical standard base64.
func (k *Key32) UnmarshalText(b []byte) error {
	raw, err := base64.StdEncoding.Strict().DecodeString(string(b))
	if err != nil || len(raw) != 32 {
		return fmt.Errorf("public key: want 32 bytes of standard base64")
	}
	copy(k[:], raw)
	return nil
}

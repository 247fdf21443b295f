package keys

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"

	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/strictjson"
)

// Identity is an X25519 key pair: the server's, or one node's.
type Identity struct {
	Public, Private [32]byte
}

// GenerateIdentity makes a key pair from rnd.
func GenerateIdentity(rnd io.Reader) (*Identity, error) {
	pub, priv, err := box.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("generate identity: %w", err)
	}
	return &Identity{Public: *pub, Private: *priv}, nil
}

// Fingerprint is SHA-256 of a public key.
func Fingerprint(pub [32]byte) [32]byte { return sha256.Sum256(pub[:]) }

// FormatFingerprint is how a fingerprint is shown to people: "SHA256:"
// and the whole digest in unpadded standard base64, the form ssh-keygen -l
// prints, so administrators compare it the way they compare host keys.
func FormatFingerprint(fp [32]byte) string {
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(fp[:])
}

// FingerprintText is FormatFingerprint of the fingerprint of pub.
func FingerprintText(pub [32]byte) string { return FormatFingerprint(Fingerprint(pub)) }

type identityJSON struct {
	Format  int    `json:"format"`
	Public  string `json:"public"`
	Private string `json:"private"`
}

// EncodeIdentity encodes id as JSON.
func EncodeIdentity(id *Identity) ([]byte, error) {
	return json.MarshalIndent(identityJSON{Format: 1,
		Public:  base64.StdEncoding.EncodeToString(id.Public[:]),
		Private: base64.StdEncoding.EncodeToString(id.Private[:])}, "", "  ")
}

// DecodeIdentity strictly decodes an identity file and checks that the
// public key belongs to the private key.
func DecodeIdentity(data []byte) (*Identity, error) {
	var in identityJSON
	if err := strictjson.Decode(data, &in); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidKeyFile, err)
	}
	if in.Format != 1 {
		return nil, fmt.Errorf("%w: format %d, want 1", ErrInvalidKeyFile, in.Format)
	}
	id := &Identity{}
	for _, f := range []struct {
		name string
		text string
		dst  *[32]byte
	}{{"public", in.Public, &id.Public}, {"private", in.Private, &id.Private}} {
		b, err := base64.StdEncoding.DecodeString(f.text)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("%w: %s: want 32 bytes of standard base64", ErrInvalidKeyFile, f.name)
		}
		copy(f.dst[:], b)
	}
	pub, err := curve25519.X25519(id.Private[:], curve25519.Basepoint)
	if err != nil || [32]byte(pub) != id.Public {
		return nil, fmt.Errorf("%w: public key does not match private key", ErrInvalidKeyFile)
	}
	return id, nil
}

package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func testIdentity(t testing.TB, seed byte) *Identity {
	t.Helper()
	id, err := GenerateIdentity(&countingRand{n: seed})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestGenerateIdentity(t *testing.T) {
	id := testIdentity(t, 1)
	if id.Public == id.Private || id.Public == [32]byte{} {
		t.Fatal("degenerate identity")
	}
	if other := testIdentity(t, 2); other.Public == id.Public {
		t.Fatal("different seeds gave the same identity")
	}
	if _, err := GenerateIdentity(&failRand{n: 5}); !errors.Is(err, errRand) {
		t.Fatalf("generate with a failing source: %v", err)
	}
}

func TestDecodeIdentityStrict(t *testing.T) {
	id, other := testIdentity(t, 1), testIdentity(t, 2)
	b64 := func(b [32]byte) string { return base64.StdEncoding.EncodeToString(b[:]) }
	for _, tc := range []struct{ name, text string }{
		{"empty", ``},
		{"format 2", `{"format":2,"public":"` + b64(id.Public) + `","private":"` + b64(id.Private) + `"}`},
		{"unknown field", `{"format":1,"public":"` + b64(id.Public) + `","private":"` + b64(id.Private) + `","name":"x"}`},
		{"mismatched public", `{"format":1,"public":"` + b64(other.Public) + `","private":"` + b64(id.Private) + `"}`},
		{"short private", `{"format":1,"public":"` + b64(id.Public) + `","private":"AAAA"}`},
		{"bad base64", `{"format":1,"public":"***","private":"` + b64(id.Private) + `"}`},
		{"trailing brace", `{"format":1,"public":"` + b64(id.Public) + `","private":"` + b64(id.Private) + `"}}`},
	} {
		if got, err := DecodeIdentity([]byte(tc.text)); got != nil || !errors.Is(err, ErrInvalidKeyFile) {
			t.Errorf("%s: %v, %v", tc.name, got, err)
		}
	}
}

func TestFingerprint(t *testing.T) {
	id := testIdentity(t, 1)
	if Fingerprint(id.Public) != sha256.Sum256(id.Public[:]) {
		t.Fatal("Fingerprint is not SHA-256 of the public key")
	}
	text := FingerprintText(id.Public)
	if !regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`).MatchString(text) {
		t.Fatalf("FingerprintText = %q", text)
	}
	fp := Fingerprint(id.Public)
	raw, err := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(text, "SHA256:"))
	if err != nil || !bytes.Equal(raw, fp[:]) {
		t.Fatalf("FingerprintText %q is not the whole digest %x: %v", text, fp, err)
	}
	// A fixed key gives a fixed display: SHA-256 of 32 zero bytes is
	// 66687aad...0d5f2925, in base64 as ssh-keygen -l would print it.
	if got := FingerprintText([32]byte{}); got != "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU" {
		t.Fatalf("FingerprintText(zero key) = %q", got)
	}
}

package keys

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"regexp"
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
	short := ShortFingerprint(id.Public)
	if !regexp.MustCompile(`^SHA256:[0-9a-f]{4}:[0-9a-f]{4}:[0-9a-f]{4}:[0-9a-f]{4}$`).MatchString(short) {
		t.Fatalf("ShortFingerprint = %q", short)
	}
	fp := Fingerprint(id.Public)
	want := "SHA256:" + hexGroup(fp[0:2]) + ":" + hexGroup(fp[2:4]) + ":" + hexGroup(fp[4:6]) + ":" + hexGroup(fp[6:8])
	if short != want {
		t.Fatalf("ShortFingerprint = %q, want %q", short, want)
	}
	// A fixed key gives a fixed display: SHA-256 of 32 zero bytes begins
	// 66687aadf862bd77.
	if got := ShortFingerprint([32]byte{}); got != "SHA256:6668:7aad:f862:bd77" {
		t.Fatalf("ShortFingerprint(zero key) = %q", got)
	}
}

func hexGroup(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

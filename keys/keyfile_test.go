package keys

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// sampleRing has an active, a next and a previous key.
func sampleRing(t *testing.T) *Keyring {
	must := ringMust(t)
	r := must(NewKeyring().WithKey(testKey(0x0a1b2c3d, StateActive, t0)))
	r = must(r.WithKey(testKey(0x0a1b2c3e, StateNext, t0.Add(time.Hour))))
	return must(r.WithKey(testKey(0x0a1b2c3c, StatePrevious, t0.Add(-time.Hour))))
}

// sameRing compares rings by id, state, secret and creation time.
func sameRing(t *testing.T, got, want *Keyring) {
	t.Helper()
	g, w := got.Keys(), want.Keys()
	if len(g) != len(w) {
		t.Fatalf("%d keys, want %d", len(g), len(w))
	}
	for i := range g {
		if g[i].ID != w[i].ID || g[i].State != w[i].State || g[i].Secret != w[i].Secret || !g[i].Created.Equal(w[i].Created) {
			t.Fatalf("key %d: %s %s %v, want %s %s %v", i, g[i].ID, g[i].State, g[i].Created, w[i].ID, w[i].State, w[i].Created)
		}
		if g[i].aead == nil {
			t.Fatalf("decoded key %s has no AEAD", g[i].ID)
		}
	}
}

func TestEncodeDecodeKeyring(t *testing.T) {
	r := sampleRing(t)
	data, err := EncodeKeyring(r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeKeyring(data)
	if err != nil {
		t.Fatal(err)
	}
	sameRing(t, got, r)
	empty, err := EncodeKeyring(NewKeyring())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(empty, []byte(`"keys": []`)) {
		t.Fatalf("empty ring encodes as %s", empty)
	}
	if got, err := DecodeKeyring(empty); err != nil || got.Len() != 0 {
		t.Fatalf("empty ring: %v, %v", got, err)
	}
}

// keyringJSONText builds a keyring file from key objects.
func keyringJSONText(keys ...string) string {
	return `{"format":1,"keys":[` + strings.Join(keys, ",") + `]}`
}

func keyText(id, state string, secretLen int) string {
	return fmt.Sprintf(`{"id":%q,"state":%q,"secret":%q,"created":"2026-03-01T12:00:00Z"}`,
		id, state, base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, secretLen)))
}

func TestDecodeKeyringStrict(t *testing.T) {
	good := keyText("0a1b2c3d", "active", 32)
	if _, err := DecodeKeyring([]byte(keyringJSONText(good))); err != nil {
		t.Fatalf("valid file: %v", err)
	}
	nine := make([]string, 9)
	for i := range nine {
		nine[i] = keyText(fmt.Sprintf("%08x", i+1), "previous", 32)
	}
	cases := []struct{ name, text string }{
		{"empty", ``},
		{"null", `null`},
		{"array", `[]`},
		{"not JSON", `format=1`},
		{"unknown top-level field", `{"format":1,"keys":[],"extra":1}`},
		{"unknown key field", keyringJSONText(strings.Replace(good, `"id"`, `"note":"x","id"`, 1))},
		{"format missing", `{"keys":[]}`},
		{"format 2", `{"format":2,"keys":[]}`},
		{"format as string", `{"format":"1","keys":[]}`},
		{"trailing object", keyringJSONText(good) + ` {}`},
		{"trailing garbage", keyringJSONText(good) + `x`},
		{"trailing brace", keyringJSONText(good) + `}`},   // regression: dec.More() let this through
		{"trailing bracket", keyringJSONText(good) + `]`}, // regression
		{"duplicate ids", keyringJSONText(good, keyText("0a1b2c3d", "previous", 32))},
		{"two active", keyringJSONText(good, keyText("0a1b2c3e", "active", 32))},
		{"two next", keyringJSONText(keyText("00000001", "next", 32), keyText("00000002", "next", 32))},
		{"nine keys", keyringJSONText(nine...)},
		{"id too short", keyringJSONText(keyText("0a1b2c3", "active", 32))},
		{"id too long", keyringJSONText(keyText("0a1b2c3d0", "active", 32))},
		{"id not hex", keyringJSONText(keyText("0a1b2c3z", "active", 32))},
		{"id zero", keyringJSONText(keyText("00000000", "active", 32))},
		{"state retired", keyringJSONText(keyText("0a1b2c3d", "retired", 32))},
		{"state unknown", keyringJSONText(keyText("0a1b2c3d", "current", 32))},
		{"secret 31 bytes", keyringJSONText(keyText("0a1b2c3d", "active", 31))},
		{"secret 33 bytes", keyringJSONText(keyText("0a1b2c3d", "active", 33))},
		{"secret empty", keyringJSONText(keyText("0a1b2c3d", "active", 0))},
		{"secret not base64", keyringJSONText(strings.Replace(good, `"secret":"`, `"secret":"!!`, 1))},
		{"secret URL base64", keyringJSONText(`{"id":"0a1b2c3d","state":"active","secret":"` +
			base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + `"}`)},
		{"created not a time", keyringJSONText(strings.Replace(good, `2026-03-01T12:00:00Z`, `yesterday`, 1))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := DecodeKeyring([]byte(tc.text))
			if r != nil || !errors.Is(err, ErrInvalidKeyFile) {
				t.Fatalf("got %v, %v; want ErrInvalidKeyFile", r, err)
			}
		})
	}
}

func TestDecodeKeyFileStrict(t *testing.T) {
	k := testKey(0x0a1b2c3d, StateActive, t0)
	data, err := EncodeKeyFile(k)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := DecodeKeyFile(data); err != nil || got.Secret != k.Secret || got.State != StateActive {
		t.Fatalf("round trip: %v, %v", got, err)
	}
	for _, text := range []string{
		``, `{}`, `{"format":2,"key":{}}`,
		`{"format":1,"key":` + keyText("0a1b2c3d", "next", 32) + `,"keys":[]}`,
		`{"format":1,"key":` + keyText("0a1b2c3d", "next", 16) + `}`,
		`{"format":1,"key":` + keyText("0a1b2c3d", "retired", 32) + `}`,
		`{"format":1,"key":` + keyText("0a1b2c3d", "next", 32) + `}}`,
	} {
		if got, err := DecodeKeyFile([]byte(text)); got != nil || !errors.Is(err, ErrInvalidKeyFile) {
			t.Errorf("DecodeKeyFile(%s) = %v, %v", text, got, err)
		}
	}
}

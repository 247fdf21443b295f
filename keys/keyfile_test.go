package keys

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/statefile"
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

func TestSaveLoadKeyring(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	// An old, world-readable file is replaced, not rewritten in place.
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sampleRing(t)
	if err := SaveKeyring(path, r); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("keyring saved with mode %04o", fi.Mode().Perm())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("directory holds %d entries after save (temp file left?)", len(ents))
	}
	got, err := LoadKeyring(path)
	if err != nil {
		t.Fatal(err)
	}
	sameRing(t, got, r)
	if err := SaveKeyring(filepath.Join(dir, "missing", "k.json"), r); err == nil {
		t.Fatal("save into a missing directory succeeded")
	}
}

func TestLoadKeyringRefusesOpenFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keyring.json")
	if err := SaveKeyring(path, sampleRing(t)); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o644, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		r, err := LoadKeyring(path)
		if r != nil || !errors.Is(err, statefile.ErrInsecurePerm) {
			t.Fatalf("mode %04o: %v, %v", mode, r, err)
		}
		// The error names the file, its mode and the fix.
		for _, want := range []string{path, fmt.Sprintf("%04o", mode), "chmod 600 " + path} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("mode %04o: error %q does not mention %q", mode, err, want)
			}
		}
	}
}

func TestLoadKeyringRefusesOtherOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	path := filepath.Join(t.TempDir(), "keyring.json")
	if err := SaveKeyring(path, sampleRing(t)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Skipf("chown: %v", err)
	}
	r, err := LoadKeyring(path)
	if r != nil || !errors.Is(err, statefile.ErrWrongOwner) || !strings.Contains(err.Error(), path) {
		t.Fatalf("file of uid 65534: %v, %v", r, err)
	}
}

func TestLoadKeyringErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"format":1,"keys":[],"x":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyring(bad); !errors.Is(err, ErrInvalidKeyFile) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("invalid file: %v", err)
	}
	missing := filepath.Join(dir, "missing.json")
	if _, err := LoadKeyring(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Fatalf("missing file: %v", err)
	}
}

func TestExportImportKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.json")
	k := testKey(0x0a1b2c3d, StateNext, t0)
	if err := ExportKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Fatalf("exported with mode %04o, want 0400", fi.Mode().Perm())
	}
	got, err := ImportKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != k.ID || got.State != k.State || got.Secret != k.Secret || !got.Created.Equal(k.Created) {
		t.Fatalf("imported %+v", got)
	}
	// Never overwrites.
	if err := ExportKeyFile(path, testKey(5, StateNext, t0)); !errors.Is(err, os.ErrExist) {
		t.Fatalf("export over an existing file: %v", err)
	}
	if again, err := ImportKeyFile(path); err != nil || again.ID != k.ID {
		t.Fatalf("existing export changed: %v, %v", again, err)
	}
	if err := ExportKeyFile(filepath.Join(dir, "missing", "k.json"), k); err == nil {
		t.Fatal("export into a missing directory succeeded")
	}
	// Readable by others: refused.
	for _, mode := range []os.FileMode{0o444, 0o440, 0o404} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if k, err := ImportKeyFile(path); k != nil || !errors.Is(err, statefile.ErrInsecurePerm) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Fatalf("import of a %04o file: %v, %v", mode, k, err)
		}
	}
	// Invalid content names the path.
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"format":1,"key":{"id":"0a1b2c3d","state":"retired","secret":"","created":"2026-03-01T12:00:00Z"}}`), 0o400); err != nil {
		t.Fatal(err)
	}
	if _, err := ImportKeyFile(bad); !errors.Is(err, ErrInvalidKeyFile) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("retired key file: %v", err)
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

package store

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/ping"
)

type testState struct {
	Name  string            `json:"name"`
	Count int               `json:"count"`
	Tags  map[string]string `json:"tags,omitempty"`
}

func TestJSONRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	in := testState{Name: "n1", Count: 3, Tags: map[string]string{"a": "b"}}
	if err := SaveJSON(path, in, 0o640); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	var out testState
	if err := LoadJSON(path, &out); err != nil {
		t.Fatal(err)
	}
	if out.Name != in.Name || out.Count != in.Count || out.Tags["a"] != "b" {
		t.Fatalf("got %+v", out)
	}
}

func TestLoadJSONStrict(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"unknown field": `{"name":"n1","count":1,"extra":true}`,
		"trailing data": `{"name":"n1","count":1} {"name":"n2"}`,
		"trailing junk": `{"name":"n1","count":1}x`,
		"empty":         ``,
		"syntax":        `{"name":`,
		"wrong type":    `{"name":1}`,
	}
	for name, body := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var v testState
		err := LoadJSON(path, &v)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
			continue
		}
		if !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	// Trailing whitespace is fine.
	path := filepath.Join(dir, "ok.json")
	if err := os.WriteFile(path, []byte("{\"name\":\"n1\"}\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var v testState
	if err := LoadJSON(path, &v); err != nil || v.Name != "n1" {
		t.Fatalf("err = %v, v = %+v", err, v)
	}
}

func TestLoadJSONMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.json")
	var v testState
	for _, load := range []func(string, any) error{LoadJSON, LoadJSONPrivate} {
		err := load(path, &v)
		if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), path) {
			t.Errorf("err = %v, want fs.ErrNotExist naming the file", err)
		}
	}
}

func TestLoadJSONPrivate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "secret.json")
	if err := SaveJSON(path, testState{Name: "k"}, 0o600); err != nil {
		t.Fatal(err)
	}
	var v testState
	if err := LoadJSONPrivate(path, &v); err != nil || v.Name != "k" {
		t.Fatalf("err = %v, v = %+v", err, v)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	err := LoadJSONPrivate(path, &v)
	if !errors.Is(err, statefile.ErrInsecurePerm) || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want ErrInsecurePerm naming the file", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(`{"name":"k","bogus":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := LoadJSONPrivate(path, &v); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

func TestSaveJSONError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.json")
	if err := SaveJSON(path, func() {}, 0o600); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v", err)
	}
	if err := SaveJSON(filepath.Join(t.TempDir(), "nodir", "x.json"), 1, 0o600); err == nil {
		t.Fatal("SaveJSON into a missing directory succeeded")
	}
}

func TestCeilingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ceiling")
	c := NewCeilingFile(path)
	if c.Path() != path {
		t.Fatal(c.Path())
	}
	v, err := c.LoadCeiling()
	if err != nil || v != 0 {
		t.Fatalf("missing file: %d, %v", v, err)
	}
	for _, want := range []uint64{1, 1_715_000_000_000_000_000, ^uint64(0)} {
		if err := c.StoreCeiling(want); err != nil {
			t.Fatal(err)
		}
		got, err := NewCeilingFile(path).LoadCeiling()
		if err != nil || got != want {
			t.Fatalf("round trip %d: got %d, %v", want, got, err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size() != CeilingSize {
		t.Errorf("mode %v size %d", fi.Mode().Perm(), fi.Size())
	}
}

func TestCeilingFileGarbage(t *testing.T) {
	good := EncodeCeiling(12345)
	flipped := append([]byte(nil), good...)
	flipped[12] ^= 0x04
	cases := map[string][]byte{
		"empty":     {},
		"text":      []byte("1715000000000000000\n"),
		"short":     good[:CeilingSize-1],
		"long":      append(append([]byte(nil), good...), '\n'),
		"very long": make([]byte, 4096),
		"bit flip":  flipped,
		"magic":     append([]byte("MGCEIL02"), good[8:]...),
	}
	dir := t.TempDir()
	for name, data := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "_"))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		v, err := NewCeilingFile(path).LoadCeiling()
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), path) || v != 0 {
			t.Errorf("%s: %d, %v; want ErrCorrupt naming the file", name, v, err)
		}
	}
}

func TestCeilingFileUnreadable(t *testing.T) {
	dir := t.TempDir()
	// A directory where the file should be: an I/O error, not "missing".
	path := filepath.Join(dir, "ceiling")
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := NewCeilingFile(path).LoadCeiling(); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v", err)
	}
	if err := NewCeilingFile(path).StoreCeiling(1); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v", err)
	}
}

// The stores implement the ping package's persistence interfaces.
var (
	_ ping.MarkStore    = (*MarkLog)(nil)
	_ ping.CeilingStore = (*CeilingFile)(nil)
)

func TestFormatSizes(t *testing.T) {
	if CeilingSize != len(CeilingMagic)+8+4 || len(EncodeCeiling(7)) != CeilingSize {
		t.Fatal("CeilingSize is wrong")
	}
}

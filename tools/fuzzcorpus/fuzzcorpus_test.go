package fuzzcorpus

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMarshal(t *testing.T) {
	got, err := Marshal([]byte("MG\x02\x10\xff"), "a\"b", uint16(7), true)
	if err != nil {
		t.Fatal(err)
	}
	want := "go test fuzz v1\n[]byte(\"MG\\x02\\x10\\xff\")\nstring(\"a\\\"b\")\nuint16(7)\nbool(true)\n"
	if string(got) != want {
		t.Fatalf("Marshal =\n%s\nwant\n%s", got, want)
	}
	if _, err := Marshal(); err == nil {
		t.Fatal("Marshal of nothing succeeded")
	}
	if _, err := Marshal(1.5); err == nil {
		t.Fatal("Marshal of a float succeeded")
	}
}

// recorder is a testing.TB that records failures instead of stopping.
type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper()               {}
func (r *recorder) Errorf(string, ...any) { r.failed = true }

func TestCheck(t *testing.T) {
	t.Chdir(t.TempDir())
	seeds := []Seed{Bytes("one", []byte{1}), String("two", "2")}
	t.Setenv(UpdateEnv, "1")
	Check(t, "FuzzX", seeds)
	data, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzX", "two"))
	if err != nil || string(data) != "go test fuzz v1\nstring(\"2\")\n" {
		t.Fatalf("written seed: %q, %v", data, err)
	}
	t.Setenv(UpdateEnv, "")
	Check(t, "FuzzX", seeds) // in step: passes
	r := &recorder{TB: t}
	Check(r, "FuzzX", []Seed{Bytes("one", []byte{2})})
	if !r.failed {
		t.Fatal("a changed seed was not reported")
	}
	r = &recorder{TB: t}
	Check(r, "FuzzX", []Seed{Bytes("three", []byte{3})})
	if !r.failed {
		t.Fatal("a missing seed file was not reported")
	}
}

// Package fuzzcorpus keeps the checked-in seed corpora of `go test -fuzz`
// targets (testdata/fuzz/<Target>/<name>, in the "go test fuzz v1" format)
// in step with the seeds the tests build from real encoders. It is used by
// tests only.
package fuzzcorpus

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// UpdateEnv names the environment variable that, set to "1", makes Check
// write the corpus files instead of comparing them:
//
//	MOMGATE_UPDATE_CORPUS=1 go test -run TestSeedCorpus ./proto/
const UpdateEnv = "MOMGATE_UPDATE_CORPUS"

// Seed is one corpus file: its name and the fuzz arguments.
type Seed struct {
	Name string
	Args []any // []byte, string, bool or an integer type
}

// Bytes is a Seed with a single []byte argument.
func Bytes(name string, b []byte) Seed { return Seed{Name: name, Args: []any{b}} }

// String is a Seed with a single string argument.
func String(name, s string) Seed { return Seed{Name: name, Args: []any{s}} }

// Marshal encodes args in the "go test fuzz v1" file format.
func Marshal(args ...any) ([]byte, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("fuzz corpus entry without arguments")
	}
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		case string:
			fmt.Fprintf(&b, "string(%q)\n", v)
		case bool, int, int8, int16, int64, uint, uint16, uint32, uint64:
			fmt.Fprintf(&b, "%T(%v)\n", v, v)
		default:
			return nil, fmt.Errorf("fuzz corpus: unsupported argument type %T", a)
		}
	}
	return b.Bytes(), nil
}

// Check compares each seed with testdata/fuzz/<target>/<name> in the
// package directory and fails the test on a missing or different file.
// With UpdateEnv=1 it writes the files instead. Files the fuzzer added
// (crash reproducers) are left alone.
func Check(t testing.TB, target string, seeds []Seed) {
	t.Helper()
	if len(seeds) == 0 {
		t.Fatalf("%s: no seeds", target)
	}
	dir := filepath.Join("testdata", "fuzz", target)
	update := os.Getenv(UpdateEnv) == "1"
	if update {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, s := range seeds {
		if s.Name == "" || seen[s.Name] || filepath.Base(s.Name) != s.Name {
			t.Fatalf("%s: bad or duplicate seed name %q", target, s.Name)
		}
		seen[s.Name] = true
		want, err := Marshal(s.Args...)
		if err != nil {
			t.Fatalf("%s/%s: %v", target, s.Name, err)
		}
		path := filepath.Join(dir, s.Name)
		if update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed corpus %s: %v (regenerate with %s=1 go test -run TestSeedCorpus)", path, err, UpdateEnv)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("seed corpus %s is out of date (regenerate with %s=1 go test -run TestSeedCorpus)", path, UpdateEnv)
		}
	}
}

package store

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/momgate/momgate/statecheck"
)

// A registered decoder makes a JSON state file that is JSON but not what
// it decodes Damaged; InspectOptions.NoDecoders (a caller about to
// replace the files) skips it.
func TestInspectRunsDecodersUnlessToldNot(t *testing.T) {
	RegisterSchema(statecheck.RoleMom, "legacy.json", func(data []byte) error {
		if string(data) != `{"ok":true}` {
			return errors.New("not the test's legacy.json")
		}
		return nil
	})
	t.Cleanup(func() { delete(schemas, schemaKey{statecheck.RoleMom, "legacy.json"}) })
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "legacy.json"), []byte(`{"ok":false}`), 0o600); err != nil {
		t.Fatal(err)
	}
	damaged := func(in *Inspection) bool {
		return slices.ContainsFunc(in.Findings, func(f statecheck.Finding) bool {
			return f.File == "legacy.json" && f.Problem == statecheck.Damaged
		})
	}
	in, err := InspectDir(dir, statecheck.RoleMom, [16]byte{})
	if err != nil || !damaged(in) {
		t.Fatalf("with its decoder: %+v, %v; want legacy.json damaged", in, err)
	}
	in, err = InspectDirWith(dir, statecheck.RoleMom, [16]byte{}, InspectOptions{NoDecoders: true})
	if err != nil || damaged(in) {
		t.Fatalf("without decoders: %+v, %v; want nothing found", in, err)
	}
}

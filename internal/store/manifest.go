package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
)

// ManifestName is the state directory's manifest: the files the
// directory must hold, so that a deleted one is told from one never
// written (docs/SECURITY.md section 7). It changes only when the set does
// (init, enrollment, the first start of a version that adds a file), not
// with the files' contents.
const ManifestName = "manifest.json"

// ManifestFormat is the manifest's format number.
const ManifestFormat = 1

// Manifest is the decoded manifest.
type Manifest struct {
	Format int      `json:"format"`
	Role   string   `json:"role"`  // "server" or "mom"
	Files  []string `json:"files"` // base names, sorted
	// Restored is set by `state restored`: the directory was restored
	// from a backup, so its replay marks are older than the state they
	// replace. The next start treats them as lost and clears it.
	Restored bool `json:"restored,omitempty"`
}

// Lists reports whether the manifest names file.
func (m *Manifest) Lists(file string) bool {
	return m != nil && slices.Contains(m.Files, file)
}

// LoadManifest reads dir's manifest: nil and no error if there is none,
// an error wrapping ErrCorrupt if it does not decode or is not canonical.
func LoadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, ManifestName)
	var m Manifest
	err := LoadJSON(path, &m)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if m.Format != ManifestFormat || (m.Role != "server" && m.Role != "mom") || !validNames(m.Files) {
		return nil, fmt.Errorf("load %s: %w: format %d, role %q, files %q", path, ErrCorrupt, m.Format, m.Role, m.Files)
	}
	return &m, nil
}

func validNames(files []string) bool {
	for i, f := range files {
		if f == "" || filepath.Base(f) != f || f == ManifestName || (i > 0 && files[i-1] >= f) {
			return false
		}
	}
	return true
}

// SaveManifest writes dir's manifest atomically: role and files (sorted,
// without duplicates).
func SaveManifest(dir, role string, files []string) error {
	return saveManifest(dir, Manifest{Format: ManifestFormat, Role: role, Files: files})
}

// SaveRestoredManifest is SaveManifest with the Restored flag set: the
// first manifest of a directory made from a backup (momgate-server
// restore), so that a restore killed before its end never leaves a
// directory whose replay marks a start takes as current.
func SaveRestoredManifest(dir, role string, files []string) error {
	return saveManifest(dir, Manifest{Format: ManifestFormat, Role: role, Files: files, Restored: true})
}

// MarkRestored sets the manifest's Restored flag (`state restored`); it
// fails if dir has no manifest that decodes.
func MarkRestored(dir string) error {
	m, err := LoadManifest(dir)
	if err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("%s has no %s: it is not a state directory of this version, or lost its manifest", dir, ManifestName)
	}
	m.Restored = true
	return saveManifest(dir, *m)
}

func saveManifest(dir string, m Manifest) error {
	files := slices.Clone(m.Files)
	slices.Sort(files)
	files = slices.Compact(files)
	m.Files = files
	if !validNames(files) {
		return fmt.Errorf("save manifest of %s: bad file names %q", dir, files)
	}
	return SaveJSON(filepath.Join(dir, ManifestName), m, 0o600)
}

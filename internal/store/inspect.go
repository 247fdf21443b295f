package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// ErrWrongRole means a state directory belongs to the other daemon.
var ErrWrongRole = errors.New("state directory belongs to another kind of daemon")

// Inspection is what InspectDir found in a state directory: the findings
// for statecheck.Judge, and the mark store and journal as read, for the
// daemon to open once the verdict allows it.
type Inspection struct {
	Role     statecheck.Role
	Findings []statecheck.Finding
	Manifest *Manifest     // nil: none (a directory of an older version, or deleted)
	Expected []string      // the files whose absence is a loss
	Marks    *MarkState    // the mark store as read
	Journal  *JournalState // the server's registry journal; nil at a MOM
	// RotationJournal is the server's rotation journal (rotation.journal
	// beside rotation.json); nil at a MOM.
	RotationJournal *JournalState
	// DenyJournal is the server's deny list journal (deny.journal beside
	// deny.json); nil at a MOM.
	DenyJournal *JournalState

	noDecoders bool // InspectOptions.NoDecoders
}

// InspectDir reads every state file of a directory of role without
// writing anything and reports what is missing, damaged, cut short, not
// provably whole, inconsistent or in an old format. A file is expected
// when the manifest lists it; without a manifest, when files of the
// current formats show that one existed (it was deleted), every file of
// the role is. boot is BootID(). Only I/O errors and a directory of the
// other role are errors.
func InspectDir(dir string, role statecheck.Role, boot [16]byte) (*Inspection, error) {
	return InspectDirWith(dir, role, boot, InspectOptions{})
}

// InspectOptions change what InspectDir does.
type InspectOptions struct {
	// NoDecoders skips the loaders' decoders (RegisterSchema,
	// RegisterJournalSchema): for a caller about to replace the JSON
	// state files (a group member writing the replica out), which only
	// needs the journals' states to fold them. What it does not rewrite
	// (identity.json, and rotation.json or deny.json when the replica has
	// none) is checked by the start that follows, with the decoders.
	NoDecoders bool
}

// InspectDirWith is InspectDir with options.
func InspectDirWith(dir string, role statecheck.Role, boot [16]byte, opts InspectOptions) (*Inspection, error) {
	in := &Inspection{Role: role, noDecoders: opts.NoDecoders}
	m, err := LoadManifest(dir)
	switch {
	case errors.Is(err, ErrCorrupt):
		in.find(ManifestName, statecheck.Damaged, "%v", err)
	case err != nil:
		return nil, err
	case m != nil && m.Role != role.String():
		return nil, fmt.Errorf("%s: %w: its manifest says %s, this is the %s", dir, ErrWrongRole, m.Role, role)
	}
	in.Manifest = m
	used := false // a directory without a manifest that a daemon ran on
	switch {
	case m != nil:
		// A manifest written by a daemon's start (it lists the mark
		// store) never vouches for fewer files than the first version
		// with manifests wrote: only files added since may be absent
		// from an older one (their first start creates them). One that
		// lists fewer was edited; the files it dropped are expected all
		// the same. (init's manifest lists only what init writes.)
		in.Expected = slices.Clone(m.Files)
		if m.Lists(MarkLogName) || m.Lists(MarkSnapName) {
			for _, f := range statecheck.BaseFiles(role, exists(dir, "mom.json") || role == statecheck.RoleServer) {
				if !slices.Contains(in.Expected, f) {
					in.Expected = append(in.Expected, f)
				}
			}
		}
	case err != nil || currentFormats(dir) || role == statecheck.RoleServer && SnapshotMarked(filepath.Join(dir, "state.json")):
		if err == nil {
			in.find(ManifestName, statecheck.Missing, "files of this version are present (a mark store or journal of the current format, or a state.json this version wrote)")
		}
		in.Expected = statecheck.Files(role, exists(dir, "mom.json") || exists(dir, "identity.json"))
	default:
		// No manifest and nothing that proves this version ran here: a
		// directory of an older version, or one whose manifest was
		// deleted together with every file that would say so. The
		// files an enrollment (MOM) or init (server) wrote together are
		// expected together, and the upgrade is fail-closed
		// (docs/SECURITY.md section 7.1): the marks of a directory
		// without a manifest vouch for nothing, and a MOM holds its deny
		// list, its upgraded set and its sealed-session state until the
		// server sends them.
		in.Expected = enrolledFiles(dir, role)
		used = len(in.Expected) > 0
		if used && role == statecheck.RoleMom {
			in.Expected = append(in.Expected, "deny.json", "legacy.json", "sessions.json")
		}
	}
	if m != nil && m.Restored {
		in.find(MarkLogName, statecheck.Unproven, "the directory was restored from a backup (state restored): its marks are older than those it replaces")
	}
	for _, name := range statecheck.Files(role, true) {
		switch name {
		case MarkSnapName, MarkLogName, "state.journal", "rotation.journal", "deny.journal":
			continue // read by their stores below
		}
		f, err := in.inspectFile(dir, name, slices.Contains(in.Expected, name))
		if err != nil {
			return nil, err
		}
		if f != nil {
			in.Findings = append(in.Findings, *f)
		}
	}
	if in.Marks, err = ReadMarkStore(dir, MarkOptions{Expect: slices.Contains(in.Expected, MarkLogName), Boot: boot}); err != nil {
		return nil, err
	}
	in.add(in.Marks.Findings)
	if used {
		in.find(MarkLogName, statecheck.Unproven, "no manifest vouches for the mark store (a directory of an older version, or its manifest deleted with its marks): "+
			"a PING admitted before could be admitted again")
	}
	if role == statecheck.RoleServer {
		in.Journal, err = ReadStateJournal(filepath.Join(dir, "state.journal"),
			JournalOptions{Snapshot: filepath.Join(dir, "state.json"), Expect: slices.Contains(in.Expected, "state.journal")})
		if err != nil {
			return nil, err
		}
		in.add(in.Journal.Findings)
		if err := in.checkJournal(in.Journal); err != nil {
			return nil, err
		}
		in.RotationJournal, err = ReadStateJournal(filepath.Join(dir, "rotation.journal"),
			JournalOptions{Snapshot: filepath.Join(dir, "rotation.json"), Expect: slices.Contains(in.Expected, "rotation.journal")})
		if err != nil {
			return nil, err
		}
		in.add(in.RotationJournal.Findings)
		if err := in.checkJournal(in.RotationJournal); err != nil {
			return nil, err
		}
		in.DenyJournal, err = ReadStateJournal(filepath.Join(dir, "deny.journal"),
			JournalOptions{Snapshot: filepath.Join(dir, "deny.json"), Expect: slices.Contains(in.Expected, "deny.journal")})
		if err != nil {
			return nil, err
		}
		in.add(in.DenyJournal.Findings)
		if err := in.checkJournal(in.DenyJournal); err != nil {
			return nil, err
		}
	}
	in.crossCheck(dir)
	return in, nil
}

// DropRecords lets go of the journals' records and what their schemas
// built, once the daemon's stores have opened on them: at 100,000 nodes
// they would otherwise stay in memory for the daemon's life.
func (in *Inspection) DropRecords() {
	for _, js := range []*JournalState{in.Journal, in.RotationJournal, in.DenyJournal} {
		if js != nil {
			js.Records, js.Checked = nil, nil
		}
	}
}

func (in *Inspection) find(file string, p statecheck.Problem, format string, args ...any) {
	in.add([]statecheck.Finding{{File: file, Problem: p, Detail: fmt.Sprintf(format, args...)}})
}

// add appends findings, one per file and problem.
func (in *Inspection) add(fs []statecheck.Finding) {
	for _, f := range fs {
		if !slices.ContainsFunc(in.Findings, func(g statecheck.Finding) bool { return g.File == f.File && g.Problem == f.Problem }) {
			in.Findings = append(in.Findings, f)
		}
	}
}

// Judge is statecheck.Judge over the findings.
func (in *Inspection) Judge(dir string) statecheck.Verdict {
	return statecheck.Judge(statecheck.Input{Role: in.Role, Dir: dir, Findings: in.Findings})
}

// inspectFile checks one whole-file state file: absent (a loss if must),
// or present and not decodable: JSON that is not one strict JSON value,
// or a ceiling that fails its checksum. What the daemon's own loader
// refuses beyond that it reports as Damaged too.
func (in *Inspection) inspectFile(dir, name string, must bool) (*statecheck.Finding, error) {
	role := in.Role
	path := filepath.Join(dir, name)
	data, err := readCapped(path, MaxJSONSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if must {
			return &statecheck.Finding{File: name, Problem: statecheck.Missing, Detail: "the directory must hold it (its manifest, or the files written with it, say so)"}, nil
		}
		return nil, nil
	case errors.Is(err, statefile.ErrNotRegular):
		// Planted, not damaged: a recovery would write the file by a
		// rename that a directory there refuses for ever, so the
		// administrator removes it first.
		return nil, err
	case err != nil:
		return &statecheck.Finding{File: name, Problem: statecheck.Damaged, Detail: err.Error()}, nil
	}
	if name == "ceiling" {
		if _, err := DecodeCeiling(data); err != nil {
			return &statecheck.Finding{File: name, Problem: statecheck.Damaged, Detail: err.Error()}, nil
		}
		return nil, nil
	}
	var v json.RawMessage
	if err := strictjson.Decode(data, &v); err != nil {
		detail := err.Error()
		if allZero(data) {
			detail = fmt.Sprintf("%d zero bytes", len(data))
		} else if i := bytes.IndexByte(data, 0); i >= 0 {
			detail = fmt.Sprintf("zeroed from byte %d: %v", i, err)
		}
		return &statecheck.Finding{File: name, Problem: statecheck.Damaged, Detail: detail}, nil
	}
	if in.noDecoders || isJournalSnapshot(role, name) {
		return nil, nil // not asked for, or checked with its journal (checkJournal)
	}
	if err := checkSchema(role, name, data); err != nil {
		return &statecheck.Finding{File: name, Problem: statecheck.Damaged, Detail: err.Error()}, nil
	}
	return nil, nil
}

// SnapshotMarked reports whether the server's state.json at path says
// that a version with a manifest wrote it (its "manifest" member): then
// the directory had a manifest, and a missing one was deleted. Only a
// file that decodes as a JSON object counts.
func SnapshotMarked(path string) bool {
	data, err := readCapped(path, MaxJSONSize)
	if err != nil {
		return false
	}
	var top map[string]json.RawMessage
	if json.Unmarshal(data, &top) != nil {
		return false
	}
	return string(top["manifest"]) == "true"
}

// currentFormats reports whether dir holds a mark log or a journal of
// the current format: then it had a manifest too.
func currentFormats(dir string) bool {
	return hasPrefix(filepath.Join(dir, MarkLogName), MarkLogMagic) ||
		hasPrefix(filepath.Join(dir, MarkSnapName), SnapshotMagic2) ||
		hasPrefix(filepath.Join(dir, "state.journal"), JournalMagic)
}

func hasPrefix(path, magic string) bool {
	f, err := openRegular(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, len(magic))
	n, _ := f.Read(b)
	return string(b[:n]) == magic
}

// enrolledFiles are the files that must exist beside the ones found in a
// directory without a manifest: a MOM's mom.json says it enrolled, so its
// identity and keyring exist; a server's identity, keyring and registry
// snapshot are written together by init.
func enrolledFiles(dir string, role statecheck.Role) []string {
	switch role {
	case statecheck.RoleMom:
		if exists(dir, "mom.json") {
			return []string{"identity.json", "keyring.json", "mom.json"}
		}
	case statecheck.RoleServer:
		if exists(dir, "identity.json") || exists(dir, "keyring.json") || exists(dir, "state.json") {
			return []string{"identity.json", "keyring.json", "state.json"}
		}
	}
	return nil
}

func exists(dir, name string) bool {
	_, err := os.Lstat(filepath.Join(dir, name))
	return err == nil
}

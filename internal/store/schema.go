package store

import (
	"fmt"
	"path/filepath"
	"slices"

	"github.com/momgate/momgate/statecheck"
)

// A schema is what a daemon's loader refuses in a JSON state file of its
// role beyond its not being one strict JSON value: an unknown field, an
// entry that does not parse. Without it the inspection would find such a
// file whole ("start") and the loader would then refuse the start, or the
// other way round; with it the inspection reports the file Damaged, so
// `state check` and the daemon take the same documented step. The
// daemons' packages register theirs at init.
type schemaKey struct {
	role statecheck.Role
	name string
}

var schemas = map[schemaKey]func(data []byte) error{}

// RegisterSchema makes check, the strict decoder a daemon of role loads
// the JSON state file name with, part of its inspection. Call it from an
// init function only.
func RegisterSchema(role statecheck.Role, name string, check func(data []byte) error) {
	schemas[schemaKey{role, name}] = check
}

// checkSchema runs the schema registered for name, if any.
func checkSchema(role statecheck.Role, name string, data []byte) error {
	if check := schemas[schemaKey{role, name}]; check != nil {
		return check(data)
	}
	return nil
}

// A journal schema is what a daemon's start refuses in the lines of a
// journal whose checksums hold: a record that does not decode, or a
// snapshot and records that do not make a state the daemon accepts.
// Without it the inspection would find such a journal whole and the start
// would then refuse on its replay; with it the journal is Damaged. What
// it builds (the replayed state) is kept in JournalState.Checked for the
// start, which then neither decodes nor replays the files again.
type journalSchema struct {
	snapshot string // the snapshot's file name
	check    func(snapshot []byte, recs []JournalRecord) (any, error)
}

var journalSchemas = map[schemaKey]journalSchema{}

// RegisterJournalSchema makes check, the replay a daemon of role applies
// the journal name's records over its snapshot file with (nil: no
// snapshot), part of its inspection; it returns what it built. It
// replaces the file schema of the snapshot, which its decoding must
// include. It runs on a journal the start replays: one with no finding
// on it or its snapshot but an old format; on a journal with a finding of
// its own the snapshot's file schema runs alone. Call it from an init
// function only.
func RegisterJournalSchema(role statecheck.Role, name, snapshot string, check func(snapshot []byte, recs []JournalRecord) (any, error)) {
	journalSchemas[schemaKey{role, name}] = journalSchema{snapshot: snapshot, check: check}
}

// isJournalSnapshot reports whether name is the snapshot of a journal
// with a schema: its own schema then runs in checkJournal.
func isJournalSnapshot(role statecheck.Role, name string) bool {
	for k, js := range journalSchemas {
		if k.role == role && js.snapshot == name {
			return true
		}
	}
	return false
}

// checkJournal runs the journal schema registered for js, if any, and
// reports a journal whose records do not replay as Damaged (or its
// snapshot, if that alone does not load).
func (in *Inspection) checkJournal(js *JournalState) error {
	jname, sname := filepath.Base(js.path), filepath.Base(js.snapshot)
	schema, ok := journalSchemas[schemaKey{in.Role, jname}]
	if !ok || in.noDecoders {
		return nil
	}
	if in.foundProblem(sname, statecheck.Damaged) {
		return nil // damaged already
	}
	var snap []byte
	if js.haveSnap {
		var err error
		if snap, err = readCapped(js.snapshot, MaxJSONSize); err != nil {
			return fmt.Errorf("read journal snapshot %s: %w", js.snapshot, err)
		}
	}
	if in.Found(sname) || in.Found(jname) {
		// The start does not replay the journal (it is lost or refused
		// already); the snapshot is still checked as its loader decodes
		// it, so that the findings say what is wrong with it.
		if err := checkSchema(in.Role, sname, snap); snap != nil && err != nil {
			in.find(sname, statecheck.Damaged, "%v", err)
		}
		return nil
	}
	built, err := schema.check(snap, js.Records)
	switch {
	case err == nil:
		js.Checked = built
	case len(js.Records) > 0 && snapLoads(schema, snap):
		in.find(jname, statecheck.Damaged, "its lines match their checksum but do not replay over %s: %v", sname, err)
	default:
		// The snapshot alone does not load: it is the damaged one.
		in.find(sname, statecheck.Damaged, "does not load: %v", err)
	}
	return nil
}

func snapLoads(schema journalSchema, snap []byte) bool {
	_, err := schema.check(snap, nil)
	return err == nil
}

// A cross check is what a daemon's start refuses in two state files that
// each decode but do not agree (a keyring and the rotation record, one of
// them restored or replaced alone). It runs after every file and journal
// has been inspected, unless InspectOptions.NoDecoders, and returns the
// findings to add.
var crossChecks = map[statecheck.Role][]func(dir string, in *Inspection) []statecheck.Finding{}

// RegisterCrossCheck adds check to the inspection of a directory of role.
// Call it from an init function only.
func RegisterCrossCheck(role statecheck.Role, check func(dir string, in *Inspection) []statecheck.Finding) {
	crossChecks[role] = append(crossChecks[role], check)
}

// Found reports whether the inspection has a finding on file, other than
// an upgrade.
func (in *Inspection) Found(file string) bool { return in.foundProblem(file, 0) }

// foundProblem reports whether the inspection has a finding p (0: any
// but an upgrade) on file.
func (in *Inspection) foundProblem(file string, p statecheck.Problem) bool {
	return slices.ContainsFunc(in.Findings, func(f statecheck.Finding) bool {
		return f.File == file && f.Problem != statecheck.Upgraded && (p == 0 || f.Problem == p)
	})
}

func (in *Inspection) crossCheck(dir string) {
	if in.noDecoders {
		return
	}
	for _, check := range crossChecks[in.Role] {
		in.add(check(dir, in))
	}
}

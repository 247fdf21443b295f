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
// would then refuse on its replay; with it the journal is Damaged.
var journalSchemas = map[schemaKey]func(snapshot []byte, recs []JournalRecord) error{}

// RegisterJournalSchema makes check, the replay a daemon of role applies
// the journal name's records over its snapshot with (nil: no snapshot),
// part of its inspection. It runs only on a journal the start replays:
// one with no finding on it or its snapshot but an old format. Call it
// from an init function only.
func RegisterJournalSchema(role statecheck.Role, name string, check func(snapshot []byte, recs []JournalRecord) error) {
	journalSchemas[schemaKey{role, name}] = check
}

// checkJournal runs the journal schema registered for js, if any, and
// reports a journal whose records do not replay as Damaged.
func (in *Inspection) checkJournal(js *JournalState) error {
	jname, sname := filepath.Base(js.path), filepath.Base(js.snapshot)
	check := journalSchemas[schemaKey{in.Role, jname}]
	if check == nil || slices.ContainsFunc(in.Findings, func(f statecheck.Finding) bool {
		return (f.File == jname || f.File == sname) && f.Problem != statecheck.Upgraded
	}) {
		return nil // lost or refused already: the start does not replay it
	}
	var snap []byte
	if js.haveSnap {
		var err error
		if snap, err = readCapped(js.snapshot, MaxJSONSize); err != nil {
			return fmt.Errorf("read journal snapshot %s: %w", js.snapshot, err)
		}
	}
	switch err := check(snap, js.Records); {
	case err == nil:
	case len(js.Records) > 0 && check(snap, nil) == nil:
		in.find(jname, statecheck.Damaged, "its lines match their checksum but do not replay over %s: %v", sname, err)
	default:
		// The snapshot alone does not load: it is the damaged one.
		in.find(sname, statecheck.Damaged, "does not load: %v", err)
	}
	return nil
}

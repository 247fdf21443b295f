package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/rotation"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// The server's loaders' decoders of its JSON state files, registered with
// the inspection (store.RegisterSchema; deny.json's is in denystore.go):
// a file that is JSON but not what the start decodes (an unknown field, a
// wrong type, an entry that does not parse, a format this version does
// not read) is Damaged, so `state check` says what the start then does.
// identity.json, keyring.json and state.json damaged refuse the start, as
// the start's own decode would; rotation.json damaged is lost, and the
// start begins a new key rotation (rotor.loadStore). A journal that
// follows the file (a fold wrote it) does not hide it.
func init() {
	store.RegisterSchema(statecheck.RoleServer, identityFile, checkIdentityFile)
	store.RegisterSchema(statecheck.RoleServer, keyringFile, checkKeyringFile)
	store.RegisterSchema(statecheck.RoleServer, stateFile, checkStateFile)
	store.RegisterSchema(statecheck.RoleServer, rotationFile, checkRotationFile)
	store.RegisterJournalSchema(statecheck.RoleServer, journalFile, stateFile, func(snap []byte, recs []store.JournalRecord) (any, error) {
		c, err := checkStateJournal(snap, recs)
		if c == nil {
			return nil, err // a nil *checkedState is not a nil any
		}
		return c, err
	})
	store.RegisterJournalSchema(statecheck.RoleServer, rotationJournalFile, rotationFile, func(snap []byte, recs []store.JournalRecord) (any, error) {
		rec, err := checkRotationJournal(snap, recs)
		if err != nil {
			return nil, err
		}
		return rec, nil
	})
	store.RegisterCrossCheck(statecheck.RoleServer, checkRingAgainstRotation)
	store.RegisterJournalSchema(statecheck.RoleServer, denyJournalFile, denyFile, func(snap []byte, recs []store.JournalRecord) (any, error) {
		return nil, checkDenyJournal(snap, recs)
	})
}

// The journals' lines are checked as the start replays them
// (store.RegisterJournalSchema): a line whose checksum holds but whose
// record does not decode (it was written so, or made to match) or does
// not replay into a state the start accepts makes the journal Damaged,
// which refuses the start naming it, as its replay would.

// checkedState is what checkStateJournal built: the start's registry,
// taken by openStateStore and open instead of loading state.json and
// replaying the journal again (at 100,000 nodes that was most of a
// start).
type checkedState struct {
	p      persisted // state.json with the journal replayed over it
	marked bool      // state.json's own manifest mark
	reg    *registry
}

// checkStateJournal is openStateStore's replay of state.json and
// state.journal (loadState's decoding included) and open's building of
// the registry from the result.
func checkStateJournal(snapshot []byte, recs []store.JournalRecord) (*checkedState, error) {
	if snapshot == nil {
		return nil, nil // state.json missing: a finding of its own
	}
	var p persisted
	if err := strictjson.Decode(snapshot, &p); err != nil {
		return nil, err
	}
	if err := checkStateFormat(p); err != nil {
		return nil, err
	}
	marked := p.Manifest
	p, err := replayJournal(p, recs)
	if err != nil {
		return nil, err
	}
	reg, err := newRegistry(p)
	if err != nil {
		return nil, err
	}
	return &checkedState{p: p, marked: marked, reg: reg}, nil
}

// checkRotationJournal is openRotStore's replay of rotation.journal over
// rotation.json.
func checkRotationJournal(snapshot []byte, recs []store.JournalRecord) (rotation.Record, error) {
	var rec rotation.Record
	if snapshot != nil {
		var err error
		if rec, err = rotation.DecodeRecord(snapshot); err != nil {
			return rec, err
		}
	}
	return replayRotation(rec, recs)
}

// checkRingAgainstRotation is the start's restore of the rotation record
// over the keyring (rotor.restore, rotation.Restore): a record in grace
// or retiring for a key the keyring does not hold active refuses the
// start, so keyring.json is inconsistent (one of the two was restored or
// replaced alone, as the rotation's own files never disagree).
func checkRingAgainstRotation(dir string, in *store.Inspection) []statecheck.Finding {
	rec, ok := in.RotationJournal.Checked.(rotation.Record)
	if !ok || in.Found(keyringFile) {
		return nil // lost, refused, or not replayed: a finding of its own
	}
	data, err := os.ReadFile(filepath.Join(dir, keyringFile))
	if err != nil {
		return nil // inspected already: missing or unreadable is its finding
	}
	ring, err := keys.DecodeKeyring(data)
	if err != nil {
		return nil
	}
	if _, _, err := rotation.Restore(rand.Reader, rotation.Params{}, rec, ring, nil, time.Now()); errors.Is(err, rotation.ErrInconsistent) {
		return []statecheck.Finding{{File: keyringFile, Problem: statecheck.Inconsistent,
			Detail: fmt.Sprintf("it and %s disagree (one of them was restored or replaced alone): %v", rotationFile, err)}}
	}
	return nil
}

// checkDenyJournal is openDenyStore's replay of deny.journal over
// deny.json.
func checkDenyJournal(snapshot []byte, recs []store.JournalRecord) error {
	b := newDenyBook()
	if snapshot != nil {
		var err error
		if b, err = denyBookOf(snapshot); err != nil {
			return err
		}
	}
	return replayDeny(b, recs)
}

// checkIdentityFile is open's decoding of identity.json
// (keystore.LoadIdentity).
func checkIdentityFile(data []byte) error {
	_, err := keys.DecodeIdentity(data)
	return err
}

// checkKeyringFile is open's decoding of keyring.json
// (keystore.LoadKeyring) and its demand for an active key.
func checkKeyringFile(data []byte) error {
	ring, err := keys.DecodeKeyring(data)
	if err != nil {
		return err
	}
	return requireActive(ring)
}

// requireActive refuses a server keyring without an active key: the
// server seals with it.
func requireActive(ring *keys.Keyring) error {
	if ring.Active() == nil {
		return keys.ErrNoActive
	}
	return nil
}

// checkStateFile is loadState's decoding of state.json (store.LoadJSON
// decodes with strictjson.Decode), for a state.json whose journal has a
// finding; otherwise checkStateJournal decodes it, and builds the
// registry from it and the journal's records as open does.
func checkStateFile(data []byte) error {
	var p persisted
	if err := strictjson.Decode(data, &p); err != nil {
		return err
	}
	return checkStateFormat(p)
}

// checkStateFormat refuses a state.json of a format this version does not
// read.
func checkStateFormat(p persisted) error {
	if p.Format != 1 {
		return fmt.Errorf("unsupported format %d", p.Format)
	}
	return nil
}

// checkRotationFile is loadRotation's decoding of rotation.json.
func checkRotationFile(data []byte) error {
	_, err := rotation.DecodeRecord(data)
	return err
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/rotation"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// rotationJournalFile is the journal of the rotation record, beside its
// snapshot rotation.json: the same store.Journal format 2 as state.journal,
// its header naming rotation.json's checksum (docs/KEYS.md "Files").
const rotationJournalFile = "rotation.journal"

// Record kinds of rotation.journal, the same as the group's records.
const (
	kindRotation = replica.RecordRotation // key "record": the record without its behind list
	kindBehind   = replica.RecordBehind   // key: node id; value {}; deleted: left the list
)

// rotationRecordKey is the key of the kindRotation record.
const rotationRecordKey = "record"

// behindValue is the value of a kindBehind record.
var behindValue = json.RawMessage(`{}`)

// rotCompactMinBytes is the journal size below which rotation.journal is
// never folded into rotation.json; above it, it is folded once it is
// larger than the snapshot, so a step costs O(1) bytes amortised.
const rotCompactMinBytes = 64 << 10

// errRotationJournalDamaged means rotation.journal holds a line that fails
// its checksum or decoding before its end: the start is refused rather
// than the lines after it dropped.
var errRotationJournalDamaged = errors.New("rotation journal damaged")

// rotStore persists the rotation record as rotation.json plus
// rotation.journal (single server), or as records committed through the
// group (replicate set): a step writes the record without its behind list
// and one line per node that entered or left the list, not the whole
// list. It keeps the record as on disk (the list as a set) to fold it.
type rotStore struct {
	dir       string
	journal   *store.Journal
	replicate func(string, []replica.StateRecord) error
	head      rotation.Record // as on disk, Behind nil
	behind    map[proto.NodeID]struct{}
	snapSize  int64
}

// rotationLost reports whether the inspection found the rotation's files
// lost (a finding other than damage, which refuses, and an old format,
// which loses nothing: its records are replayed and the journal
// rewritten): then the record starts over (a zero record), as when
// rotation.json is deleted.
func rotationLost(js *store.JournalState, lostSnapshot bool) (bool, error) {
	lost := lostSnapshot
	for _, f := range js.Findings {
		if f.Problem == statecheck.Upgraded {
			continue
		}
		if f.File == rotationJournalFile && f.Problem == statecheck.Damaged {
			return false, fmt.Errorf("%w: %s: %s; restore the state directory whole from its last backup, "+
				"or move %s and %s aside to start a new key rotation at once", errRotationJournalDamaged, f.File, f.Detail, rotationFile, rotationJournalFile)
		}
		lost = true
	}
	return lost, nil
}

// openRotStore loads the rotation record from rotation.json and the
// journal js (as inspected at start, or read again by reload). lost
// means the files were found lost: the record is then the zero one and
// is folded into a new snapshot at once.
func openRotStore(dir string, js *store.JournalState, lost bool, replicate func(string, []replica.StateRecord) error) (*rotStore, rotation.Record, error) {
	rs := &rotStore{dir: dir, replicate: replicate, behind: map[proto.NodeID]struct{}{}}
	var rec rotation.Record
	snapshot := filepath.Join(dir, rotationFile)
	if !lost {
		var err error
		if rec, err = loadRotation(snapshot); err != nil {
			return nil, rec, err
		}
		if rec, err = replayRotation(rec, js.Records); err != nil {
			return nil, rec, fmt.Errorf("replay %s: %w", filepath.Join(dir, rotationJournalFile), err)
		}
	}
	j, err := js.Open()
	if err != nil {
		return nil, rec, err
	}
	rs.journal = j
	rs.remember(rec)
	fi, err := os.Lstat(snapshot)
	switch {
	case err == nil && !lost:
		rs.snapSize = fi.Size()
	case replicate == nil:
		// A first start (no rotation.json yet) or a loss: the journal
		// vouches for a snapshot of the record from now on.
		if err := rs.fold(); err != nil {
			j.Close()
			return nil, rec, err
		}
	}
	return rs, rec, nil
}

// replayRotation applies journal records over the snapshot rec.
func replayRotation(rec rotation.Record, recs []store.JournalRecord) (rotation.Record, error) {
	if len(recs) == 0 {
		return rec, nil
	}
	set := make(map[proto.NodeID]struct{}, len(rec.Behind))
	for _, n := range rec.Behind {
		set[n] = struct{}{}
	}
	for i, r := range recs {
		if err := applyRotationRecord(&rec, set, r.Kind, r.Key, r.Value, r.Deleted); err != nil {
			return rec, fmt.Errorf("record %d: %w", i, err)
		}
		if len(set) > rotation.MaxNodes {
			return rec, fmt.Errorf("record %d: %w: more than %d nodes behind", i, rotation.ErrInvalidRecord, rotation.MaxNodes)
		}
	}
	rec.Behind = sortedNodeSet(set)
	return rec, nil
}

// applyRotationRecord applies one rotation or behind record to head (the
// record without its list) and set (the list); it refuses a record that
// does not decode strictly.
func applyRotationRecord(head *rotation.Record, set map[proto.NodeID]struct{}, kind, key string, value json.RawMessage, deleted bool) error {
	switch kind {
	case kindRotation:
		r, err := decodeRotationHead(key, value, deleted)
		if err != nil {
			return err
		}
		*head = r
	case kindBehind:
		id, err := decodeBehind(key, value, deleted)
		if err != nil {
			return err
		}
		if deleted {
			delete(set, id)
		} else {
			set[id] = struct{}{}
		}
	default:
		return fmt.Errorf("unknown record kind %q", kind)
	}
	return nil
}

// decodeRotationHead strictly decodes a kindRotation record: a rotation
// record (rotation.DecodeRecord) without a behind list, under key
// "record".
func decodeRotationHead(key string, value json.RawMessage, deleted bool) (rotation.Record, error) {
	if key != rotationRecordKey || deleted {
		return rotation.Record{}, fmt.Errorf("rotation record %q (deleted %v): want key %q and a value", key, deleted, rotationRecordKey)
	}
	r, err := rotation.DecodeRecord(value)
	if err != nil {
		return r, err
	}
	if len(r.Behind) > 0 {
		return r, fmt.Errorf("%w: a journal's rotation record carries no behind list (behind records do)", rotation.ErrInvalidRecord)
	}
	return r, nil
}

// decodeBehind strictly decodes a kindBehind record: key a node id in
// canonical form, value exactly {} unless deleted.
func decodeBehind(key string, value json.RawMessage, deleted bool) (proto.NodeID, error) {
	u, err := uuid.Parse(key)
	if err != nil || len(key) != 36 || u.String() != key {
		return proto.NodeID{}, fmt.Errorf("behind record: %q is not a node id", key)
	}
	if !deleted {
		var v struct{}
		if err := strictjson.Decode(value, &v); err != nil {
			return proto.NodeID{}, fmt.Errorf("behind record %s: %w", key, err)
		}
	}
	return proto.NodeID(u), nil
}

func sortedNodeSet(set map[proto.NodeID]struct{}) []proto.NodeID {
	if len(set) == 0 {
		return nil
	}
	out := make([]proto.NodeID, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b proto.NodeID) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// remember records rec as what is on disk.
func (rs *rotStore) remember(rec rotation.Record) {
	rs.behind = make(map[proto.NodeID]struct{}, len(rec.Behind))
	for _, n := range rec.Behind {
		rs.behind[n] = struct{}{}
	}
	rec.Behind = nil
	rs.head = rec
}

// record is the whole record as on disk.
func (rs *rotStore) record() rotation.Record {
	r := rs.head
	r.Queued = slices.Clone(rs.head.Queued)
	r.Behind = sortedNodeSet(rs.behind)
	return r
}

// save persists one SaveRecord: the record and the changes to its list,
// appended to the journal or committed; the whole record instead when
// most of the list changed (a first rotation of many offline nodes).
func (rs *rotStore) save(a rotation.SaveRecord) error {
	if len(a.Changes) > 256 && (len(a.Changes) > len(rs.behind)/2 || len(a.Changes) >= replica.MaxRecords/2) {
		// Most of the list changed (or more than one command may carry):
		// the whole record is no larger than the changes.
		return rs.saveWhole(a)
	}
	head, err := rotation.EncodeRecord(a.Record)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, head); err != nil {
		return fmt.Errorf("encode rotation record: %w", err)
	}
	recs := make([]store.JournalRecord, 0, 1+len(a.Changes))
	recs = append(recs, store.JournalRecord{Kind: kindRotation, Key: rotationRecordKey, Value: buf.Bytes()})
	for _, c := range a.Changes {
		r := store.JournalRecord{Kind: kindBehind, Key: uuid.UUID(c.Node).String()}
		if c.Behind {
			r.Value = behindValue
		} else {
			r.Deleted = true
		}
		recs = append(recs, r)
	}
	if rs.replicate != nil {
		if err := rs.replicate("rotation step "+a.Step(), journalRecords(recs)); err != nil {
			return err
		}
	} else if err := rs.journal.Append(recs); err != nil {
		return err
	}
	rs.apply(a)
	if rs.replicate == nil {
		if size := rs.journal.Size(); size > rotCompactMinBytes && size > rs.snapSize {
			return rs.fold()
		}
	}
	return nil
}

func (rs *rotStore) apply(a rotation.SaveRecord) {
	r := a.Record
	r.Queued = slices.Clone(a.Record.Queued)
	r.Behind = nil
	rs.head = r
	for _, c := range a.Changes {
		if c.Behind {
			rs.behind[c.Node] = struct{}{}
		} else {
			delete(rs.behind, c.Node)
		}
	}
}

// saveWhole persists the whole record: folded into rotation.json, or
// committed as the whole file.
func (rs *rotStore) saveWhole(a rotation.SaveRecord) error {
	full := a.Apply(rs.record())
	if rs.replicate != nil {
		data, err := rotation.EncodeRecord(full)
		if err != nil {
			return err
		}
		if err := rs.replicate("rotation step "+a.Step(), []replica.StateRecord{{Kind: replica.RecordFile, Key: rotationFile, Value: data}}); err != nil {
			return err
		}
		rs.remember(full)
		return nil
	}
	old := rs.record()
	rs.remember(full)
	if err := rs.fold(); err != nil {
		rs.remember(old)
		return err
	}
	return nil
}

// fold writes the record as on disk as the new rotation.json and empties
// the journal (store.Journal.Fold: a crash at any point leaves a snapshot
// the journal vouches for).
func (rs *rotStore) fold() error {
	data, err := rotation.EncodeRecord(rs.record())
	if err != nil {
		return err
	}
	if err := rs.journal.Fold(filepath.Join(rs.dir, rotationFile), data, 0o600); err != nil {
		return err
	}
	rs.snapSize = int64(len(data))
	return nil
}

// commitWhole commits the whole record as on disk (a group's first
// rotation.json). Single server: folds it.
func (rs *rotStore) commitWhole(why string) error {
	if rs.replicate == nil {
		return rs.fold()
	}
	data, err := rotation.EncodeRecord(rs.record())
	if err != nil {
		return err
	}
	return rs.replicate(why, []replica.StateRecord{{Kind: replica.RecordFile, Key: rotationFile, Value: data}})
}

func (rs *rotStore) close() error {
	if rs == nil || rs.journal == nil {
		return nil
	}
	return rs.journal.Close()
}

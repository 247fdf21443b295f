// Package rotation is the cluster key rotation of momgate as a pure state
// machine: events in (a rotation request, a MOM's acknowledgement, a MOM
// connecting or leaving, the clock), actions out (persist the record,
// persist the keyring, send KeyUpdate, KeyActivate or KeyRetire). It does
// no I/O: the server executes the actions in order, persisting before it
// sends, and a restart rebuilds the machine from what was persisted
// (Restore), so a crash between any two actions converges (docs/KEYS.md).
//
// The phases are
//
//	idle -> distributing -> activating -> grace -> retiring -> idle
//
// distributing: a new key is the keyring's next key and is pushed, wrapped,
// to every connected node; it ends when every node that was connected has
// acknowledged it or left, or at the deadline (automatic distribution), or
// when an administrator activates it (manual distribution). activating: the
// new key becomes active, the old one previous. grace: the old key is still
// accepted. retiring: the old key is dropped everywhere and zeroed.
//
// The package also holds the MOM side of the same transitions (ApplyUpdate,
// ApplyActivate, ApplyRetire), so the two ends share one definition.
package rotation

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/strictjson"
)

// Phase is where a rotation stands.
type Phase string

// The phases of a rotation.
const (
	Idle         Phase = "idle"
	Distributing Phase = "distributing"
	Activating   Phase = "activating"
	Grace        Phase = "grace"
	Retiring     Phase = "retiring"
)

// Valid reports whether p is a defined phase.
func (p Phase) Valid() bool {
	switch p {
	case Idle, Distributing, Activating, Grace, Retiring:
		return true
	}
	return false
}

// Limits of a record, checked by DecodeRecord.
const (
	MaxReasonLen = 1024
	MaxQueued    = 64
	MaxNodes     = 1 << 20
)

// ErrInvalidRecord means a persisted rotation record does not decode.
var ErrInvalidRecord = errors.New("invalid rotation record")

// Record is the persisted state of the rotation machine. The zero Record
// is an idle machine that never rotated.
type Record struct {
	Phase      Phase
	Seq        uint64 // id of the current (or last) rotation; 0: none yet
	Reason     string
	Manual     bool       // key_distribution=manual when the rotation started
	Old, New   keys.KeyID // active key at the start; key being rolled in
	Started    time.Time
	GraceUntil time.Time      // grace phase: when the old key is retired
	Behind     []proto.NodeID // nodes known to have missed a step (a distribution waits for all others)
	Queued     []string       // reasons of requests waiting for this rotation to end
}

type recordJSON struct {
	Format     int        `json:"format"`
	Phase      string     `json:"phase"`
	Seq        uint64     `json:"seq"`
	Reason     string     `json:"reason,omitempty"`
	Manual     bool       `json:"manual,omitempty"`
	OldKey     string     `json:"old_key,omitempty"`
	NewKey     string     `json:"new_key,omitempty"`
	Started    *time.Time `json:"started,omitempty"`
	GraceUntil *time.Time `json:"grace_until,omitempty"`
	Behind     []string   `json:"behind,omitempty"`
	Queued     []string   `json:"queued,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func keyString(id keys.KeyID) string {
	if id == 0 {
		return ""
	}
	return id.String()
}

func nodeStrings(ns []proto.NodeID) []string {
	if len(ns) == 0 {
		return nil
	}
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = uuid.UUID(n).String()
	}
	return out
}

// EncodeRecord encodes r as JSON (the server's rotation.json).
func EncodeRecord(r Record) ([]byte, error) {
	phase := r.Phase
	if phase == "" {
		phase = Idle
	}
	j := recordJSON{
		Format: 1, Phase: string(phase), Seq: r.Seq, Reason: r.Reason, Manual: r.Manual,
		OldKey: keyString(r.Old), NewKey: keyString(r.New), Started: timePtr(r.Started), GraceUntil: timePtr(r.GraceUntil),
		Behind: nodeStrings(r.Behind), Queued: r.Queued,
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode rotation record: %w", err)
	}
	return append(b, '\n'), nil
}

func parseNodes(field string, in []string) ([]proto.NodeID, error) {
	if len(in) > MaxNodes {
		return nil, fmt.Errorf("%s: more than %d nodes", field, MaxNodes)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]proto.NodeID, len(in))
	seen := make(map[proto.NodeID]struct{}, len(in))
	for i, s := range in {
		u, err := uuid.Parse(s)
		if err != nil || len(s) != 36 {
			return nil, fmt.Errorf("%s[%d]: %q is not a node id", field, i, s)
		}
		out[i] = proto.NodeID(u)
		if _, dup := seen[out[i]]; dup {
			return nil, fmt.Errorf("%s[%d]: node %s listed twice", field, i, s)
		}
		seen[out[i]] = struct{}{}
	}
	return out, nil
}

func parseKey(field, s string) (keys.KeyID, error) {
	if s == "" {
		return 0, nil
	}
	id, err := keys.ParseKeyID(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return id, nil
}

// DecodeRecord strictly decodes a record: unknown fields, trailing data,
// an undefined phase, a phase without the keys it needs, or a field over
// its limit are errors wrapping ErrInvalidRecord.
func DecodeRecord(data []byte) (Record, error) {
	var j recordJSON
	if err := strictjson.Decode(data, &j); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	bad := func(err error) (Record, error) { return Record{}, fmt.Errorf("%w: %v", ErrInvalidRecord, err) }
	if j.Format != 1 {
		return bad(fmt.Errorf("format %d, want 1", j.Format))
	}
	r := Record{Phase: Phase(j.Phase), Seq: j.Seq, Reason: j.Reason, Manual: j.Manual, Queued: j.Queued}
	if !r.Phase.Valid() {
		return bad(fmt.Errorf("phase %q: want idle, distributing, activating, grace or retiring", j.Phase))
	}
	if len(r.Reason) > MaxReasonLen {
		return bad(fmt.Errorf("reason longer than %d bytes", MaxReasonLen))
	}
	if len(r.Queued) > MaxQueued {
		return bad(fmt.Errorf("more than %d queued requests", MaxQueued))
	}
	for i, q := range r.Queued {
		if len(q) > MaxReasonLen {
			return bad(fmt.Errorf("queued[%d] longer than %d bytes", i, MaxReasonLen))
		}
	}
	var err error
	if r.Old, err = parseKey("old_key", j.OldKey); err != nil {
		return bad(err)
	}
	if r.New, err = parseKey("new_key", j.NewKey); err != nil {
		return bad(err)
	}
	if r.Phase != Idle && (r.Old == 0 || r.New == 0 || r.Old == r.New || r.Seq == 0) {
		return bad(fmt.Errorf("phase %s needs a rotation seq and distinct old_key and new_key", r.Phase))
	}
	if j.Started != nil {
		r.Started = *j.Started
	}
	if j.GraceUntil != nil {
		r.GraceUntil = *j.GraceUntil
	}
	if r.Behind, err = parseNodes("behind", j.Behind); err != nil {
		return bad(err)
	}
	return r, nil
}

// sortedIDs returns the keys of a node set in byte order (deterministic
// records and action targets).
func sortedIDs[V any](m map[proto.NodeID]V) []proto.NodeID {
	out := make([]proto.NodeID, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i][:], out[j][:]) < 0 })
	return out
}

package server

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/rotation"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// The server's state in a group (docs/HA.md section 12, as built).
//
// The leader runs the server as a single server runs it: it decides every
// write under s.mu and changes its own state. Where a single server then
// appends to state.journal or rewrites keyring.json, rotation.json or
// deny.json, the leader instead commits the same records through the group
// (Config.Replicate): a write is acknowledged, to qmgr or a MOM, only once
// a quorum holds it, and a failed commit is undone exactly as a failed
// fsync is. groupState is the replicated copy of those records on every
// member: raft applies each committed entry to it, snapshots it and sends
// it to a member that is behind or new. It never touches a running
// server. A member that becomes leader writes the copy out as its state
// files (materialize) and starts the server on them, so a new leader acts
// on the whole committed state: a token redeemed under the old leader is
// used, a deleted node stays deleted, a rotation resumes at its last
// committed step.

// Files replicated whole, as RecordFile records: keyring.json; rotation.json
// and deny.json also as records of their changes (RecordRotation and
// RecordBehind, RecordDeny and RecordDeleted), and whole where most of them
// changed.
var replicatedFiles = []string{keyringFile, rotationFile, denyFile}

// membersSection is the snapshot section of the member list.
const membersSection = "members.json"

// memberRecord is one member of the group as replicated.
type memberRecord struct {
	Name    string `json:"name"`
	Raft    string `json:"raft"`    // replication address HOST:PORT
	Control string `json:"control"` // control address for MOMs HOST:PORT
	Admin   string `json:"admin,omitempty"`
	Standby bool   `json:"standby,omitempty"`
	// Join is the member's join token record (hash only) from create
	// server; Used once it joined. nil for the first member.
	Join *group.JoinRecord `json:"join,omitempty"`
	// Removed: delete server took the member out. The record stays, so
	// that every member goes on refusing the replication port to a
	// certificate in its name (groupRunner.allowPeer); create server with
	// the name makes a new member.
	Removed bool `json:"removed,omitempty"`
}

// same reports whether a and b are the same record.
func (a memberRecord) same(b memberRecord) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// groupState is the replicated state (replica.StateMachine): the server's
// state records, as the journal and the state files hold them, plus the
// member list. Safe for concurrent use; Apply is called in log order.
type groupState struct {
	mu     sync.Mutex
	meta   json.RawMessage            // the meta record; nil until the first
	nodes  map[string]nodeEntry       // by node id
	tokens map[string]json.RawMessage // by token id, hex
	files  map[string][]byte          // keyring.json
	// The deny list and the deleted nodes (nil until the first): a
	// change commits the entries and deleted nodes it changed
	// (denystore.go), an older leader deny.json whole.
	deny *denyBook
	// The rotation record: without its behind list (nil until the
	// first), and the list as a set. A rotation step commits the record
	// and the nodes that entered or left the list (rotstore.go).
	rotHead *rotation.Record
	behind  map[proto.NodeID]struct{}
	members map[string]memberRecord
	applied uint64
}

// nodeEntry is a node record as committed, with its name: state.json
// lists the nodes by name, and the record is not decoded again to sort
// them (a new leader writes state.json of every node, issue 14).
type nodeEntry struct {
	name string
	raw  json.RawMessage
}

// nodeEntryOf is the entry of a node record checked by checkRecord.
func nodeEntryOf(raw json.RawMessage) nodeEntry {
	var v struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(raw, &v) // checked by checkRecord
	return nodeEntry{name: v.Name, raw: bytes.Clone(raw)}
}

func newGroupState() *groupState {
	return &groupState{nodes: map[string]nodeEntry{}, tokens: map[string]json.RawMessage{},
		files: map[string][]byte{}, behind: map[proto.NodeID]struct{}{}, members: map[string]memberRecord{}}
}

// putRotationFile replaces the rotation record with a whole rotation.json
// (checked by checkFile).
func (g *groupState) putRotationFile(data []byte) {
	rec, _ := rotation.DecodeRecord(data)
	g.behind = make(map[proto.NodeID]struct{}, len(rec.Behind))
	for _, n := range rec.Behind {
		g.behind[n] = struct{}{}
	}
	rec.Behind = nil
	g.rotHead = &rec
}

// rotationFileOf is the whole rotation.json of head and behind, nil if
// there is no record.
func rotationFileOf(head *rotation.Record, behind map[proto.NodeID]struct{}) ([]byte, error) {
	if head == nil {
		return nil, nil
	}
	r := *head
	r.Behind = sortedNodeSet(behind)
	return rotation.EncodeRecord(r)
}

// errBadRecord is a state record that does not decode: the command is
// refused whole, alike on every member.
var errBadRecord = errors.New("invalid state record")

// checkRecord decodes r with the decoder of its kind.
func checkRecord(r replica.StateRecord) error {
	if r.Deleted {
		switch r.Kind {
		case replica.RecordNode, replica.RecordToken, replica.RecordMember:
			return nil
		case replica.RecordBehind:
			if _, err := decodeBehind(r.Key, nil, true); err != nil {
				return fmt.Errorf("%w: %v", errBadRecord, err)
			}
			return nil
		case replica.RecordDeny, replica.RecordDeleted:
			if _, err := decodeDenyRecord(r.Kind, r.Key, nil, true); err != nil {
				return fmt.Errorf("%w: %v", errBadRecord, err)
			}
			return nil
		}
		return fmt.Errorf("%w: %s %s cannot be deleted", errBadRecord, r.Kind, r.Key)
	}
	var err error
	switch r.Kind {
	case replica.RecordMeta:
		var p persisted
		if err = strictjson.Decode(r.Value, &p); err == nil && (r.Key != "server" || p.Format != 1) {
			err = fmt.Errorf("key %q, format %d", r.Key, p.Format)
		}
		if err == nil {
			err = p.Attrs.validate()
		}
	case replica.RecordNode:
		var n nodeRecord
		if err = strictjson.Decode(r.Value, &n); err == nil {
			if n.ID != r.Key {
				err = fmt.Errorf("node %s under key %s", n.ID, r.Key)
			} else {
				_, err = nodeFromRecord(n)
			}
		}
	case replica.RecordToken:
		var t keys.TokenRecord
		if err = strictjson.Decode(r.Value, &t); err == nil && hex.EncodeToString(t.ID[:]) != r.Key {
			err = fmt.Errorf("token %x under key %s", t.ID, r.Key)
		}
	case replica.RecordFile:
		err = checkFile(r.Key, r.Value)
	case replica.RecordRotation:
		_, err = decodeRotationHead(r.Key, r.Value, false)
	case replica.RecordBehind:
		_, err = decodeBehind(r.Key, r.Value, false)
	case replica.RecordDeny, replica.RecordDeleted:
		_, err = decodeDenyRecord(r.Kind, r.Key, r.Value, false)
	case replica.RecordMember:
		var m memberRecord
		if err = strictjson.Decode(r.Value, &m); err == nil && m.Name != r.Key {
			err = fmt.Errorf("member %s under key %s", m.Name, r.Key)
		}
	default:
		err = errors.New("unknown kind")
	}
	if err != nil {
		return fmt.Errorf("%w: %s %s: %v", errBadRecord, r.Kind, r.Key, err)
	}
	return nil
}

// checkFile decodes a replicated state file with its own strict decoder.
func checkFile(name string, data []byte) error {
	var err error
	switch name {
	case keyringFile:
		_, err = keys.DecodeKeyring(data)
	case rotationFile:
		_, err = rotation.DecodeRecord(data)
	case denyFile:
		_, _, err = decodeDenyFile(data)
	default:
		err = fmt.Errorf("file %q is not replicated", name)
	}
	return err
}

// Apply puts the records of one committed write into the replica. A
// command whose records do not all decode changes nothing.
func (g *groupState) Apply(index uint64, e replica.Entry) replica.Result {
	c, ok := e.Cmd.(*replica.StateRecords)
	if !ok {
		return replica.Result{Err: fmt.Errorf("%s: not an operation of this server", e.Cmd.Op())}
	}
	for _, r := range c.Records {
		if err := checkRecord(r); err != nil {
			return replica.Result{Err: err}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, r := range c.Records {
		g.putLocked(r)
	}
	g.applied = index
	return replica.Result{}
}

func (g *groupState) putLocked(r replica.StateRecord) {
	switch r.Kind {
	case replica.RecordMeta:
		g.meta = bytes.Clone(r.Value)
	case replica.RecordNode:
		if r.Deleted {
			delete(g.nodes, r.Key)
		} else {
			g.nodes[r.Key] = nodeEntryOf(r.Value)
		}
	case replica.RecordToken:
		if r.Deleted {
			delete(g.tokens, r.Key)
		} else {
			g.tokens[r.Key] = bytes.Clone(r.Value)
		}
	case replica.RecordFile:
		switch r.Key {
		case rotationFile:
			g.putRotationFile(r.Value)
		case denyFile:
			g.deny, _ = denyBookOf(r.Value) // checked by checkRecord
		default:
			g.files[r.Key] = bytes.Clone(r.Value)
		}
	case replica.RecordDeny, replica.RecordDeleted:
		if g.deny == nil {
			g.deny = newDenyBook()
		}
		_ = g.deny.applyRecord(r.Kind, r.Key, r.Value, r.Deleted) // checked by checkRecord
	case replica.RecordRotation:
		rec, _ := decodeRotationHead(r.Key, r.Value, false) // checked by checkRecord
		g.rotHead = &rec
	case replica.RecordBehind:
		id, _ := decodeBehind(r.Key, r.Value, r.Deleted)
		if r.Deleted {
			delete(g.behind, id)
		} else {
			g.behind[id] = struct{}{}
		}
	case replica.RecordMember:
		if r.Deleted {
			delete(g.members, r.Key)
			return
		}
		var m memberRecord
		_ = strictjson.Decode(r.Value, &m) // checked by checkRecord
		g.members[r.Key] = m
	}
}

// Members returns the member list, sorted by name; removed members are
// not in it.
func (g *groupState) Members() []memberRecord {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make([]memberRecord, 0, len(g.members))
	for _, m := range g.members {
		if !m.Removed {
			out = append(out, m)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// member returns one member's record; a removed member has none.
func (g *groupState) member(name string) (memberRecord, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	m, ok := g.members[name]
	if m.Removed {
		return memberRecord{}, false
	}
	return m, ok
}

// removedMember reports whether delete server removed member name (and
// no create server made a new member of that name since).
func (g *groupState) removedMember(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.members[name].Removed
}

// Nodes is the number of nodes in the replica.
func (g *groupState) Nodes() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.nodes)
}

// groupSnapshot is a frozen copy of the replica's maps (their values are
// never changed in place, only replaced).
type groupSnapshot struct {
	meta    json.RawMessage
	nodes   map[string]nodeEntry
	tokens  map[string]json.RawMessage
	files   map[string][]byte
	deny    *denyBook
	rotHead *rotation.Record
	behind  map[proto.NodeID]struct{}
	members []memberRecord
	applied uint64 // the last entry applied in the copy
}

// Snapshot freezes the replica: a copy of the maps, O(nodes) pointers.
func (g *groupState) Snapshot() (replica.Snapshot, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &groupSnapshot{meta: g.meta, nodes: make(map[string]nodeEntry, len(g.nodes)),
		tokens: make(map[string]json.RawMessage, len(g.tokens)), files: map[string][]byte{}, applied: g.applied}
	for k, v := range g.nodes {
		s.nodes[k] = v
	}
	for k, v := range g.tokens {
		s.tokens[k] = v
	}
	for k, v := range g.files {
		s.files[k] = v
	}
	if g.deny != nil {
		s.deny = g.deny.clone()
	}
	if g.rotHead != nil {
		h := *g.rotHead
		s.rotHead = &h
		s.behind = make(map[proto.NodeID]struct{}, len(g.behind))
		for n := range g.behind {
			s.behind[n] = struct{}{}
		}
	}
	for _, m := range g.members {
		s.members = append(s.members, m)
	}
	sort.Slice(s.members, func(i, j int) bool { return s.members[i].Name < s.members[j].Name })
	return s, nil
}

// stateJSON is state.json of the snapshot, in the encoding a single
// server writes: nodes sorted by name, tokens by id. The records go in as
// committed (checkRecord decoded each strictly), not decoded and encoded
// again: at 10,000 nodes that was 40% of a new leader's start.
func (s *groupSnapshot) stateJSON() ([]byte, error) {
	if s.meta == nil {
		return nil, errors.New("replicated state has no server record")
	}
	var p persisted
	if err := strictjson.Decode(s.meta, &p); err != nil {
		return nil, fmt.Errorf("server record: %w", err)
	}
	nodes := make([]nodeEntry, 0, len(s.nodes))
	for _, n := range s.nodes {
		nodes = append(nodes, n)
	}
	sort.Slice(nodes, func(i, j int) bool { return nodes[i].name < nodes[j].name })
	tokenIDs := make([]string, 0, len(s.tokens))
	for id := range s.tokens {
		tokenIDs = append(tokenIDs, id)
	}
	sort.Strings(tokenIDs) // lower-case hex: the order of the ids' bytes
	doc := stateDoc{Format: p.Format, Manifest: p.Manifest, ID: p.ID, Attrs: p.Attrs,
		Nodes: make([]json.RawMessage, len(nodes)), Tokens: make([]json.RawMessage, len(tokenIDs))}
	for i, n := range nodes {
		doc.Nodes[i] = n.raw
	}
	for i, id := range tokenIDs {
		doc.Tokens[i] = s.tokens[id]
	}
	return store.EncodeJSON(doc)
}

// stateDoc is persisted with its nodes and tokens as committed records:
// the same members in the same order (TestStateDocMirrorsPersisted).
type stateDoc struct {
	Format   int               `json:"format"`
	Manifest bool              `json:"manifest,omitempty"`
	ID       string            `json:"id"`
	Attrs    Attrs             `json:"attrs"`
	Nodes    []json.RawMessage `json:"nodes"`
	Tokens   []json.RawMessage `json:"tokens"`
}

// sections are the snapshot's sections: state.json, the replicated files
// present, members.json.
func (s *groupSnapshot) sections() ([]replica.Section, error) {
	st, err := s.stateJSON()
	if err != nil {
		return nil, err
	}
	secs := []replica.Section{{Name: stateFile, Data: st}}
	for _, f := range replicatedFiles {
		d, ok := s.files[f]
		switch f {
		case rotationFile:
			if d, err = rotationFileOf(s.rotHead, s.behind); err != nil {
				return nil, err
			}
			ok = d != nil
		case denyFile:
			if ok = s.deny != nil; ok {
				if d, err = s.deny.encode(); err != nil {
					return nil, err
				}
			}
		}
		if ok {
			secs = append(secs, replica.Section{Name: f, Data: d})
		}
	}
	ms, err := json.Marshal(membersJSON{Format: 1, Members: append([]memberRecord{}, s.members...)})
	if err != nil {
		return nil, err
	}
	return append(secs, replica.Section{Name: membersSection, Data: ms}), nil
}

// membersJSON is the members.json section.
type membersJSON struct {
	Format  int            `json:"format"`
	Members []memberRecord `json:"members"`
}

// WriteTo writes the sections.
func (s *groupSnapshot) WriteTo(w io.Writer) (int64, error) {
	secs, err := s.sections()
	if err != nil {
		return 0, fmt.Errorf("snapshot of the server state: %w", err)
	}
	return replica.WriteSections(w, secs)
}

// Release does nothing: the copy is garbage once unreferenced.
func (s *groupSnapshot) Release() {}

// Restore replaces the replica with a snapshot, each section checked by
// the decoder of its file; a snapshot that does not decode whole changes
// nothing.
func (g *groupState) Restore(r io.Reader) error {
	secs, err := replica.ReadSections(r)
	if err != nil {
		return err
	}
	next := newGroupState()
	seen := map[string]bool{}
	for _, sec := range secs {
		if seen[sec.Name] {
			return fmt.Errorf("%w: section %s twice", replica.ErrBadSnapshot, sec.Name)
		}
		seen[sec.Name] = true
		if err := next.restoreSection(sec); err != nil {
			return fmt.Errorf("%w: %s: %v", replica.ErrBadSnapshot, sec.Name, err)
		}
	}
	if next.meta == nil {
		return fmt.Errorf("%w: no %s", replica.ErrBadSnapshot, stateFile)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.meta, g.nodes, g.tokens, g.files, g.members, g.deny = next.meta, next.nodes, next.tokens, next.files, next.members, next.deny
	g.rotHead, g.behind = next.rotHead, next.behind
	return nil
}

func (g *groupState) restoreSection(sec replica.Section) error {
	switch sec.Name {
	case stateFile:
		var p persisted
		if err := strictjson.Decode(sec.Data, &p); err != nil {
			return err
		}
		if p.Format != 1 { // as loadState: a start refuses any other
			return fmt.Errorf("unsupported format %d", p.Format)
		}
		if _, err := newRegistry(p); err != nil {
			return err
		}
		meta, err := metaOf(p)
		if err != nil {
			return err
		}
		g.meta = meta
		for _, n := range p.Nodes {
			raw, err := json.Marshal(n)
			if err != nil {
				return err
			}
			g.nodes[n.ID] = nodeEntry{name: n.Name, raw: raw}
		}
		for _, t := range p.Tokens {
			raw, err := json.Marshal(t)
			if err != nil {
				return err
			}
			g.tokens[hex.EncodeToString(t.ID[:])] = raw
		}
	case keyringFile, rotationFile, denyFile:
		if err := checkFile(sec.Name, sec.Data); err != nil {
			return err
		}
		switch sec.Name {
		case rotationFile:
			g.putRotationFile(sec.Data)
		case denyFile:
			g.deny, _ = denyBookOf(sec.Data) // checked above
		default:
			g.files[sec.Name] = bytes.Clone(sec.Data)
		}
	case membersSection:
		var m membersJSON
		if err := strictjson.Decode(sec.Data, &m); err != nil {
			return err
		}
		if m.Format != 1 {
			return fmt.Errorf("format %d, want 1", m.Format)
		}
		for _, r := range m.Members {
			if err := group.CheckMemberName(r.Name); err != nil {
				return err
			}
			g.members[r.Name] = r
		}
	default:
		return errors.New("unknown section")
	}
	return nil
}

// materialize writes the replica out as the state files of dir, as a
// single server would have left them: state.json (the journal folded into
// it, so no record of before is replayed over it), keyring.json,
// rotation.json and deny.json. The identity, the marks and the manifest
// are the member's own and stay. The caller holds no lock on dir.
func (g *groupState) materialize(dir string, log logrus.FieldLogger) error {
	snap, err := g.Snapshot()
	if err != nil {
		return err
	}
	s := snap.(*groupSnapshot)
	st, err := s.stateJSON()
	if err != nil {
		return err
	}
	ds, err := daemon.OpenStateToReplace(dir, statecheck.RoleServer, log)
	if err != nil {
		return err
	}
	defer ds.Close()
	if err := foldJournal(ds.In.Journal, filepath.Join(dir, stateFile), st); err != nil {
		return fmt.Errorf("write the replicated state to %s: %w", dir, err)
	}
	rot, err := rotationFileOf(s.rotHead, s.behind)
	if err != nil {
		return err
	}
	if rot != nil {
		// rotation.json with its journal emptied: no step of a former
		// leadership of this member is replayed over it.
		if err := foldJournal(ds.In.RotationJournal, filepath.Join(dir, rotationFile), rot); err != nil {
			return fmt.Errorf("write the replicated rotation record to %s: %w", dir, err)
		}
	}
	if s.deny != nil {
		// deny.json with its journal emptied, as rotation.json above.
		data, err := s.deny.encode()
		if err != nil {
			return err
		}
		if err := foldJournal(ds.In.DenyJournal, filepath.Join(dir, denyFile), data); err != nil {
			return fmt.Errorf("write the replicated deny list to %s: %w", dir, err)
		}
	}
	for _, f := range replicatedFiles {
		data, ok := s.files[f]
		if !ok || f == rotationFile || f == denyFile {
			continue
		}
		if f == keyringFile {
			ring, err := keys.DecodeKeyring(data)
			if err != nil {
				return err
			}
			err = keystore.SaveKeyring(filepath.Join(dir, f), ring)
			if err != nil {
				return err
			}
			continue
		}
		if err := statefile.WriteAtomic(filepath.Join(dir, f), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// foldJournal writes data as the snapshot at path of the journal js (as
// inspected), emptying the journal: no record of a former life of the
// directory is replayed over it.
func foldJournal(js *store.JournalState, path string, data []byte) error {
	j, err := js.Open()
	if err != nil {
		return err
	}
	err = j.Fold(path, data, 0o600)
	if cerr := j.Close(); err == nil {
		err = cerr
	}
	return err
}

// adoptSnapshot is the snapshot of a single server's state directory,
// read with the server's own loader (every file checked as at a start):
// what member.Adopt stores as the group's first state.
func adoptSnapshot(cfg Config, extra ...replica.StateRecord) ([]byte, string, error) {
	s, err := New(cfg)
	if err != nil {
		return nil, "", err
	}
	defer s.closeUnstarted()
	g := newGroupState()
	rot, err := rotation.EncodeRecord(s.rot.persisted())
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	recs, err := s.allRecordsLocked(rot)
	id := s.reg.idStr
	s.mu.Unlock()
	if err != nil {
		return nil, "", err
	}
	if res := g.Apply(1, replica.Entry{Cmd: &replica.StateRecords{Why: "upgrade in place", Records: append(recs, extra...)}}); res.Err != nil {
		return nil, "", res.Err
	}
	snap, _ := g.Snapshot()
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), id, nil
}

// serverID is the server id of the replica ("" before its first record).
func (g *groupState) serverID() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var p persisted
	if g.meta == nil || strictjson.Decode(g.meta, &p) != nil {
		return ""
	}
	return p.ID
}

// allRecordsLocked is the whole state of s as records, rot the whole
// rotation record as persisted. The caller holds s.mu.
func (s *Server) allRecordsLocked(rot []byte) ([]replica.StateRecord, error) {
	meta, err := metaOf(s.reg.meta())
	if err != nil {
		return nil, err
	}
	recs := []replica.StateRecord{{Kind: replica.RecordMeta, Key: "server", Value: meta}}
	var encErr error
	s.reg.eachNode(func(n nodeRecord) {
		raw, err := json.Marshal(n)
		if err != nil {
			encErr = err
		}
		recs = append(recs, replica.StateRecord{Kind: replica.RecordNode, Key: n.ID, Value: raw})
	})
	s.reg.tokens.Range(func(t keys.TokenRecord) bool {
		raw, err := json.Marshal(t)
		if err != nil {
			encErr = err
		}
		recs = append(recs, replica.StateRecord{Kind: replica.RecordToken, Key: hex.EncodeToString(t.ID[:]), Value: raw})
		return true
	})
	if encErr != nil {
		return nil, encErr
	}
	for _, f := range replicatedFiles {
		switch f {
		case rotationFile:
			recs = append(recs, replica.StateRecord{Kind: replica.RecordFile, Key: f, Value: rot})
			continue
		case denyFile:
			if s.denyWithheld.Load() {
				continue // lost: no list to copy until its recovery completes
			}
			data, err := s.denyBookLocked().encode()
			if err != nil {
				return nil, err
			}
			recs = append(recs, replica.StateRecord{Kind: replica.RecordFile, Key: f, Value: data})
			continue
		}
		data, err := os.ReadFile(filepath.Join(s.cfg.StateDir, f))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		recs = append(recs, replica.StateRecord{Kind: replica.RecordFile, Key: f, Value: data})
	}
	return recs, nil
}

// closeUnstarted releases a Server that New opened and Run never ran.
func (s *Server) closeUnstarted() {
	s.backups.close()
	s.states.close()
	s.rot.close()
	s.denies.close()
	s.base.Close()
}

// writeStateFile writes one of the replicated state files: in a group it
// is committed (and the file is written when a member next leads), alone
// it is written atomically.
func (s *Server) writeStateFile(name string, data []byte) error {
	if s.cfg.Replicate != nil {
		return s.cfg.Replicate("write "+name, []replica.StateRecord{{Kind: replica.RecordFile, Key: name, Value: data}})
	}
	return statefile.WriteAtomic(filepath.Join(s.cfg.StateDir, name), data, 0o600)
}

// saveKeyring persists the keyring: committed in a group, written alone.
func (s *Server) saveKeyring(ring *keys.Keyring) error {
	if s.cfg.Replicate != nil {
		data, err := keys.EncodeKeyring(ring)
		if err != nil {
			return err
		}
		return s.writeStateFile(keyringFile, data)
	}
	return keystore.SaveKeyring(filepath.Join(s.cfg.StateDir, keyringFile), ring)
}

// journalRecords converts journal records into state records.
func journalRecords(recs []store.JournalRecord) []replica.StateRecord {
	out := make([]replica.StateRecord, len(recs))
	for i, r := range recs {
		out[i] = replica.StateRecord{Kind: r.Kind, Key: r.Key, Value: r.Value, Deleted: r.Deleted}
	}
	return out
}

package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// denyJournalFile is the journal of the deny list, beside its snapshot
// deny.json: the same store.Journal format 2 as state.journal, its header
// naming deny.json's checksum (docs/KEYS.md "Files"). A delete appends the
// two entries and the deleted node it adds, not the whole list: deny.json
// keeps up to maxDeleted deleted nodes, so rewriting it cost hundreds of
// KB per delete on a cluster that has deleted thousands.
const denyJournalFile = "deny.journal"

// Record kinds of deny.journal, the same as the group's records.
const (
	kindDeny    = replica.RecordDeny    // key denyKey(entry); value denyValueJSON; deleted: lifted
	kindDeleted = replica.RecordDeleted // key: node id; value deletedValueJSON; deleted: forgotten
)

// denyCompactMinBytes is the journal size below which deny.journal is
// never folded into deny.json; above it, it is folded once it is larger
// than the snapshot, so a change costs O(1) bytes amortised.
const denyCompactMinBytes = 64 << 10

// errBadDenyRecord is a deny.journal line (or a group's deny record) that
// does not decode strictly.
var errBadDenyRecord = errors.New("invalid deny record")

// denyValueJSON is the value of a kindDeny record.
type denyValueJSON struct {
	Keys []string `json:"keys,omitempty"`
}

// deletedValueJSON is the value of a kindDeleted record.
type deletedValueJSON struct {
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

// denyBook is the deny list with the keys of each entry and the deleted
// nodes: what deny.json holds and what deny.journal's records change.
// Entries name a node or an address, never both. Not safe for concurrent
// use.
type denyBook struct {
	entries map[proto.NodeAddr][]keys.KeyID // nil keys: kept for good
	deleted *deletedNodes
}

// checkDenyFile is openDenyStore's decoding of deny.json, for the
// inspection (store.RegisterSchema): a deny.json that is JSON but not a
// deny list is damaged, so the start recovers as from a lost list, as
// the verdict says, instead of passing `state check` and then refusing.
func checkDenyFile(data []byte) error {
	_, err := denyBookOf(data)
	return err
}

func init() { store.RegisterSchema(statecheck.RoleServer, denyFile, checkDenyFile) }

func newDenyBook() *denyBook {
	return &denyBook{entries: map[proto.NodeAddr][]keys.KeyID{}, deleted: newDeletedNodes()}
}

// denyBookOf decodes deny.json. An entry naming a node and an address
// becomes two entries with the same keys.
func denyBookOf(data []byte) (*denyBook, error) {
	entries, deleted, err := decodeDenyFile(data)
	if err != nil {
		return nil, err
	}
	b := newDenyBook()
	for _, e := range entries {
		for _, na := range splitDenyEntry(e.NodeAddr) {
			b.entries[na] = e.Keys
		}
	}
	b.deleted.load(deleted)
	return b, nil
}

// splitDenyEntry is e as entries that name a node or an address.
func splitDenyEntry(e proto.NodeAddr) []proto.NodeAddr {
	var out []proto.NodeAddr
	if e.Node != (proto.NodeID{}) {
		out = append(out, proto.NodeAddr{Node: e.Node})
	}
	if e.Addr != (proto.Addr{}) {
		out = append(out, proto.NodeAddr{Addr: e.Addr})
	}
	return out
}

// clone is a copy that shares nothing mutable with b.
func (b *denyBook) clone() *denyBook {
	c := &denyBook{entries: make(map[proto.NodeAddr][]keys.KeyID, len(b.entries)), deleted: b.deleted.clone()}
	for e, ids := range b.entries {
		c.entries[e] = ids // never changed in place
	}
	return c
}

// sortedEntries is the book's entries: nodes first, then addresses, each
// in byte order.
func (b *denyBook) sortedEntries() []proto.NodeAddr {
	out := make([]proto.NodeAddr, 0, len(b.entries))
	for e := range b.entries {
		out = append(out, e)
	}
	slices.SortFunc(out, compareDenyEntries)
	return out
}

func compareDenyEntries(a, b proto.NodeAddr) int {
	an, bn := a.Node != (proto.NodeID{}), b.Node != (proto.NodeID{})
	if an != bn {
		if an {
			return -1
		}
		return 1
	}
	if c := bytes.Compare(a.Node[:], b.Node[:]); c != 0 {
		return c
	}
	return bytes.Compare(a.Addr[:], b.Addr[:])
}

// encode is deny.json of the book.
func (b *denyBook) encode() ([]byte, error) {
	d := denyJSON{Format: 1, Entries: []denyEntryJSON{}, Deleted: b.deleted.records()}
	for _, e := range b.sortedEntries() {
		j := denyEntryJSON{}
		if e.Node != (proto.NodeID{}) {
			j.Node = uuid.UUID(e.Node).String()
		} else {
			j.Addr = e.Addr.String()
		}
		for _, id := range b.entries[e] {
			j.Keys = append(j.Keys, id.String())
		}
		d.Entries = append(d.Entries, j)
	}
	return store.EncodeJSON(d)
}

// denyKey is the record key of an entry: "node:" and the node id, or
// "addr:" and the address.
func denyKey(e proto.NodeAddr) string {
	if e.Node != (proto.NodeID{}) {
		return "node:" + uuid.UUID(e.Node).String()
	}
	return "addr:" + e.Addr.String()
}

// parseDenyKey strictly decodes a denyKey: the canonical form only, so
// that one entry has one key.
func parseDenyKey(key string) (proto.NodeAddr, error) {
	if s, ok := strings.CutPrefix(key, "node:"); ok {
		u, err := uuid.Parse(s)
		if err != nil || u.String() != s || u == uuid.Nil {
			return proto.NodeAddr{}, fmt.Errorf("%w: key %q: not a node id", errBadDenyRecord, key)
		}
		return proto.NodeAddr{Node: proto.NodeID(u)}, nil
	}
	if s, ok := strings.CutPrefix(key, "addr:"); ok {
		ip, err := netip.ParseAddr(s)
		if err != nil || ip.Zone() != "" || !ip.IsValid() {
			return proto.NodeAddr{}, fmt.Errorf("%w: key %q: not an IP address", errBadDenyRecord, key)
		}
		na := proto.NodeAddr{Addr: proto.AddrFrom(ip.Unmap())}
		if na.Addr == (proto.Addr{}) || na.Addr.String() != s {
			return proto.NodeAddr{}, fmt.Errorf("%w: key %q: not an address in canonical form", errBadDenyRecord, key)
		}
		return na, nil
	}
	return proto.NodeAddr{}, fmt.Errorf("%w: key %q: want node:ID or addr:IP", errBadDenyRecord, key)
}

// denyRecordOf is the record that puts entry e with ids.
func denyRecordOf(e proto.NodeAddr, ids []keys.KeyID) (store.JournalRecord, error) {
	v := denyValueJSON{}
	for _, id := range ids {
		v.Keys = append(v.Keys, id.String())
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return store.JournalRecord{}, err
	}
	return store.JournalRecord{Kind: kindDeny, Key: denyKey(e), Value: raw}, nil
}

// deletedRecordOf is the record that puts deleted node id.
func deletedRecordOf(id proto.NodeID, d deletedNode) (store.JournalRecord, error) {
	raw, err := json.Marshal(deletedValueJSON{Name: d.Name, At: d.At})
	if err != nil {
		return store.JournalRecord{}, err
	}
	return store.JournalRecord{Kind: kindDeleted, Key: uuid.UUID(id).String(), Value: raw}, nil
}

// denyChange is one decoded deny or deleted record.
type denyChange struct {
	deny    bool // a kindDeny record; else kindDeleted
	entry   proto.NodeAddr
	ids     []keys.KeyID
	node    proto.NodeID
	del     deletedNode
	removed bool
}

// decodeDenyRecord strictly decodes one record of kind kindDeny or
// kindDeleted.
func decodeDenyRecord(kind, key string, value json.RawMessage, deleted bool) (denyChange, error) {
	c := denyChange{removed: deleted}
	switch kind {
	case kindDeny:
		e, err := parseDenyKey(key)
		if err != nil {
			return c, err
		}
		c.deny, c.entry = true, e
		if deleted {
			return c, nil
		}
		var v denyValueJSON
		if err := strictjson.Decode(value, &v); err != nil {
			return c, fmt.Errorf("%w: %s: %v", errBadDenyRecord, key, err)
		}
		for _, k := range v.Keys {
			id, err := keys.ParseKeyID(k)
			if err != nil {
				return c, fmt.Errorf("%w: %s: keys: %v", errBadDenyRecord, key, err)
			}
			c.ids = append(c.ids, id)
		}
	case kindDeleted:
		u, err := uuid.Parse(key)
		if err != nil || u.String() != key || u == uuid.Nil {
			return c, fmt.Errorf("%w: deleted node %q: not a node id", errBadDenyRecord, key)
		}
		c.node = proto.NodeID(u)
		if deleted {
			return c, nil
		}
		var v deletedValueJSON
		if err := strictjson.Decode(value, &v); err != nil {
			return c, fmt.Errorf("%w: deleted node %s: %v", errBadDenyRecord, key, err)
		}
		if !nodeNameRE.MatchString(v.Name) {
			return c, fmt.Errorf("%w: deleted node %s: name %q", errBadDenyRecord, key, v.Name)
		}
		c.del = deletedNode{Name: v.Name, At: v.At.UTC()}
	default:
		return c, fmt.Errorf("%w: unknown kind %q", errBadDenyRecord, kind)
	}
	return c, nil
}

// apply changes the book by one decoded record.
func (b *denyBook) apply(c denyChange) {
	switch {
	case c.deny && c.removed:
		delete(b.entries, c.entry)
	case c.deny:
		b.entries[c.entry] = c.ids
	case c.removed:
		b.deleted.remove(c.node)
	default:
		b.deleted.add(c.node, c.del.Name, c.del.At)
	}
}

// applyRecord decodes one record and applies it.
func (b *denyBook) applyRecord(kind, key string, value json.RawMessage, deleted bool) error {
	c, err := decodeDenyRecord(kind, key, value, deleted)
	if err != nil {
		return err
	}
	b.apply(c)
	return nil
}

// changes are the records that turn b into next: the deleted nodes
// forgotten first, then those added or changed in next's order (oldest
// first), then the entries put and lifted.
func (b *denyBook) changes(next *denyBook) ([]store.JournalRecord, error) {
	cur, del := next.entries, next.deleted
	var out []store.JournalRecord
	for _, id := range b.deleted.order {
		if _, ok := del.byID[id]; !ok {
			out = append(out, store.JournalRecord{Kind: kindDeleted, Key: uuid.UUID(id).String(), Deleted: true})
		}
	}
	for _, id := range del.order {
		d := del.byID[id]
		if old, ok := b.deleted.byID[id]; ok && old.Name == d.Name && old.At.Equal(d.At) {
			continue
		}
		r, err := deletedRecordOf(id, d)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	var puts []proto.NodeAddr
	for e, ids := range cur {
		if old, ok := b.entries[e]; ok && slices.Equal(old, ids) { // nil and empty encode alike
			continue
		}
		puts = append(puts, e)
	}
	slices.SortFunc(puts, compareDenyEntries)
	for _, e := range puts {
		r, err := denyRecordOf(e, cur[e])
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	var lifts []proto.NodeAddr
	for e := range b.entries {
		if _, ok := cur[e]; !ok {
			lifts = append(lifts, e)
		}
	}
	slices.SortFunc(lifts, compareDenyEntries)
	for _, e := range lifts {
		out = append(out, store.JournalRecord{Kind: kindDeny, Key: denyKey(e), Deleted: true})
	}
	return out, nil
}

// size is the number of entries and deleted nodes.
func (b *denyBook) size() int { return len(b.entries) + len(b.deleted.order) }

// denyStore persists the deny book as deny.json plus deny.journal (single
// server), or as records committed through the group (replicate set). A
// store opened while the list is withheld after its loss (recovery.go)
// has no journal: the files stay as found, so a restart before the
// recovery completes recovers again, and its first save writes deny.json
// whole under a new journal.
type denyStore struct {
	dir       string
	journal   *store.Journal // nil: withheld, or not opened yet
	replicate func(string, []replica.StateRecord) error
	book      *denyBook // as on disk (or as committed)
	snapSize  int64
}

// openDenyStore loads deny.json and replays the journal js (as inspected
// at start) over it. withheld: the list was found lost; deny.json is read
// if it is there (what it holds is denied meanwhile) and the journal is
// left alone. A deny.json that does not decode, or a journal line that
// does not, refuses the start.
func openDenyStore(dir string, js *store.JournalState, withheld bool, replicate func(string, []replica.StateRecord) error) (*denyStore, error) {
	ds := &denyStore{dir: dir, replicate: replicate, book: newDenyBook()}
	snapshot := filepath.Join(dir, denyFile)
	data, err := os.ReadFile(snapshot)
	switch {
	case err == nil && withheld:
		// Lost (the inspection found it damaged, cut, or not the
		// snapshot its journal follows): what still decodes is denied
		// meanwhile; one that does not is lost whole, which is what the
		// withheld recovery is for.
		if b, err := denyBookOf(data); err == nil {
			ds.book, ds.snapSize = b, int64(len(data))
		}
	case err == nil:
		if ds.book, err = denyBookOf(data); err != nil {
			return nil, fmt.Errorf("load %s: %w", snapshot, err)
		}
		ds.snapSize = int64(len(data))
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("load deny list: %w", err)
	}
	if withheld {
		// The journal's records that still apply are applied too, one by
		// one: a deny (or a deleted node's record) only the journal holds,
		// such as that of a delete node cut short, is kept; without it the
		// node, still registered, would pass its Hello and get the
		// recovery's new key.
		for _, r := range js.Records {
			_ = ds.book.applyRecord(r.Kind, r.Key, r.Value, r.Deleted)
		}
		return ds, nil
	}
	if err := replayDeny(ds.book, js.Records); err != nil {
		return nil, fmt.Errorf("replay %s: %w", filepath.Join(dir, denyJournalFile), err)
	}
	if ds.journal, err = js.Open(); err != nil {
		return nil, err
	}
	if data == nil {
		// A first start: the journal vouches for a deny.json from now on.
		if err := ds.fold(); err != nil {
			ds.close()
			return nil, err
		}
	}
	return ds, nil
}

// replayDeny applies the journal's records over b, the snapshot's book.
func replayDeny(b *denyBook, recs []store.JournalRecord) error {
	for i, r := range recs {
		if err := b.applyRecord(r.Kind, r.Key, r.Value, r.Deleted); err != nil {
			return fmt.Errorf("record %d: %w", i, err)
		}
	}
	return nil
}

// save persists next, the deny list and the deleted nodes as they are
// now (read only): the records that changed, appended to the journal or
// committed; the whole file instead when most of it changed, or when the
// store has no journal.
func (ds *denyStore) save(next *denyBook) error {
	if ds.replicate == nil && ds.journal == nil {
		return ds.saveWhole(next)
	}
	recs, err := ds.book.changes(next)
	if err != nil || len(recs) == 0 {
		return err
	}
	if len(recs) > 256 && (len(recs) > ds.book.size()/2 || len(recs) >= replica.MaxRecords/2) {
		return ds.saveWhole(next)
	}
	if ds.replicate != nil {
		if err := ds.replicate("deny list", journalRecords(recs)); err != nil {
			return err
		}
	} else if err := ds.journal.Append(recs); err != nil {
		return err
	}
	for _, r := range recs {
		if err := ds.book.applyRecord(r.Kind, r.Key, r.Value, r.Deleted); err != nil {
			return fmt.Errorf("deny list: %w", err) // cannot happen: changes encodes what decodes
		}
	}
	if ds.replicate == nil {
		if size := ds.journal.Size(); size > denyCompactMinBytes && size > ds.snapSize {
			return ds.fold()
		}
	}
	return nil
}

// saveWhole persists next whole: committed as deny.json in a group,
// folded into deny.json alone (under a new journal if the store had
// none).
func (ds *denyStore) saveWhole(next *denyBook) error {
	next = next.clone()
	if ds.replicate != nil {
		data, err := next.encode()
		if err != nil {
			return err
		}
		if err := ds.replicate("deny list", []replica.StateRecord{{Kind: replica.RecordFile, Key: denyFile, Value: data}}); err != nil {
			return err
		}
		ds.book = next
		return nil
	}
	if ds.journal == nil {
		if err := ds.restart(); err != nil {
			return err
		}
	}
	old := ds.book
	ds.book = next
	if err := ds.fold(); err != nil {
		ds.book = old
		return err
	}
	return nil
}

// restart starts a new, empty deny.journal in place of whatever is there
// (the files of a loss, kept until now). A crash before the fold that
// follows leaves the journal missing or not following deny.json: a loss
// again, recovered again.
func (ds *denyStore) restart() error {
	path := filepath.Join(ds.dir, denyJournalFile)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("start a new %s: %w", path, err)
	}
	js, err := store.ReadStateJournal(path, store.JournalOptions{Snapshot: filepath.Join(ds.dir, denyFile)})
	if err != nil {
		return err
	}
	j, err := js.Open()
	if err != nil {
		return err
	}
	ds.journal = j
	return nil
}

// fold writes the book as the new deny.json and empties the journal
// (store.Journal.Fold: a crash at any point leaves a snapshot the journal
// vouches for).
func (ds *denyStore) fold() error {
	data, err := ds.book.encode()
	if err != nil {
		return err
	}
	if err := ds.journal.Fold(filepath.Join(ds.dir, denyFile), data, 0o600); err != nil {
		return err
	}
	ds.snapSize = int64(len(data))
	return nil
}

func (ds *denyStore) close() error {
	if ds == nil || ds.journal == nil {
		return nil
	}
	return ds.journal.Close()
}

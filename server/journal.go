package server

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"path/filepath"
	"time"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/strictjson"
)

// journalFile is the server's state journal, beside state.json.
const journalFile = "state.journal"

// Record kinds of the state journal.
const (
	kindMeta  = "meta"  // everything in persisted but nodes and tokens; key "server"
	kindNode  = "node"  // one nodeRecord; key: node id
	kindToken = "token" // one keys.TokenRecord; key: token id, hex
)

// compactMinBytes is the journal size below which it is never compacted.
const compactMinBytes = 1 << 20

// stateStore persists the registry as state.json plus state.journal. A
// change appends only the records that changed (found by comparing with
// what was last written), so creating or enrolling one node of 10,000 costs
// a few hundred bytes and one fsync instead of rewriting megabytes. When
// the journal outgrows the snapshot it is folded into a new state.json.
type stateStore struct {
	dir     string
	journal *store.Journal
	meta    []byte
	// What is on disk, as a hash per record: enough to tell what changed
	// at a few bytes per node (the records themselves are in the registry).
	nodes  map[string]uint64
	tokens map[[16]byte]uint64
	seed   maphash.Seed
	// replicate, in a group, commits the records in place of the journal
	// (replicated.go).
	replicate func(string, []replica.StateRecord) error
}

// openStateStore loads state.json, replays the journal js (as inspected at
// start) over it and returns the resulting state and the store, whose
// journal is in the current format from then on.
func openStateStore(dir string, js *store.JournalState, replicate func(string, []replica.StateRecord) error) (persisted, *stateStore, error) {
	var (
		p      persisted
		marked bool // the file's, whatever the journal's meta records say
		err    error
	)
	if c, ok := js.Checked.(*checkedState); ok {
		p, marked = c.p, c.marked // the inspection loaded them (checkStateJournal)
	} else {
		if p, err = loadState(dir); err != nil {
			return p, nil, err
		}
		marked = p.Manifest
		if p, err = replayJournal(p, js.Records); err != nil {
			return p, nil, fmt.Errorf("replay %s: %w", filepath.Join(dir, journalFile), err)
		}
	}
	j, err := js.Open()
	if err != nil {
		return p, nil, err
	}
	ss := &stateStore{dir: dir, journal: j, replicate: replicate}
	upgraded := !marked || !p.Manifest
	if upgraded {
		// A registry of an older version (state.json and its journal
		// without the mark): folded at once into a state.json that
		// carries it, so that from now on a lost manifest is told from
		// an old directory.
		p.Manifest = true
		if err := ss.compact(p); err != nil {
			j.Close()
			return p, nil, fmt.Errorf("upgrade %s: %w", filepath.Join(dir, stateFile), err)
		}
	}
	if err := ss.remember(p); err != nil {
		j.Close()
		return p, nil, err
	}
	if upgraded && replicate != nil {
		ss.meta = nil // the group's copy lacks the mark: the next save commits it
	}
	return p, ss, nil
}

// replayJournal applies recs over the snapshot p, keeping the order of
// first appearance.
func replayJournal(p persisted, recs []store.JournalRecord) (persisted, error) {
	if len(recs) == 0 {
		return p, nil
	}
	nodes := newOrdered[nodeRecord]()
	for _, n := range p.Nodes {
		nodes.put(n.ID, n)
	}
	tokens := newOrdered[keys.TokenRecord]()
	for _, t := range p.Tokens {
		tokens.put(hex.EncodeToString(t.ID[:]), t)
	}
	for _, r := range recs {
		switch r.Kind {
		case kindMeta:
			var m persisted
			if err := strictjson.Decode(r.Value, &m); err != nil {
				return p, fmt.Errorf("meta record: %w", err)
			}
			p = m
		case kindNode:
			if r.Deleted {
				nodes.del(r.Key)
				continue
			}
			var n nodeRecord
			if err := strictjson.Decode(r.Value, &n); err != nil || n.ID != r.Key {
				return p, fmt.Errorf("node record %s: bad value (%v)", r.Key, err)
			}
			nodes.put(r.Key, n)
		case kindToken:
			if r.Deleted {
				tokens.del(r.Key)
				continue
			}
			var t keys.TokenRecord
			if err := strictjson.Decode(r.Value, &t); err != nil || hex.EncodeToString(t.ID[:]) != r.Key {
				return p, fmt.Errorf("token record %s: bad value (%v)", r.Key, err)
			}
			tokens.put(r.Key, t)
		default:
			return p, fmt.Errorf("unknown record kind %q", r.Kind)
		}
	}
	p.Nodes, p.Tokens = nodes.values(), tokens.values()
	return p, nil
}

// ordered is a map that remembers insertion order.
type ordered[V any] struct {
	order []string
	m     map[string]V
}

func newOrdered[V any]() *ordered[V] { return &ordered[V]{m: map[string]V{}} }

func (o *ordered[V]) put(k string, v V) {
	if _, ok := o.m[k]; !ok {
		o.order = append(o.order, k)
	}
	o.m[k] = v
}

func (o *ordered[V]) del(k string) { delete(o.m, k) }

func (o *ordered[V]) values() []V {
	out := make([]V, 0, len(o.m))
	for _, k := range o.order {
		if v, ok := o.m[k]; ok {
			out = append(out, v)
			delete(o.m, k) // a key deleted and re-added appears once
		}
	}
	return out
}

func metaOf(p persisted) ([]byte, error) {
	p.Nodes, p.Tokens = nil, nil
	return json.Marshal(p)
}

// remember records p as what is on disk.
func (ss *stateStore) remember(p persisted) error {
	meta, err := metaOf(p)
	if err != nil {
		return err
	}
	ss.meta = meta
	ss.seed = maphash.MakeSeed()
	ss.nodes = make(map[string]uint64, len(p.Nodes))
	for _, n := range p.Nodes {
		ss.nodes[n.ID] = ss.nodeHash(n)
	}
	ss.tokens = make(map[[16]byte]uint64, len(p.Tokens))
	for _, t := range p.Tokens {
		ss.tokens[t.ID] = maphash.Comparable(ss.seed, t)
	}
	return nil
}

// stateView is what save reads: the registry, without copying or sorting
// it, so a change costs O(N) comparisons but no O(N) encoding or I/O.
type stateView interface {
	meta() persisted
	eachNode(func(nodeRecord))
	snapshot() persisted
	tokenBook() *keys.TokenBook
}

// save makes v durable: it appends the records that differ from the last
// save and, when the journal has grown past the snapshot, writes a new
// snapshot.
func (ss *stateStore) save(v stateView) error {
	b, err := ss.newBatch(v)
	if err != nil {
		return err
	}
	seen := 0
	v.eachNode(func(n nodeRecord) {
		seen++
		b.node(n)
	})
	if seen-len(b.nodes) < len(ss.nodes) { // some node was deleted
		present := make(map[string]struct{}, seen)
		v.eachNode(func(n nodeRecord) { present[n.ID] = struct{}{} })
		for id := range ss.nodes {
			if _, ok := present[id]; !ok {
				b.nodeGone(id)
			}
		}
	}
	book := v.tokenBook()
	book.Range(func(t keys.TokenRecord) bool {
		b.token(t)
		return b.err == nil
	})
	if book.Len()-len(b.tokens) < len(ss.tokens) { // some token was dropped
		for id := range ss.tokens {
			if _, err := book.Lookup(id); err != nil {
				b.tokenGone(id)
			}
		}
	}
	return b.commit(v)
}

// saveNodes is save for a change confined to the given nodes and tokens
// (and the small meta record): O(changed) instead of O(N), for the paths
// that run once per node at scale (create node, enroll). Anything else
// that changed is still written by the next full save, since the store
// remembers what is on disk, not what it was told.
func (ss *stateStore) saveNodes(v stateView, nodes []nodeRecord, tokens [][16]byte) error {
	return ss.saveChanged(v, nodes, nil, tokens)
}

// saveChanged is saveNodes that also records the nodes whose ids are in
// gone as removed (delete node: O(1) instead of a full save's O(N)).
func (ss *stateStore) saveChanged(v stateView, nodes []nodeRecord, gone []string, tokens [][16]byte) error {
	b, err := ss.newBatch(v)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		b.node(n)
	}
	for _, id := range gone {
		if _, ok := ss.nodes[id]; ok {
			b.nodeGone(id)
		}
	}
	book := v.tokenBook()
	for _, id := range tokens {
		if t, err := book.Lookup(id); err == nil {
			b.token(t)
		} else if _, ok := ss.tokens[id]; ok {
			b.tokenGone(id)
		}
	}
	return b.commit(v)
}

// saveBatch collects the journal records of one save and what the store
// will remember once they are on disk.
type saveBatch struct {
	ss         *stateStore
	recs       []store.JournalRecord
	meta       []byte
	nodes      map[string]uint64
	goneNodes  []string
	tokens     map[[16]byte]uint64
	goneTokens [][16]byte
	err        error // the first encoding error
}

func (ss *stateStore) newBatch(v stateView) (*saveBatch, error) {
	meta, err := metaOf(v.meta())
	if err != nil {
		return nil, err
	}
	b := &saveBatch{ss: ss, meta: meta, nodes: map[string]uint64{}, tokens: map[[16]byte]uint64{}}
	if !bytes.Equal(meta, ss.meta) {
		b.recs = append(b.recs, store.JournalRecord{Kind: kindMeta, Key: "server", Value: meta})
	}
	return b, nil
}

// node adds n if it differs from what is on disk.
func (b *saveBatch) node(n nodeRecord) {
	h := b.ss.nodeHash(n)
	if old, ok := b.ss.nodes[n.ID]; (ok && old == h) || b.err != nil {
		return
	}
	v, err := json.Marshal(n)
	if err != nil {
		b.err = err
		return
	}
	b.nodes[n.ID] = h
	b.recs = append(b.recs, store.JournalRecord{Kind: kindNode, Key: n.ID, Value: v})
}

func (b *saveBatch) nodeGone(id string) {
	b.goneNodes = append(b.goneNodes, id)
	b.recs = append(b.recs, store.JournalRecord{Kind: kindNode, Key: id, Deleted: true})
}

// token adds t if it differs from what is on disk.
func (b *saveBatch) token(t keys.TokenRecord) {
	h := maphash.Comparable(b.ss.seed, t)
	if old, ok := b.ss.tokens[t.ID]; (ok && old == h) || b.err != nil {
		return
	}
	v, err := json.Marshal(t)
	if err != nil {
		b.err = err
		return
	}
	b.tokens[t.ID] = h
	b.recs = append(b.recs, store.JournalRecord{Kind: kindToken, Key: hex.EncodeToString(t.ID[:]), Value: v})
}

func (b *saveBatch) tokenGone(id [16]byte) {
	b.goneTokens = append(b.goneTokens, id)
	b.recs = append(b.recs, store.JournalRecord{Kind: kindToken, Key: hex.EncodeToString(id[:]), Deleted: true})
}

// commit appends the records, then remembers them as on disk, and
// compacts when the journal has outgrown the snapshot.
func (b *saveBatch) commit(v stateView) error {
	ss := b.ss
	if b.err != nil {
		return b.err
	}
	if len(b.recs) == 0 {
		return nil
	}
	if ss.replicate != nil {
		if err := ss.replicate("state", journalRecords(b.recs)); err != nil {
			return err
		}
	} else if err := ss.journal.Append(b.recs); err != nil {
		return err
	}
	ss.meta = b.meta
	for id, h := range b.nodes {
		ss.nodes[id] = h
	}
	for _, id := range b.goneNodes {
		delete(ss.nodes, id)
	}
	for id, h := range b.tokens {
		ss.tokens[id] = h
	}
	for _, id := range b.goneTokens {
		delete(ss.tokens, id)
	}
	// A Go map keeps its size after deletions (maps.Clone too): copy it
	// after a mass removal (expired tokens, many deleted nodes).
	if len(b.goneTokens) > len(ss.tokens) {
		ss.tokens = shrunk(ss.tokens)
	}
	if len(b.goneNodes) > len(ss.nodes) {
		ss.nodes = shrunk(ss.nodes)
	}
	if ss.replicate != nil {
		return nil // the group's snapshots compact its log
	}
	if size := ss.journal.Size(); size > compactMinBytes && size > int64(len(ss.nodes))*1024 {
		return ss.compact(v.snapshot())
	}
	return nil
}

// compact writes p as the new snapshot and empties the journal, whose
// header then vouches for the snapshot (store.Journal.Fold).
func (ss *stateStore) compact(p persisted) error {
	data, err := store.EncodeJSON(p)
	if err != nil {
		return fmt.Errorf("encode %s: %w", stateFile, err)
	}
	return ss.journal.Fold(filepath.Join(ss.dir, stateFile), data, 0o600)
}

// nodeHash hashes a record as persisted. nodeRecord must stay comparable
// (the compiler checks) and its only pointer, Enrolled, is hashed by value.
func (ss *stateStore) nodeHash(n nodeRecord) uint64 {
	type flat struct {
		rec      nodeRecord
		enrolled int64
	}
	f := flat{rec: n}
	f.rec.Enrolled = nil
	f.rec.Created = time.Unix(0, n.Created.UnixNano())
	if n.Enrolled != nil {
		f.enrolled = n.Enrolled.UnixNano()
	}
	return maphash.Comparable(ss.seed, f)
}

func (ss *stateStore) close() error { return ss.journal.Close() }

// shrunk copies m into a map sized for its entries.
func shrunk[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

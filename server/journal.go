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
}

// openStateStore loads state.json, replays state.journal over it and
// returns the resulting state and the store.
func openStateStore(dir string) (persisted, *stateStore, error) {
	p, err := loadState(dir)
	if err != nil {
		return p, nil, err
	}
	j, recs, err := store.OpenJournal(filepath.Join(dir, journalFile))
	if err != nil {
		return p, nil, err
	}
	if p, err = replayJournal(p, recs); err != nil {
		j.Close()
		return p, nil, fmt.Errorf("replay %s: %w", filepath.Join(dir, journalFile), err)
	}
	ss := &stateStore{dir: dir, journal: j}
	if err := ss.remember(p); err != nil {
		j.Close()
		return p, nil, err
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
			if err := strictJSON(r.Value, &m); err != nil {
				return p, fmt.Errorf("meta record: %w", err)
			}
			p = m
		case kindNode:
			if r.Deleted {
				nodes.del(r.Key)
				continue
			}
			var n nodeRecord
			if err := strictJSON(r.Value, &n); err != nil || n.ID != r.Key {
				return p, fmt.Errorf("node record %s: bad value (%v)", r.Key, err)
			}
			nodes.put(r.Key, n)
		case kindToken:
			if r.Deleted {
				tokens.del(r.Key)
				continue
			}
			var t keys.TokenRecord
			if err := strictJSON(r.Value, &t); err != nil || hex.EncodeToString(t.ID[:]) != r.Key {
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

func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data")
	}
	return nil
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
	var recs []store.JournalRecord
	meta, err := metaOf(v.meta())
	if err != nil {
		return err
	}
	if !bytes.Equal(meta, ss.meta) {
		recs = append(recs, store.JournalRecord{Kind: kindMeta, Key: "server", Value: meta})
	}
	changedNodes := map[string]uint64{}
	seen := 0
	var encErr error
	v.eachNode(func(n nodeRecord) {
		seen++
		h := ss.nodeHash(n)
		if old, ok := ss.nodes[n.ID]; ok && old == h {
			return
		}
		b, err := json.Marshal(n)
		if err != nil {
			encErr = err
			return
		}
		changedNodes[n.ID] = h
		recs = append(recs, store.JournalRecord{Kind: kindNode, Key: n.ID, Value: b})
	})
	if encErr != nil {
		return encErr
	}
	var goneNodes []string
	if seen-len(changedNodes) < len(ss.nodes) { // some node was deleted
		present := make(map[string]struct{}, seen)
		v.eachNode(func(n nodeRecord) { present[n.ID] = struct{}{} })
		for id := range ss.nodes {
			if _, ok := present[id]; !ok {
				goneNodes = append(goneNodes, id)
				recs = append(recs, store.JournalRecord{Kind: kindNode, Key: id, Deleted: true})
			}
		}
	}
	changedTokens := map[[16]byte]uint64{}
	book := v.tokenBook()
	book.Range(func(t keys.TokenRecord) bool {
		h := maphash.Comparable(ss.seed, t)
		if old, ok := ss.tokens[t.ID]; ok && old == h {
			return true
		}
		b, err := json.Marshal(t)
		if err != nil {
			encErr = err
			return false
		}
		changedTokens[t.ID] = h
		recs = append(recs, store.JournalRecord{Kind: kindToken, Key: hex.EncodeToString(t.ID[:]), Value: b})
		return true
	})
	if encErr != nil {
		return encErr
	}
	var goneTokens [][16]byte
	if book.Len()-len(changedTokens) < len(ss.tokens) {
		for id := range ss.tokens {
			if _, err := book.Lookup(id); err != nil {
				goneTokens = append(goneTokens, id)
				recs = append(recs, store.JournalRecord{Kind: kindToken, Key: hex.EncodeToString(id[:]), Deleted: true})
			}
		}
	}
	if len(recs) == 0 {
		return nil
	}
	if err := ss.journal.Append(recs); err != nil {
		return err
	}
	// Now on disk: update what we remember.
	ss.meta = meta
	for id, n := range changedNodes {
		ss.nodes[id] = n
	}
	for _, id := range goneNodes {
		delete(ss.nodes, id)
	}
	for id, h := range changedTokens {
		ss.tokens[id] = h
	}
	for _, id := range goneTokens {
		delete(ss.tokens, id)
	}
	// A Go map keeps its size after deletions (maps.Clone too): copy it
	// after a mass removal (expired tokens, many deleted nodes).
	if len(goneTokens) > len(ss.tokens) {
		ss.tokens = shrunk(ss.tokens)
	}
	if len(goneNodes) > len(ss.nodes) {
		ss.nodes = shrunk(ss.nodes)
	}
	if size := ss.journal.Size(); size > compactMinBytes && size > int64(len(ss.nodes))*1024 {
		return ss.compact(v.snapshot())
	}
	return nil
}

// saveNodes is save for a change confined to the given nodes and tokens
// (and the small meta record): O(changed) instead of O(N), for the paths
// that run once per node at scale (create node, enroll). Anything else
// that changed is still written by the next full save, since the store
// remembers what is on disk, not what it was told.
func (ss *stateStore) saveNodes(v stateView, nodes []nodeRecord, tokens [][16]byte) error {
	var recs []store.JournalRecord
	meta, err := metaOf(v.meta())
	if err != nil {
		return err
	}
	if !bytes.Equal(meta, ss.meta) {
		recs = append(recs, store.JournalRecord{Kind: kindMeta, Key: "server", Value: meta})
	}
	hashes := make([]uint64, len(nodes))
	for i, n := range nodes {
		hashes[i] = ss.nodeHash(n)
		if old, ok := ss.nodes[n.ID]; ok && old == hashes[i] {
			continue
		}
		b, err := json.Marshal(n)
		if err != nil {
			return err
		}
		recs = append(recs, store.JournalRecord{Kind: kindNode, Key: n.ID, Value: b})
	}
	book := v.tokenBook()
	tokHashes := make([]uint64, len(tokens))
	gone := make([]bool, len(tokens))
	for i, id := range tokens {
		key := hex.EncodeToString(id[:])
		t, err := book.Lookup(id)
		if err != nil {
			gone[i] = true
			if _, ok := ss.tokens[id]; ok {
				recs = append(recs, store.JournalRecord{Kind: kindToken, Key: key, Deleted: true})
			}
			continue
		}
		tokHashes[i] = maphash.Comparable(ss.seed, t)
		if old, ok := ss.tokens[id]; ok && old == tokHashes[i] {
			continue
		}
		b, err := json.Marshal(t)
		if err != nil {
			return err
		}
		recs = append(recs, store.JournalRecord{Kind: kindToken, Key: key, Value: b})
	}
	if len(recs) == 0 {
		return nil
	}
	if err := ss.journal.Append(recs); err != nil {
		return err
	}
	ss.meta = meta
	for i, n := range nodes {
		ss.nodes[n.ID] = hashes[i]
	}
	for i, id := range tokens {
		if gone[i] {
			delete(ss.tokens, id)
		} else {
			ss.tokens[id] = tokHashes[i]
		}
	}
	if size := ss.journal.Size(); size > compactMinBytes && size > int64(len(ss.nodes))*1024 {
		return ss.compact(v.snapshot())
	}
	return nil
}

// compact writes p as the new snapshot and empties the journal.
func (ss *stateStore) compact(p persisted) error {
	if err := saveState(ss.dir, p); err != nil {
		return err
	}
	return ss.journal.Reset()
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

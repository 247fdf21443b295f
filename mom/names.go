package mom

import (
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/proto"
)

// Names of sisters: the peers table, the audit log and `momgate-mom ping`
// name a sister by the node id its PING carries. The MOM asks the server
// (NameLookup on the v2 control connection) once per id and keeps the
// answer: a node id never changes name. Nothing is pushed
// (docs/PROTOCOL.md 4.7).

// Limits of the name book.
const (
	maxNames          = 1 << 16         // names kept, the oldest forgotten first
	nameLookupTimeout = 1 * time.Second // the wait for one NodeName
)

// nameBook caches node names by id and tracks the lookups in flight.
type nameBook struct {
	mu       sync.Mutex
	known    map[proto.NodeID]string // "" for an id the server does not know
	order    []proto.NodeID          // insertion order, for eviction
	pending  map[proto.NodeID]*nameWait
	byLookup map[uint32]proto.NodeID
	lookupID uint32
}

// nameWait is one lookup in flight; done closes when name is final.
type nameWait struct {
	done chan struct{}
	name string
}

func newNameBook() *nameBook {
	return &nameBook{known: map[proto.NodeID]string{}, pending: map[proto.NodeID]*nameWait{}, byLookup: map[uint32]proto.NodeID{}}
}

// rememberLocked caches an answer; the caller holds b.mu.
func (b *nameBook) rememberLocked(id proto.NodeID, name string) {
	if _, ok := b.known[id]; !ok {
		b.order = append(b.order, id)
		for len(b.order) > maxNames {
			delete(b.known, b.order[0])
			b.order = b.order[1:]
		}
	}
	b.known[id] = name
}

// answer takes the server's NodeName: it is cached, and the waiters of
// its lookup get it. An answer nobody asked for is dropped.
func (b *nameBook) answer(m *proto.NodeName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id, ok := b.byLookup[m.ID]
	if !ok || id != m.Node {
		return
	}
	delete(b.byLookup, m.ID)
	b.rememberLocked(id, m.Name) // "" when unknown
	if w := b.pending[id]; w != nil {
		delete(b.pending, id)
		w.name = m.Name
		close(w.done)
	}
}

// abandon ends every lookup in flight without an answer: the control
// connection they were sent on ended.
func (b *nameBook) abandon() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, w := range b.pending {
		close(w.done)
		delete(b.pending, id)
	}
	clear(b.byLookup)
}

// nodeNameOf is the name of the sister with node id id, or "" if the server
// does not know it or cannot be asked now. It asks the server at most
// once per id at a time, and waits at most nameLookupTimeout.
func (m *Mom) nodeNameOf(id proto.NodeID) string {
	if id == (proto.NodeID{}) {
		return ""
	}
	b := m.names
	b.mu.Lock()
	if name, ok := b.known[id]; ok {
		b.mu.Unlock()
		return name
	}
	w, inFlight := b.pending[id]
	var lookup uint32
	if !inFlight {
		w = &nameWait{done: make(chan struct{})}
		b.pending[id] = w
		b.lookupID++
		lookup = b.lookupID
		b.byLookup[lookup] = id
	}
	b.mu.Unlock()
	if !inFlight {
		if err := m.sendControl(&proto.NameLookup{ID: lookup, Node: id}); err != nil {
			b.give(id, lookup, w) // no v2 control connection: no name, nothing cached
		}
	}
	t := time.NewTimer(nameLookupTimeout)
	defer t.Stop()
	select {
	case <-w.done:
		return w.name
	case <-t.C:
		if !inFlight {
			b.give(id, lookup, w)
		}
		return ""
	}
}

// give ends lookup of id without an answer, if it is still in flight.
func (b *nameBook) give(id proto.NodeID, lookup uint32, w *nameWait) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.pending[id] != w {
		return // answered or abandoned meanwhile
	}
	delete(b.pending, id)
	delete(b.byLookup, lookup)
	close(w.done)
}

// nodeIDText is id as the audit log and the admin results write it.
func nodeIDText(id proto.NodeID) string {
	if id == (proto.NodeID{}) {
		return ""
	}
	return uuid.UUID(id).String()
}

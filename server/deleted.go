package server

import (
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/proto"
)

// The nodes deleted, by id: their names, for the audit lines and the
// NameLookups of a deleted node's sisters, and the fact of the deletion,
// so that a Hello of a deleted node is refused as revoked (its MOM then
// stops for good) also after its deny entry was pruned. Kept in deny.json
// beside the deny list, the newest maxDeleted only.

// nodeName answers a MOM's NameLookup: the node's name from the registry,
// or from the record of deleted nodes (docs/PROTOCOL.md 4.7).
func (s *Server) nodeName(m *proto.NameLookup) *proto.NodeName {
	reply := &proto.NodeName{ID: m.ID, Node: m.Node, Status: proto.NameUnknown}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.reg.byID[m.Node]; n != nil {
		reply.Status, reply.Name = proto.NameFound, n.rec.Name
	} else if d, ok := s.deleted.lookup(m.Node); ok {
		reply.Status, reply.Name = proto.NameDeleted, d.Name
	}
	s.lg.lookups.Add(1)
	return reply
}

// maxDeleted bounds the deleted nodes remembered.
const maxDeleted = 4096

// deletedNode is one deleted node.
type deletedNode struct {
	Name string
	At   time.Time // when delete node ran
}

// deletedJSON is a deletedNode in deny.json.
type deletedJSON struct {
	Node string    `json:"node"`
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

// deletedNodes is the bounded record; guarded by the server's mu.
type deletedNodes struct {
	byID  map[proto.NodeID]deletedNode
	order []proto.NodeID // oldest first
}

func newDeletedNodes() *deletedNodes {
	return &deletedNodes{byID: map[proto.NodeID]deletedNode{}}
}

// add records a deletion, forgetting the oldest past maxDeleted.
func (d *deletedNodes) add(id proto.NodeID, name string, at time.Time) {
	if _, ok := d.byID[id]; !ok {
		d.order = append(d.order, id)
	}
	d.byID[id] = deletedNode{Name: name, At: at.UTC()}
	for len(d.order) > maxDeleted {
		delete(d.byID, d.order[0])
		d.order = d.order[1:]
	}
}

// remove forgets a deleted node.
func (d *deletedNodes) remove(id proto.NodeID) {
	if _, ok := d.byID[id]; !ok {
		return
	}
	delete(d.byID, id)
	d.order = slices.DeleteFunc(d.order, func(o proto.NodeID) bool { return o == id })
}

// clone is a copy that shares nothing with d.
func (d *deletedNodes) clone() *deletedNodes {
	c := &deletedNodes{byID: make(map[proto.NodeID]deletedNode, len(d.byID)), order: slices.Clone(d.order)}
	for id, n := range d.byID {
		c.byID[id] = n
	}
	return c
}

// lookup finds a deleted node by id.
func (d *deletedNodes) lookup(id proto.NodeID) (deletedNode, bool) {
	n, ok := d.byID[id]
	return n, ok
}

// records is the record as deny.json keeps it, oldest first.
func (d *deletedNodes) records() []deletedJSON {
	out := make([]deletedJSON, 0, len(d.order))
	for _, id := range d.order {
		n := d.byID[id]
		out = append(out, deletedJSON{Node: uuid.UUID(id).String(), Name: n.Name, At: n.At})
	}
	return out
}

// deletedRecord is a decoded deletedJSON.
type deletedRecord struct {
	ID proto.NodeID
	deletedNode
}

// decodeDeleted checks deny.json's deleted nodes.
func decodeDeleted(recs []deletedJSON) ([]deletedRecord, error) {
	out := make([]deletedRecord, 0, len(recs))
	for i, r := range recs {
		id, err := uuid.Parse(r.Node)
		if err != nil || !nodeNameRE.MatchString(r.Name) {
			return nil, fmt.Errorf("%w: deleted[%d]: node %q name %q", errBadDenyList, i, r.Node, r.Name)
		}
		out = append(out, deletedRecord{proto.NodeID(id), deletedNode{r.Name, r.At}})
	}
	return out, nil
}

// load replaces the record with deny.json's, oldest first.
func (d *deletedNodes) load(recs []deletedRecord) {
	sorted := append([]deletedRecord(nil), recs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].At.Before(sorted[j].At) })
	*d = *newDeletedNodes()
	for _, r := range sorted {
		d.add(r.ID, r.Name, r.At)
	}
}

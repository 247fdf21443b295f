package server

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/google/uuid"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// The server's deny list (delete node denies the node's id and address,
// set node Mom= the old address) is persisted in denyFile and sent whole
// to every MOM after its Welcome (DenySet), so a MOM that was offline
// learns every deny it missed. An address given to a node again (create
// node, set node Mom=) is lifted from the list and only that change is
// pushed (DenyLift): pushing the whole list to every MOM cost N times the
// list's size per reused address.

const denyFile = "deny.json"

// maxDenyEntries is what one DenySet frame carries.
const maxDenyEntries = proto.MaxNodeEntries

type denyJSON struct {
	Format  int             `json:"format"`
	Entries []denyEntryJSON `json:"entries"`
	// Deleted are the nodes deleted, newest maxDeleted (deleted.go);
	// absent in older files.
	Deleted []deletedJSON `json:"deleted,omitempty"`
}

type denyEntryJSON struct {
	Node string `json:"node,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Keys are the cluster key ids (hex) the server held when the entry
	// was made: the only ones the denied node can have. Once none of them
	// is in the server's keyring the entry is dropped (pruneDenyLocked).
	// Absent (older files): kept for good.
	Keys []string `json:"keys,omitempty"`
}

// denyRecord is one deny.json entry.
type denyRecord struct {
	proto.NodeAddr
	Keys []keys.KeyID
}

// loadDenyList restores the deny list from deny.json and deny.journal
// (denystore.go); a first start has an empty list. While the list is
// withheld after its loss (recovery.go) only deny.json is read, if it is
// there.
func (s *Server) loadDenyList() error {
	st := s.base.State
	ds, err := openDenyStore(s.cfg.StateDir, st.In.DenyJournal, st.Has(statecheck.StepRotateWithholdDeny), s.cfg.Replicate)
	if err != nil {
		return err
	}
	s.denies = ds
	s.deleted = ds.book.deleted.clone()
	changes := make([]ping.DenyChange, 0, len(ds.book.entries))
	for e, ids := range ds.book.entries {
		changes = append(changes, ping.DenyChange{Node: e.Node, Addr: e.Addr})
		if ids != nil {
			s.denyKeys[e] = ids
		}
	}
	s.deny.Apply(changes) // one copy of the list, not one per entry
	return nil
}

// errBadDenyList means deny.json does not decode.
var errBadDenyList = errors.New("invalid deny list")

// decodeDenyList strictly decodes deny.json's deny list.
func decodeDenyList(data []byte) ([]denyRecord, error) {
	entries, _, err := decodeDenyFile(data)
	return entries, err
}

// decodeDenyFile strictly decodes deny.json: the deny list and the
// deleted nodes.
func decodeDenyFile(data []byte) ([]denyRecord, []deletedRecord, error) {
	var d denyJSON
	if err := strictjson.Decode(data, &d); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errBadDenyList, err)
	}
	if d.Format != 1 {
		return nil, nil, fmt.Errorf("%w: format %d, want 1", errBadDenyList, d.Format)
	}
	out := make([]denyRecord, 0, len(d.Entries))
	for i, e := range d.Entries {
		var na proto.NodeAddr
		var ids []keys.KeyID
		for _, k := range e.Keys {
			id, err := keys.ParseKeyID(k)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: entries[%d].keys: %v", errBadDenyList, i, err)
			}
			ids = append(ids, id)
		}
		if e.Node != "" {
			u, err := uuid.Parse(e.Node)
			if err != nil {
				return nil, nil, fmt.Errorf("%w: entries[%d].node %q: %v", errBadDenyList, i, e.Node, err)
			}
			na.Node = proto.NodeID(u)
		}
		if e.Addr != "" {
			ip, err := netip.ParseAddr(e.Addr)
			if err != nil || ip.Zone() != "" {
				return nil, nil, fmt.Errorf("%w: entries[%d].addr %q: not an IP address", errBadDenyList, i, e.Addr)
			}
			na.Addr = proto.AddrFrom(ip.Unmap())
		}
		if na == (proto.NodeAddr{}) {
			return nil, nil, fmt.Errorf("%w: entries[%d] names neither a node nor an address", errBadDenyList, i)
		}
		out = append(out, denyRecord{NodeAddr: na, Keys: ids})
	}
	deleted, err := decodeDeleted(d.Deleted)
	if err != nil {
		return nil, nil, err
	}
	return out, deleted, nil
}

// denyEntries is the deny list as DenySet entries.
func (s *Server) denyEntries() []proto.NodeAddr {
	var out []proto.NodeAddr
	for _, n := range s.deny.Nodes() {
		out = append(out, proto.NodeAddr{Node: n})
	}
	for _, a := range s.deny.Addrs() {
		out = append(out, proto.NodeAddr{Addr: a})
	}
	return out
}

// saveDenyList persists the deny list; a failure is logged (the deny is
// in force in memory and on the MOMs that got it). While the list is
// withheld after its loss (recovery.go) nothing is written: deny.json
// stays missing, so a restart before the recovery completes recovers
// again. The caller holds s.mu.
func (s *Server) saveDenyList() {
	if s.denyWithheld.Load() {
		return
	}
	if err := s.writeDenyList(); err != nil {
		s.log.WithError(err).Error("persist the deny list")
	}
}

// writeDenyList persists the deny list and the deleted nodes: the
// records that changed, to deny.journal or committed through the group
// (denystore.go). The caller holds s.mu.
func (s *Server) writeDenyList() error {
	return s.denies.save(s.denyBookLocked())
}

// denyBookLocked is the deny list and the deleted nodes as a denyBook,
// sharing s.deleted: read it before s.mu is released. The caller holds
// s.mu.
func (s *Server) denyBookLocked() *denyBook {
	b := &denyBook{entries: make(map[proto.NodeAddr][]keys.KeyID, len(s.denyKeys)), deleted: s.deleted}
	for _, e := range s.denyEntries() {
		b.entries[e] = s.denyKeys[e]
	}
	return b
}

// denySet is the DenySet message of the current list, or nil while the
// list is withheld after its loss: a DenySet replaces a MOM's list, and
// this one would lift the lost entries.
func (s *Server) denySet() *proto.DenySet {
	if s.denyWithheld.Load() {
		return nil
	}
	es := s.denyEntries()
	if len(es) > maxDenyEntries {
		s.log.WithField("entries", len(es)).Warn("deny list longer than one DenySet frame; sending the first part")
		es = es[:maxDenyEntries]
	}
	return &proto.DenySet{Entries: es}
}

// liftDenyLocked lifts a deny of addr, now given to a node again, and
// tells every connected MOM to lift it too (DenyLift). A MOM offline now
// drops it with the DenySet after its next Welcome. The caller holds s.mu.
func (s *Server) liftDenyLocked(addr netip.Addr) {
	a := proto.AddrFrom(addr)
	if !s.deny.Revoked(proto.NodeID{}, a) {
		return
	}
	s.deny.Allow(proto.NodeID{}, a)
	delete(s.denyKeys, proto.NodeAddr{Addr: a})
	s.saveDenyList()
	s.queueDenyLocked(true, proto.NodeAddr{Addr: a})
	s.log.WithField("addr", addr.String()).Info("address given to a node again: its deny is lifted")
}

// denyLocked denies a node id and an address (either may be zero) and
// records the keys the server holds now with each entry, then persists
// the list. The caller holds s.mu.
func (s *Server) denyLocked(node proto.NodeID, addr proto.Addr) {
	s.deny.Deny(node, addr)
	var held []keys.KeyID
	for _, k := range s.ring.Load().Keys() {
		held = append(held, k.ID)
	}
	for _, e := range []proto.NodeAddr{{Node: node}, {Addr: addr}} {
		if e == (proto.NodeAddr{}) {
			continue
		}
		ids := slices.Clone(s.denyKeys[e])
		for _, id := range held {
			if !slices.Contains(ids, id) { // a delete node run again after an incomplete one
				ids = append(ids, id)
			}
		}
		s.denyKeys[e] = ids
	}
	s.saveDenyList()
}

// undenyLocked takes back a denyLocked whose change failed to persist
// (nothing was pushed yet) and persists the list again. The caller holds
// s.mu.
func (s *Server) undenyLocked(node proto.NodeID, addr proto.Addr) {
	s.deny.Allow(node, addr)
	delete(s.denyKeys, proto.NodeAddr{Node: node})
	delete(s.denyKeys, proto.NodeAddr{Addr: addr})
	s.saveDenyList()
}

// denyAddrLocked denies the old address of a readdressed node under every
// key and for good: the node is still a member and holds every new key,
// so no rotation makes its PINGs from the old address fail by key. Only
// giving the address to a node again lifts it (liftDenyLocked);
// pruneDenyLocked never drops it. The caller holds s.mu.
func (s *Server) denyAddrLocked(addr proto.Addr) {
	s.deny.Deny(proto.NodeID{}, addr)
	delete(s.denyKeys, proto.NodeAddr{Addr: addr})
	s.saveDenyList()
}

// pruneDenyLocked drops the deny entries that no longer protect anything:
// none of the keys held when they were made is still in the keyring, so
// the denied node holds only retired keys and its PINGs fail on their key
// id. Without this the list, and the DenySet every MOM gets after its
// Welcome, would grow with every node ever deleted. The entry of a node
// still registered (an incomplete delete) is kept. Connected MOMs get a
// DenyLift of what was dropped. The caller holds s.mu.
func (s *Server) pruneDenyLocked() int {
	ring := s.ring.Load()
	var lifted []proto.NodeAddr
	for e, ids := range s.denyKeys {
		if slices.ContainsFunc(ids, func(id keys.KeyID) bool { return ring.Lookup(id) != nil }) {
			continue
		}
		if e.Node != (proto.NodeID{}) && s.reg.byID[e.Node] != nil {
			// A node an incomplete delete node left registered: it is
			// still a member, so a rotation would give it the new key;
			// only its deny entry refuses it until delete node is run
			// again (halfDeletedLocked).
			continue
		}
		s.deny.Allow(e.Node, e.Addr)
		delete(s.denyKeys, e)
		lifted = append(lifted, e)
	}
	n := len(lifted)
	if n == 0 {
		return 0
	}
	s.saveDenyList()
	s.log.WithField("entries", n).Info("deny entries dropped: the keys they guarded against are retired")
	s.queueDenyLocked(true, lifted...)
	return n
}

// pushDenyLocked closes the connection of the node entries name
// (closeNode) and queues a Deny of entries for every connected MOM, in
// order with every other deny and lift (denypush.go). The caller holds
// s.mu.
func (s *Server) pushDenyLocked(entries []proto.NodeAddr, closeNode proto.NodeID) {
	if c := s.conns[closeNode]; c != nil {
		c.conn.Close()
	}
	s.queueDenyLocked(false, entries...)
}

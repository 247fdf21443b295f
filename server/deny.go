package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/proto"
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
}

type denyEntryJSON struct {
	Node string `json:"node,omitempty"`
	Addr string `json:"addr,omitempty"`
}

// loadDenyList restores the deny list; a missing file is an empty list.
func (s *Server) loadDenyList() error {
	path := filepath.Join(s.cfg.StateDir, denyFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("load deny list: %w", err)
	}
	entries, err := decodeDenyList(data)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	for _, e := range entries {
		s.deny.Deny(e.Node, e.Addr)
	}
	return nil
}

// errBadDenyList means deny.json does not decode.
var errBadDenyList = errors.New("invalid deny list")

// decodeDenyList strictly decodes deny.json.
func decodeDenyList(data []byte) ([]proto.NodeAddr, error) {
	var d denyJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadDenyList, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the JSON object", errBadDenyList)
	}
	if d.Format != 1 {
		return nil, fmt.Errorf("%w: format %d, want 1", errBadDenyList, d.Format)
	}
	out := make([]proto.NodeAddr, 0, len(d.Entries))
	for i, e := range d.Entries {
		var na proto.NodeAddr
		if e.Node != "" {
			u, err := uuid.Parse(e.Node)
			if err != nil {
				return nil, fmt.Errorf("%w: entries[%d].node %q: %v", errBadDenyList, i, e.Node, err)
			}
			na.Node = proto.NodeID(u)
		}
		if e.Addr != "" {
			ip, err := netip.ParseAddr(e.Addr)
			if err != nil || ip.Zone() != "" {
				return nil, fmt.Errorf("%w: entries[%d].addr %q: not an IP address", errBadDenyList, i, e.Addr)
			}
			na.Addr = proto.AddrFrom(ip.Unmap())
		}
		if na == (proto.NodeAddr{}) {
			return nil, fmt.Errorf("%w: entries[%d] names neither a node nor an address", errBadDenyList, i)
		}
		out = append(out, na)
	}
	return out, nil
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
// in force in memory and on the MOMs that got it).
func (s *Server) saveDenyList() {
	d := denyJSON{Format: 1, Entries: []denyEntryJSON{}}
	for _, e := range s.denyEntries() {
		var j denyEntryJSON
		if e.Node != (proto.NodeID{}) {
			j.Node = uuid.UUID(e.Node).String()
		}
		if e.Addr != (proto.Addr{}) {
			j.Addr = e.Addr.String()
		}
		d.Entries = append(d.Entries, j)
	}
	if err := store.SaveJSON(filepath.Join(s.cfg.StateDir, denyFile), d, 0o600); err != nil {
		s.log.WithError(err).Error("persist the deny list")
	}
}

// denySet is the DenySet message of the current list.
func (s *Server) denySet() *proto.DenySet {
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
	s.saveDenyList()
	frame := proto.Marshal(&proto.DenyLift{Entries: []proto.NodeAddr{{Addr: a}}})
	for _, c := range s.conns {
		s.enqueueLocked(c, pushItem{pushDeny, frame})
	}
	s.log.WithField("addr", addr.String()).Info("address given to a node again: its deny is lifted")
}

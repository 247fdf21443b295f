package mom

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// The deny list the server pushes (Deny, DenySet after every Welcome,
// DenyLift), persisted in deny.json so that it holds across restarts.

// applyDenySet replaces the deny list with the server's whole list (sent
// after every Welcome): denies this MOM missed while offline take effect,
// and an address the server has given to a node again is admitted again.
func (m *Mom) applyDenySet(entries []proto.NodeAddr) error {
	wantNode := map[proto.NodeID]bool{}
	wantAddr := map[proto.Addr]bool{}
	var added []proto.NodeAddr
	for _, e := range entries {
		if e.Node != (proto.NodeID{}) {
			wantNode[e.Node] = true
			if !m.deny.Revoked(e.Node, proto.Addr{}) {
				added = append(added, proto.NodeAddr{Node: e.Node})
			}
		}
		if e.Addr != (proto.Addr{}) {
			wantAddr[e.Addr] = true
			if !m.deny.Revoked(proto.NodeID{}, e.Addr) {
				added = append(added, proto.NodeAddr{Addr: e.Addr})
			}
		}
	}
	// A held list (lost at start) takes the server's whole and is saved,
	// changed or not: only then does the MOM admit peers again.
	changed := len(added) > 0 || m.deny.Held()
	// One Apply for the whole set: the list is copied once, not once per
	// entry (a MOM back after a burst of deletes).
	var changes []ping.DenyChange
	for _, n := range m.deny.Nodes() {
		if !wantNode[n] {
			changes = append(changes, ping.DenyChange{Node: n, Lift: true})
			changed = true
			m.log.WithField("node_id", uuid.UUID(n).String()).Info("deny lifted by server")
		}
	}
	for _, a := range m.deny.Addrs() {
		if !wantAddr[a] {
			changes = append(changes, ping.DenyChange{Addr: a, Lift: true})
			changed = true
			m.log.WithField("addr", a.String()).Info("deny lifted by server (address given to a node again)")
		}
	}
	if !changed {
		return nil
	}
	for _, e := range added {
		changes = append(changes, ping.DenyChange{Node: e.Node, Addr: e.Addr})
	}
	m.deny.Apply(changes)
	for _, e := range added {
		if e.Node != (proto.NodeID{}) {
			m.base.Verifier.Guard.Forget(e.Node)
		}
		m.peers.forget(e.Node, e.Addr)
		f := logrus.Fields{}
		if e.Node != (proto.NodeID{}) {
			f["node_id"] = uuid.UUID(e.Node).String()
		}
		if e.Addr != (proto.Addr{}) {
			f["addr"] = e.Addr.String()
		}
		m.log.WithFields(f).Warn("denied by server (missed while disconnected)")
	}
	if err := m.saveDeny(); err != nil {
		return err
	}
	if m.deny.Held() {
		m.deny.Release()
		m.log.WithField("entries", len(entries)).Warn("deny list recovered from the server's DenySet: admitting peers again")
	}
	return nil
}

// applyDenyLift lifts the denies the server names: it has given these
// addresses to a node again. An entry's node id and address are each
// lifted; an entry not on the list changes nothing. The list is persisted
// only if it changed.
func (m *Mom) applyDenyLift(entries []proto.NodeAddr) error {
	changed := false
	for _, e := range entries {
		if e.Node != (proto.NodeID{}) && m.deny.Revoked(e.Node, proto.Addr{}) {
			m.deny.Allow(e.Node, proto.Addr{})
			changed = true
			m.log.WithField("node_id", uuid.UUID(e.Node).String()).Info("deny lifted by server")
		}
		if e.Addr != (proto.Addr{}) {
			if _, denied := m.deny.AddrKeys(e.Addr); denied {
				m.deny.Allow(proto.NodeID{}, e.Addr)
				changed = true
				m.log.WithField("addr", e.Addr.String()).Info("deny lifted by server (DenyLift): address given to a node again")
			}
		}
	}
	if !changed {
		return nil
	}
	return m.persistDeny()
}

// loadDeny restores the persisted deny list. A list lost at start
// (deny.json missing or damaged, statecheck.StepDenyHold) is held: no peer
// is admitted until the server's DenySet has arrived (applyDenySet).
func (m *Mom) loadDeny() error {
	path := filepath.Join(m.cfg.StateDir, denyFile)
	if m.base.State.Has(statecheck.StepDenyHold) {
		m.deny.Hold()
		m.log.Error("state loss: deny list lost; no peer is admitted until the server's DenySet has arrived")
		return nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	var d denied
	if err := store.LoadJSON(path, &d); err != nil {
		return err
	}
	changes, err := denyChangesOf(d)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	m.deny.Apply(changes)
	return nil
}

// denyChangesOf parses every entry of a decoded deny.json.
func denyChangesOf(d denied) ([]ping.DenyChange, error) {
	if d.Format != 1 {
		// Every version wrote format 1 (saveDeny); another is not
		// read as if it were.
		return nil, fmt.Errorf("unsupported format %d", d.Format)
	}
	changes := make([]ping.DenyChange, 0, len(d.Entries))
	for _, e := range d.Entries {
		n, a, ids, err := parseDenyEntry(e)
		if err != nil {
			return nil, err
		}
		changes = append(changes, ping.DenyChange{Node: n, Addr: a, KeyIDs: ids})
	}
	return changes, nil
}

// checkDenyFile is loadDeny's decoding of deny.json, for the inspection
// (store.RegisterSchema): a list that is JSON but not a deny list is
// damaged, so it is held until the server's DenySet comes, as the
// verdict says, instead of passing `state check` and then refusing the
// start.
func checkDenyFile(data []byte) error {
	var d denied
	if err := strictjson.Decode(data, &d); err != nil {
		return err
	}
	_, err := denyChangesOf(d)
	return err
}

func init() { store.RegisterSchema(statecheck.RoleMom, denyFile, checkDenyFile) }

// applyDeny revokes nodes at once and persists the list.
func (m *Mom) applyDeny(entries []proto.NodeAddr) error {
	// An address is denied under the keys held now: the only ones the
	// deleted node can have. See ping.DenyList.
	var held []uint32
	for _, k := range m.ring.Load().Keys() {
		held = append(held, uint32(k.ID))
	}
	for _, e := range entries {
		if e.Node == (proto.NodeID{}) {
			// An address alone: the old address of a readdressed node
			// (set node Mom=), refused under every key until the server
			// gives it to a node again (DenyLift, or the
			// DenySet after a reconnect, lifts it then).
			m.deny.Deny(e.Node, e.Addr)
		} else {
			m.deny.DenyUnder(e.Node, e.Addr, held)
		}
		m.base.Verifier.Guard.Forget(e.Node)
		m.peers.forget(e.Node, e.Addr)
		m.log.WithFields(logrus.Fields{"node_id": uuid.UUID(e.Node).String(), "addr": e.Addr.String()}).Warn("node denied by server")
	}
	return m.persistDeny()
}

// persistDeny saves a change of the list, unless the list is held: its
// loss must stay visible (deny.json missing or damaged) until the
// server's whole list has replaced it, or a restart would admit peers
// with only the entries received since.
func (m *Mom) persistDeny() error {
	if m.deny.Held() {
		return nil
	}
	return m.saveDeny()
}

func (m *Mom) saveDeny() error {
	d := denied{Format: 1, Entries: []denyEntry{}}
	for _, n := range m.deny.Nodes() {
		d.Entries = append(d.Entries, denyEntry{Node: uuid.UUID(n).String()})
	}
	for _, a := range m.deny.Addrs() {
		e := denyEntry{Addr: a.String()}
		ids, _ := m.deny.AddrKeys(a)
		for _, id := range ids {
			e.Keys = append(e.Keys, keys.KeyID(id).String())
		}
		d.Entries = append(d.Entries, e)
	}
	if err := store.SaveJSON(filepath.Join(m.cfg.StateDir, denyFile), d, 0o600); err != nil {
		return fmt.Errorf("persist deny list: %w", err)
	}
	return nil
}

func parseDenyEntry(e denyEntry) (proto.NodeID, proto.Addr, []uint32, error) {
	var n proto.NodeID
	var a proto.Addr
	var ids []uint32
	for _, k := range e.Keys {
		id, err := keys.ParseKeyID(k)
		if err != nil {
			return n, a, nil, fmt.Errorf("deny entry key %q: %w", k, err)
		}
		ids = append(ids, uint32(id))
	}
	if e.Node != "" {
		u, err := uuid.Parse(e.Node)
		if err != nil {
			return n, a, nil, fmt.Errorf("deny entry node %q: %w", e.Node, err)
		}
		n = proto.NodeID(u)
	}
	if e.Addr != "" {
		p, err := proto.ParseAddr(e.Addr)
		if err != nil {
			return n, a, nil, fmt.Errorf("deny entry addr %q: %w", e.Addr, err)
		}
		a = p
	}
	return n, a, ids, nil
}

// denied is the persisted deny list: nodes the server has revoked.
type denied struct {
	Format  int         `json:"format"`
	Entries []denyEntry `json:"entries"`
}

type denyEntry struct {
	Node string `json:"node"`
	Addr string `json:"addr"`
	// Keys are the cluster key ids (hex) the address is denied under;
	// empty: every key.
	Keys []string `json:"keys,omitempty"`
}

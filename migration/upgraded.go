package migration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/google/uuid"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/strictjson"
)

// ErrBadState wraps every error of DecodeMomState and DecodeState.
var ErrBadState = errors.New("bad migration state")

// MaxUpgraded bounds the upgraded set a MOM keeps (and decodes).
const MaxUpgraded = 1 << 20 // nodes; the set arrives over several frames

// UpgradedSet is the set of nodes marked upgraded, as a MOM learns it from
// NodeUpgraded messages: legacy admission of their addresses is refused.
// It is not safe for concurrent use.
type UpgradedSet struct {
	byAddr map[proto.Addr]proto.NodeID
}

// NewUpgradedSet returns an empty set.
func NewUpgradedSet() *UpgradedSet { return &UpgradedSet{byAddr: map[proto.Addr]proto.NodeID{}} }

// Apply applies a NodeUpgraded operation and reports whether the set
// changed. An undefined op, or a result over MaxUpgraded nodes, is an error
// and changes nothing.
func (s *UpgradedSet) Apply(op uint8, entries []proto.NodeAddr) (bool, error) {
	if op != proto.UpgradedAdd && op != proto.UpgradedRemove && op != proto.UpgradedReplace {
		return false, fmt.Errorf("node upgraded op %d: %w", op, proto.ErrBadValue)
	}
	next := make(map[proto.Addr]proto.NodeID, len(s.byAddr)+len(entries))
	if op != proto.UpgradedReplace {
		for a, n := range s.byAddr {
			next[a] = n
		}
	}
	for _, e := range entries {
		if op == proto.UpgradedRemove {
			delete(next, e.Addr)
		} else {
			next[e.Addr] = e.Node
		}
	}
	if len(next) > MaxUpgraded {
		return false, fmt.Errorf("upgraded set of %d nodes, limit %d: %w", len(next), MaxUpgraded, proto.ErrCountLimit)
	}
	changed := len(next) != len(s.byAddr)
	for a, n := range next {
		if old, ok := s.byAddr[a]; !ok || old != n {
			changed = true
			break
		}
	}
	s.byAddr = next
	return changed, nil
}

// Contains reports whether addr belongs to an upgraded node.
func (s *UpgradedSet) Contains(addr proto.Addr) bool {
	_, ok := s.byAddr[addr]
	return ok
}

// Len is the number of upgraded nodes.
func (s *UpgradedSet) Len() int { return len(s.byAddr) }

// Entries lists the set, sorted by address.
func (s *UpgradedSet) Entries() []proto.NodeAddr {
	out := make([]proto.NodeAddr, 0, len(s.byAddr))
	for a, n := range s.byAddr {
		out = append(out, proto.NodeAddr{Node: n, Addr: a})
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Addr[:], out[j].Addr[:]) < 0 })
	return out
}

// MomState is what a MOM persists about the migration: the server's mode
// as last heard (its protocol when it follows the server, until it hears
// again) and the upgraded set.
type MomState struct {
	ServerMode proto.Mode // 0 if never heard
	Upgraded   *UpgradedSet
}

type momStateJSON struct {
	Format     int            `json:"format"`
	ServerMode string         `json:"server_mode"`
	Upgraded   []upgradedJSON `json:"upgraded"`
}

type upgradedJSON struct {
	Node string `json:"node"`
	Addr string `json:"addr"`
}

// EncodeMomState encodes st as the JSON of a MOM's legacy.json.
func EncodeMomState(st MomState) []byte {
	j := momStateJSON{Format: 1, Upgraded: []upgradedJSON{}}
	if st.ServerMode.Valid() {
		j.ServerMode = st.ServerMode.String()
	}
	if st.Upgraded != nil {
		for _, e := range st.Upgraded.Entries() {
			j.Upgraded = append(j.Upgraded, upgradedJSON{Node: uuid.UUID(e.Node).String(), Addr: e.Addr.String()})
		}
	}
	return mustJSON(j)
}

// mustJSON encodes v, made of plain strings, numbers and slices, which
// cannot fail, as indented JSON with a final newline.
func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("migration: encode %T: %v", v, err))
	}
	return append(b, '\n')
}

// DecodeMomState strictly decodes EncodeMomState's output: unknown fields,
// trailing data, bad ids and addresses and duplicate addresses are errors
// wrapping ErrBadState.
func DecodeMomState(b []byte) (MomState, error) {
	var j momStateJSON
	if err := strictJSON(b, &j); err != nil {
		return MomState{}, err
	}
	if j.Format != 1 {
		return MomState{}, fmt.Errorf("%w: format %d", ErrBadState, j.Format)
	}
	st := MomState{Upgraded: NewUpgradedSet()}
	if j.ServerMode != "" {
		m, err := proto.ParseMode(j.ServerMode)
		if err != nil {
			return MomState{}, fmt.Errorf("%w: server_mode: %v", ErrBadState, err)
		}
		st.ServerMode = m
	}
	if len(j.Upgraded) > MaxUpgraded {
		return MomState{}, fmt.Errorf("%w: %d upgraded nodes, limit %d", ErrBadState, len(j.Upgraded), MaxUpgraded)
	}
	entries := make([]proto.NodeAddr, 0, len(j.Upgraded))
	seen := map[proto.Addr]bool{}
	for i, u := range j.Upgraded {
		id, err := uuid.Parse(u.Node)
		if err != nil || len(u.Node) != 36 {
			return MomState{}, fmt.Errorf("%w: upgraded[%d].node %q: not a UUID", ErrBadState, i, u.Node)
		}
		a, err := netip.ParseAddr(u.Addr)
		if err != nil || a.Zone() != "" || a.String() != u.Addr {
			return MomState{}, fmt.Errorf("%w: upgraded[%d].addr %q: not a canonical IP address", ErrBadState, i, u.Addr)
		}
		pa := proto.AddrFrom(a)
		if seen[pa] {
			return MomState{}, fmt.Errorf("%w: upgraded[%d].addr %s twice", ErrBadState, i, u.Addr)
		}
		seen[pa] = true
		entries = append(entries, proto.NodeAddr{Node: proto.NodeID(id), Addr: pa})
	}
	if _, err := st.Upgraded.Apply(proto.UpgradedReplace, entries); err != nil {
		return MomState{}, fmt.Errorf("%w: %v", ErrBadState, err)
	}
	return st, nil
}

// strictJSON is strictjson.Decode with its error wrapping ErrBadState.
func strictJSON(b []byte, v any) error {
	if err := strictjson.Decode(b, v); err != nil {
		return fmt.Errorf("%w: %v", ErrBadState, err)
	}
	return nil
}

// Package replicatest is a toy replicated state for tests of the
// consensus layer: nodes, enrollment tokens redeemed by hash, members and
// join tokens, and the last keyring of a rotation step. It implements
// replica.StateMachine with the same rules the server's state will follow
// (deterministic, time from the entry), in a few lines each.
package replicatest

import (
	"bytes"
	"cmp"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/strictjson"
)

// Refusals of the toy state.
var (
	ErrExists      = errors.New("already exists")
	ErrNoSuchNode  = errors.New("no such node")
	ErrUnsupported = errors.New("operation not in the toy state")
)

// Node is one node of the toy registry.
type Node struct {
	Name     string         `json:"name"`
	ID       replica.UUID   `json:"id"`
	Pub      *replica.Key32 `json:"pub,omitempty"`
	Upgraded bool           `json:"upgraded,omitempty"`
}

// Registry is the toy state. Safe for concurrent use.
type Registry struct {
	mu      sync.Mutex
	nodes   map[string]Node
	tokens  map[[16]byte]keys.TokenRecord
	joins   *group.JoinBook
	members map[string]replica.CreateMember
	ring    []byte // last keyring, encoded
	applied uint64
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{nodes: map[string]Node{}, tokens: map[[16]byte]keys.TokenRecord{},
		joins: group.NewJoinBook(), members: map[string]replica.CreateMember{}}
}

// Apply implements replica.StateMachine.
func (r *Registry) Apply(index uint64, e replica.Entry) replica.Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied = index
	switch c := e.Cmd.(type) {
	case *replica.CreateNode:
		if _, ok := r.nodes[c.Name]; ok {
			return replica.Result{Err: fmt.Errorf("node %s: %w", c.Name, ErrExists)}
		}
		r.nodes[c.Name] = Node{Name: c.Name, ID: c.ID}
		r.tokens[c.Token.ID] = c.Token
		return replica.Result{Value: c.Name}
	case *replica.EnrollNode:
		n, ok := r.nodes[c.Name]
		if !ok {
			return replica.Result{Err: fmt.Errorf("node %s: %w", c.Name, ErrNoSuchNode)}
		}
		t, ok := r.tokens[c.TokenID]
		switch {
		case !ok || t.Node != c.Name:
			return replica.Result{Err: keys.ErrTokenUnknown}
		case t.Used:
			return replica.Result{Err: keys.ErrTokenUsed}
		case !e.At.Before(t.Expires):
			return replica.Result{Err: keys.ErrTokenExpired}
		case subtle.ConstantTimeCompare(c.SecretHash[:], t.Hash[:]) != 1:
			return replica.Result{Err: keys.ErrTokenSecret}
		}
		t.Used = true
		r.tokens[c.TokenID] = t
		pub := c.Pub
		n.Pub = &pub
		r.nodes[c.Name] = n
		return replica.Result{Value: c.Name}
	case *replica.DeleteNode:
		if _, ok := r.nodes[c.Name]; !ok {
			return replica.Result{Err: fmt.Errorf("node %s: %w", c.Name, ErrNoSuchNode)}
		}
		delete(r.nodes, c.Name)
		for id, t := range r.tokens {
			if t.Node == c.Name {
				delete(r.tokens, id)
			}
		}
		return replica.Result{Value: c.Name}
	case *replica.SetUpgraded:
		n, ok := r.nodes[c.Name]
		if !ok {
			return replica.Result{Err: fmt.Errorf("node %s: %w", c.Name, ErrNoSuchNode)}
		}
		n.Upgraded = c.Upgraded
		r.nodes[c.Name] = n
		return replica.Result{Value: c.Name}
	case *replica.RotationStep:
		if c.Ring != nil {
			b, err := keys.EncodeKeyring(c.Ring)
			if err != nil {
				return replica.Result{Err: err}
			}
			r.ring = b
		}
		return replica.Result{Value: c.Step}
	case *replica.CreateMember:
		if _, ok := r.members[c.Name]; ok {
			return replica.Result{Err: fmt.Errorf("member %s: %w", c.Name, ErrExists)}
		}
		if err := r.joins.Add(c.Token); err != nil {
			return replica.Result{Err: err}
		}
		r.members[c.Name] = *c
		return replica.Result{Value: c.Name}
	case *replica.JoinMember:
		rec, err := r.joins.Redeem(c.TokenID, c.SecretHash, e.At)
		if err == nil && rec.Member != c.Name {
			err = group.ErrJoinUnknown
		}
		return replica.Result{Value: rec.Member, Err: err}
	case *replica.DeleteMember:
		delete(r.members, c.Name)
		r.joins.RevokeMember(c.Name)
		return replica.Result{Value: c.Name}
	}
	return replica.Result{Err: fmt.Errorf("%s: %w", e.Cmd.Op(), ErrUnsupported)}
}

// Applied is the index of the last entry applied.
func (r *Registry) Applied() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.applied
}

// Node returns the named node.
func (r *Registry) Node(name string) (Node, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.nodes[name]
	return n, ok
}

// Names returns every node name, sorted.
func (r *Registry) Names() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.nodes))
	for n := range r.nodes {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Ring is the last keyring a rotation step carried, encoded.
func (r *Registry) Ring() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return bytes.Clone(r.ring)
}

type stateJSON struct {
	Nodes   []Node                 `json:"nodes"`
	Tokens  []keys.TokenRecord     `json:"tokens"`
	Joins   []group.JoinRecord     `json:"joins"`
	Members []replica.CreateMember `json:"members"`
}

type snapshot struct{ secs []replica.Section }

func (s snapshot) WriteTo(w io.Writer) (int64, error) { return replica.WriteSections(w, s.secs) }
func (snapshot) Release()                             {}

// Snapshot implements replica.StateMachine: the registry as a "toy.json"
// section and the keyring as "keyring.json".
func (r *Registry) Snapshot() (replica.Snapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := stateJSON{Nodes: []Node{}, Tokens: []keys.TokenRecord{}, Joins: r.joins.Records(), Members: []replica.CreateMember{}}
	for _, n := range r.nodes {
		st.Nodes = append(st.Nodes, n)
	}
	slices.SortFunc(st.Nodes, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	for _, t := range r.tokens {
		st.Tokens = append(st.Tokens, t)
	}
	slices.SortFunc(st.Tokens, func(a, b keys.TokenRecord) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	for _, m := range r.members {
		st.Members = append(st.Members, m)
	}
	slices.SortFunc(st.Members, func(a, b replica.CreateMember) int { return cmp.Compare(a.Name, b.Name) })
	data, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("toy snapshot: %w", err)
	}
	return snapshot{secs: []replica.Section{{Name: "toy.json", Data: data}, {Name: "keyring.json", Data: bytes.Clone(r.ring)}}}, nil
}

// Restore implements replica.StateMachine.
func (r *Registry) Restore(rd io.Reader) error {
	secs, err := replica.ReadSections(rd)
	if err != nil {
		return err
	}
	if len(secs) != 2 || secs[0].Name != "toy.json" || secs[1].Name != "keyring.json" {
		return fmt.Errorf("%w: want sections toy.json and keyring.json", replica.ErrBadSnapshot)
	}
	var st stateJSON
	if err := strictjson.Decode(secs[0].Data, &st); err != nil {
		return fmt.Errorf("toy.json: %w", err)
	}
	fresh := New()
	for _, n := range st.Nodes {
		fresh.nodes[n.Name] = n
	}
	for _, t := range st.Tokens {
		fresh.tokens[t.ID] = t
	}
	for _, j := range st.Joins {
		if err := fresh.joins.Add(j); err != nil {
			return err
		}
	}
	for _, m := range st.Members {
		fresh.members[m.Name] = m
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nodes, r.tokens, r.joins, r.members, r.ring = fresh.nodes, fresh.tokens, fresh.joins, fresh.members, secs[1].Data
	return nil
}

// ApplyEncoded applies cmd to sm at index the way the consensus layer
// delivers it: encoded, then decoded, so a test exercises the codec too.
func ApplyEncoded(sm replica.StateMachine, index uint64, at time.Time, cmd replica.Command) (replica.Result, error) {
	b, err := replica.Encode(replica.Entry{At: at, Cmd: cmd})
	if err != nil {
		return replica.Result{}, err
	}
	e, err := replica.Decode(b)
	if err != nil {
		return replica.Result{}, err
	}
	return sm.Apply(index, e), nil
}

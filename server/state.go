package server

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
)

// Files in the server's state directory.
const (
	identityFile = "identity.json"
	keyringFile  = "keyring.json"
	stateFile    = "state.json"
	auditFile    = "audit.log"
)

// Sentinel errors of the registry.
var (
	// ErrNotInitialized: the directory holds no server state at all
	// (init creates it, and refuses a directory that holds any).
	ErrNotInitialized = errors.New("state directory not initialized: it holds no server state (create it with momgate-server init)")
	// ErrInitialized: init found state files it will not overwrite.
	ErrInitialized = errors.New("state directory already initialized")
)

var nodeNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// nodeRecord is one node as persisted.
type nodeRecord struct {
	Name     string     `json:"name"`
	ID       string     `json:"id"`
	Mom      string     `json:"mom"`
	Host     string     `json:"host,omitempty"` // the host name Mom= named, resolved to Mom; "" when Mom= was an address
	Port     int        `json:"port"`
	Pub      string     `json:"pub,omitempty"` // identity public key, base64; empty until enrolled
	Created  time.Time  `json:"created"`
	Enrolled *time.Time `json:"enrolled,omitempty"`
	Upgraded bool       `json:"upgraded,omitempty"`
	// Sealed: the node proved it speaks sealed sessions (docs/PROTOCOL.md
	// 6.7); an unsealed control session from it is refused until an
	// administrator clears it (set node NAME sealed=false).
	Sealed bool `json:"sealed,omitempty"`
}

// persisted is the whole of state.json: written atomically on every change,
// so a node, a token and the server's attributes change together or not at all.
type persisted struct {
	Format int `json:"format"`
	// Manifest is true in every state.json this version's server writes
	// (init's is not: it has no journal yet; the first start folds it
	// into one that is): a directory whose manifest is missing but whose
	// state.json says so lost the manifest (store.SnapshotMarked,
	// docs/SECURITY.md 7.1), and is not taken for one of an older
	// version.
	Manifest bool               `json:"manifest,omitempty"`
	ID       string             `json:"id"`
	Attrs    Attrs              `json:"attrs"`
	Nodes    []nodeRecord       `json:"nodes"`
	Tokens   []keys.TokenRecord `json:"tokens"`
}

// node is a node in memory. rec is its persisted record without the
// strings that id, addr and pub reproduce exactly (rec.ID, rec.Mom and
// rec.Pub are "" then, which is nearly always): record() gives the record
// as persisted. This keeps each string once, parsed, and cuts the
// server's memory per node (docs/PERFORMANCE.md, scale).
type node struct {
	rec    nodeRecord
	id     proto.NodeID
	addr   netip.Addr
	pub    [32]byte
	hasPub bool // enrolled: pub is the identity key
	// volatile
	up       bool
	versions uint8 // versions the MOM advertised at its last hello
	keyID    keys.KeyID
	lastSeen time.Time
	protocol string
}

func (n *node) enrolled() bool { return n.hasPub }

// setPub records the node's identity key (enrollment).
func (n *node) setPub(pub [32]byte) {
	n.pub, n.hasPub, n.rec.Pub = pub, true, ""
}

// setAddr moves the node to a (set node Mom=).
func (n *node) setAddr(a netip.Addr) {
	n.addr, n.rec.Mom = a, ""
}

// record is the node's record as persisted.
func (n *node) record() nodeRecord {
	r := n.rec
	if r.ID == "" {
		r.ID = uuid.UUID(n.id).String()
	}
	if r.Mom == "" {
		r.Mom = n.addr.String()
	}
	if r.Pub == "" && n.hasPub {
		r.Pub = encodeKey(n.pub)
	}
	return r
}

// info describes n; active is the server's active key id.
func (n *node) info(active keys.KeyID) admin.NodeInfo {
	st := "enrolling"
	if n.up { // a legacy MOM is up without enrolling
		st = "up"
	} else if n.enrolled() {
		st = "down"
	}
	rec := n.record()
	ni := admin.NodeInfo{
		Name: n.rec.Name, ID: rec.ID, Mom: rec.Mom, Host: n.rec.Host, Port: n.rec.Port, State: st,
		Protocol: n.protocol, Versions: migration.VersionsString(n.versions), Upgraded: n.rec.Upgraded, Created: n.rec.Created,
	}
	if n.keyID != 0 {
		ni.KeyID = n.keyID.String()
		ni.KeyState = "needs sync"
		if n.keyID == active {
			ni.KeyState = "current"
		}
	}
	if n.enrolled() {
		ni.Fingerprint = keys.FingerprintText(n.pub)
	}
	if !n.lastSeen.IsZero() {
		t := n.lastSeen
		ni.LastSeen = &t
	}
	if n.rec.Enrolled != nil {
		t := *n.rec.Enrolled
		ni.Enrolled = &t
	}
	return ni
}

// registry is the server's node table and token book.
type registry struct {
	id     proto.NodeID
	idStr  string
	attrs  Attrs
	byName map[string]*node
	byID   map[proto.NodeID]*node
	addrs  map[proto.Addr]*node // by address (byAddr): a scan per create node was O(N^2) for N creates
	tokens *keys.TokenBook
}

func newRegistry(p persisted) (*registry, error) {
	uid, err := uuid.Parse(p.ID)
	if err != nil {
		return nil, fmt.Errorf("server id %q: %w", p.ID, err)
	}
	if err := p.Attrs.validate(); err != nil {
		return nil, err
	}
	r := &registry{id: proto.NodeID(uid), idStr: p.ID, attrs: p.Attrs,
		byName: map[string]*node{}, byID: map[proto.NodeID]*node{}, addrs: map[proto.Addr]*node{}, tokens: keys.NewTokenBook()}
	for _, rec := range p.Nodes {
		n, err := nodeFromRecord(rec)
		if err != nil {
			return nil, err
		}
		if r.byName[rec.Name] != nil || r.byID[n.id] != nil {
			return nil, fmt.Errorf("node %s: duplicate name or id", rec.Name)
		}
		r.add(n)
	}
	for _, t := range p.Tokens {
		if err := r.tokens.Add(t); err != nil {
			return nil, fmt.Errorf("token for %s: %w", t.Node, err)
		}
	}
	return r, nil
}

func nodeFromRecord(rec nodeRecord) (*node, error) {
	if !nodeNameRE.MatchString(rec.Name) {
		return nil, fmt.Errorf("node name %q invalid", rec.Name)
	}
	uid, err := uuid.Parse(rec.ID)
	if err != nil {
		return nil, fmt.Errorf("node %s id: %w", rec.Name, err)
	}
	a, err := netip.ParseAddr(rec.Mom)
	if err != nil {
		return nil, fmt.Errorf("node %s address: %w", rec.Name, err)
	}
	n := &node{rec: rec, id: proto.NodeID(uid), addr: a.Unmap()}
	if rec.Pub != "" {
		b, err := base64.StdEncoding.DecodeString(rec.Pub)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("node %s public key: not 32 bytes of base64", rec.Name)
		}
		copy(n.pub[:], b)
		n.hasPub = true
	}
	// Keep only the strings the parsed forms do not reproduce exactly.
	if rec.ID == uuid.UUID(n.id).String() {
		n.rec.ID = ""
	}
	if rec.Mom == n.addr.String() {
		n.rec.Mom = ""
	}
	if n.hasPub && rec.Pub == encodeKey(n.pub) {
		n.rec.Pub = ""
	}
	return n, nil
}

// snapshot is the whole persisted state, sorted.
func (r *registry) snapshot() persisted {
	p := r.meta()
	p.Nodes, p.Tokens = []nodeRecord{}, r.tokens.Records()
	for _, n := range r.sortedNodes() {
		p.Nodes = append(p.Nodes, n.record())
	}
	return p
}

// meta is the persisted state without its nodes and tokens.
func (r *registry) meta() persisted {
	return persisted{Format: 1, Manifest: true, ID: r.idStr, Attrs: r.attrs}
}

func (r *registry) tokenBook() *keys.TokenBook { return r.tokens }

// eachNode calls fn for every node record, in no particular order.
func (r *registry) eachNode(fn func(nodeRecord)) {
	for _, n := range r.byName {
		fn(n.record())
	}
}

func (r *registry) sortedNodes() []*node {
	out := make([]*node, 0, len(r.byName))
	for _, n := range r.byName {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rec.Name < out[j].rec.Name })
	return out
}

func (r *registry) byAddr(a netip.Addr) *node { return r.addrs[proto.AddrFrom(a)] }

// moveAddr gives n the address a (set node Mom=, or its undoing).
func (r *registry) moveAddr(n *node, a netip.Addr) {
	if old := proto.AddrFrom(n.addr); r.addrs[old] == n {
		delete(r.addrs, old)
	}
	n.setAddr(a)
	if k := proto.AddrFrom(a); r.addrs[k] == nil {
		r.addrs[k] = n
	}
}

// loadState reads state.json from dir.
func loadState(dir string) (persisted, error) {
	var p persisted
	path := filepath.Join(dir, stateFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return p, fmt.Errorf("%s: %w", dir, ErrNotInitialized)
	}
	if err := store.LoadJSON(path, &p); err != nil {
		return p, err
	}
	if err := checkStateFormat(p); err != nil {
		return p, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

func saveState(dir string, p persisted) error {
	return store.SaveJSON(filepath.Join(dir, stateFile), p, 0o600)
}

func (r *registry) add(n *node) {
	r.byName[n.rec.Name] = n
	r.byID[n.id] = n
	if k := proto.AddrFrom(n.addr); r.addrs[k] == nil {
		r.addrs[k] = n
	}
}

func (r *registry) remove(n *node) {
	delete(r.byName, n.rec.Name)
	delete(r.byID, n.id)
	if k := proto.AddrFrom(n.addr); r.addrs[k] == n {
		delete(r.addrs, k)
	}
}

func encodeKey(k [32]byte) string { return base64.StdEncoding.EncodeToString(k[:]) }

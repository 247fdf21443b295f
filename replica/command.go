package replica

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/rotation"
	"github.com/momgate/momgate/strictjson"
)

// Op names a command in the encoding; values are never reused.
type Op uint8

// The operations of the replicated state machine: every write to the
// server's state is one of them (docs/HA.md, "Replicated state").
const (
	OpCreateNode   Op = 1  // create node: the node and its enrollment token
	OpEnrollNode   Op = 2  // a MOM redeemed its token: its identity key
	OpDeleteNode   Op = 3  // delete node: the node goes, its deny entries come
	OpSetNodeAddr  Op = 4  // set node Mom=: new address, old one denied
	OpSetUpgraded  Op = 5  // the no-downgrade mark set or cleared
	OpSetServer    Op = 6  // set server: the whole attribute set after the change
	OpPruneTokens  Op = 7  // drop enrollment and join tokens expired before a time
	OpRotationStep Op = 8  // a key rotation step: its record and/or keyring
	OpLiftDeny     Op = 9  // deny entries lifted (address reused, keys retired)
	OpCreateMember Op = 10 // create server: a member-to-be and its join token
	OpJoinMember   Op = 11 // a joiner redeemed its join token
	OpDeleteMember Op = 12 // delete server
)

var opNames = map[Op]string{
	OpCreateNode: "create_node", OpEnrollNode: "enroll_node", OpDeleteNode: "delete_node",
	OpSetNodeAddr: "set_node_addr", OpSetUpgraded: "set_upgraded", OpSetServer: "set_server",
	OpPruneTokens: "prune_tokens", OpRotationStep: "rotation_step", OpLiftDeny: "lift_deny",
	OpCreateMember: "create_member", OpJoinMember: "join_member", OpDeleteMember: "delete_member",
	OpStateRecords: "state_records",
}

// newCommand returns an empty command of op, or nil for an unknown op.
func newCommand(op Op) Command {
	switch op {
	case OpCreateNode:
		return &CreateNode{}
	case OpEnrollNode:
		return &EnrollNode{}
	case OpDeleteNode:
		return &DeleteNode{}
	case OpSetNodeAddr:
		return &SetNodeAddr{}
	case OpSetUpgraded:
		return &SetUpgraded{}
	case OpSetServer:
		return &SetServer{}
	case OpPruneTokens:
		return &PruneTokens{}
	case OpRotationStep:
		return &RotationStep{}
	case OpLiftDeny:
		return &LiftDeny{}
	case OpCreateMember:
		return &CreateMember{}
	case OpJoinMember:
		return &JoinMember{}
	case OpDeleteMember:
		return &DeleteMember{}
	case OpStateRecords:
		return &StateRecords{}
	}
	return nil
}

// String names the op as in logs.
func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Command is one write to the replicated state. A command carries every
// input its effect depends on (the leader decides, the command records the
// decision), so that applying it is deterministic on every member.
type Command interface {
	// Op is the command's operation.
	Op() Op
	// check validates the fields; Encode and Decode call it.
	check() error
}

// Limits of commands.
const (
	MaxDenyEntries = 1 << 15 // a DenySet frame's worth
	MaxKeysPerDeny = 64
	MaxAttrs       = 32
	MaxAttrLen     = 256
)

// DenyEntry is one deny-list entry: a node id, an address, or both, with
// the cluster key ids the server held when it was made (docs/KEYS.md).
type DenyEntry struct {
	Node UUID       `json:"node"`
	Addr netip.Addr `json:"addr"`
	Keys []uint32   `json:"keys"`
}

func (d DenyEntry) check() error {
	if d.Node == (UUID{}) && !d.Addr.IsValid() {
		return fmt.Errorf("deny entry names neither a node nor an address")
	}
	if d.Addr.IsValid() {
		if err := checkNodeAddr(d.Addr); err != nil {
			return fmt.Errorf("deny entry: %w", err)
		}
	}
	if len(d.Keys) > MaxKeysPerDeny {
		return fmt.Errorf("deny entry: %d keys, at most %d", len(d.Keys), MaxKeysPerDeny)
	}
	return nil
}

func checkDeny(es []DenyEntry) error {
	if len(es) > MaxDenyEntries {
		return fmt.Errorf("%d deny entries, at most %d", len(es), MaxDenyEntries)
	}
	for i, e := range es {
		if err := e.check(); err != nil {
			return fmt.Errorf("deny[%d]: %w", i, err)
		}
	}
	return nil
}

func checkNodeAddr(a netip.Addr) error {
	if !a.IsValid() {
		return fmt.Errorf("no address")
	}
	if a.Zone() != "" || a.Is4In6() {
		return fmt.Errorf("address %s: no zone and no IPv4-mapped form", a)
	}
	return nil
}

// checkName uses the rule of node and member names.
func checkName(kind, name string) error {
	if err := group.CheckMemberName(name); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}

// CreateNode is `create node`: the node (not yet enrolled) and the record
// of its one-time enrollment token (the hash, never the secret).
type CreateNode struct {
	Name  string           `json:"name"`
	ID    UUID             `json:"id"`
	Mom   netip.Addr       `json:"mom"`
	Port  uint16           `json:"port"`
	Token keys.TokenRecord `json:"token"`
}

// Op is OpCreateNode.
func (*CreateNode) Op() Op { return OpCreateNode }

func (c *CreateNode) check() error {
	if err := checkName("node", c.Name); err != nil {
		return err
	}
	if c.ID == (UUID{}) {
		return fmt.Errorf("node %s: zero id", c.Name)
	}
	if err := checkNodeAddr(c.Mom); err != nil {
		return fmt.Errorf("node %s: %w", c.Name, err)
	}
	if c.Port == 0 {
		return fmt.Errorf("node %s: port 0", c.Name)
	}
	if c.Token.Node != c.Name {
		return fmt.Errorf("node %s: token is for node %q", c.Name, c.Token.Node)
	}
	return nil
}

// EnrollNode is a MOM's enrollment: the member that served it checked the
// proof; applying it redeems the token (at most once across the group,
// refused if used or expired at the entry's time) and records the key.
type EnrollNode struct {
	Name       string `json:"name"`
	TokenID    ID16   `json:"token_id"`
	SecretHash Hash32 `json:"secret_hash"`
	Pub        Key32  `json:"pub"`
}

// Op is OpEnrollNode.
func (*EnrollNode) Op() Op { return OpEnrollNode }

func (c *EnrollNode) check() error { return checkName("node", c.Name) }

// DeleteNode is `delete node`: the node and its tokens go, the deny
// entries the leader computed come.
type DeleteNode struct {
	Name string      `json:"name"`
	Deny []DenyEntry `json:"deny"`
}

// Op is OpDeleteNode.
func (*DeleteNode) Op() Op { return OpDeleteNode }

func (c *DeleteNode) check() error {
	if err := checkName("node", c.Name); err != nil {
		return err
	}
	return checkDeny(c.Deny)
}

// SetNodeAddr is `set node NAME Mom=ADDR`: the node moves, its old address
// is denied.
type SetNodeAddr struct {
	Name string      `json:"name"`
	Mom  netip.Addr  `json:"mom"`
	Deny []DenyEntry `json:"deny"`
}

// Op is OpSetNodeAddr.
func (*SetNodeAddr) Op() Op { return OpSetNodeAddr }

func (c *SetNodeAddr) check() error {
	if err := checkName("node", c.Name); err != nil {
		return err
	}
	if err := checkNodeAddr(c.Mom); err != nil {
		return fmt.Errorf("node %s: %w", c.Name, err)
	}
	return checkDeny(c.Deny)
}

// SetUpgraded sets or clears a node's no-downgrade mark (docs/PROTOCOL.md
// section 4.6).
type SetUpgraded struct {
	Name     string `json:"name"`
	Upgraded bool   `json:"upgraded"`
}

// Op is OpSetUpgraded.
func (*SetUpgraded) Op() Op { return OpSetUpgraded }

func (c *SetUpgraded) check() error { return checkName("node", c.Name) }

// SetServer is `set server`: the whole attribute set as it is after the
// change (validated by the server before it proposes), so applying it
// needs no knowledge of each attribute.
type SetServer struct {
	Attrs map[string]string `json:"attrs"`
}

// Op is OpSetServer.
func (*SetServer) Op() Op { return OpSetServer }

func (c *SetServer) check() error {
	if len(c.Attrs) == 0 || len(c.Attrs) > MaxAttrs {
		return fmt.Errorf("set server: %d attributes, want 1 to %d", len(c.Attrs), MaxAttrs)
	}
	for k, v := range c.Attrs {
		if k == "" || len(k) > MaxAttrLen || len(v) > MaxAttrLen {
			return fmt.Errorf("set server: attribute %.32q: empty name, or name or value over %d bytes", k, MaxAttrLen)
		}
	}
	return nil
}

// PruneTokens drops enrollment and join token records that expired at or
// before Before (the leader's clock less the grace it keeps them for).
type PruneTokens struct {
	Before time.Time `json:"before"`
}

// Op is OpPruneTokens.
func (*PruneTokens) Op() Op { return OpPruneTokens }

func (c *PruneTokens) check() error {
	if c.Before.IsZero() {
		return fmt.Errorf("prune tokens: no time")
	}
	return nil
}

// RotationStep is what a rotation.SaveRecord and/or rotation.SaveRing
// action persists today: committing it is the persist-before-send of
// docs/KEYS.md. The keyring carries cluster key secrets: the log is as
// secret as keyring.json, and travels only inside the group's TLS.
type RotationStep struct {
	Step   string           // the action's step name (rotation.Step*), for logs and the crash hook
	Record *rotation.Record // nil: unchanged
	Ring   *keys.Keyring    // nil: unchanged
}

// Op is OpRotationStep.
func (*RotationStep) Op() Op { return OpRotationStep }

func (c *RotationStep) check() error {
	if c.Record == nil && c.Ring == nil {
		return fmt.Errorf("rotation step %q: neither a record nor a keyring", c.Step)
	}
	if c.Step == "" || len(c.Step) > 32 {
		return fmt.Errorf("rotation step: name of %d bytes, want 1 to 32", len(c.Step))
	}
	return nil
}

type rotationStepJSON struct {
	Step   string          `json:"step"`
	Record json.RawMessage `json:"record,omitempty"`
	Ring   json.RawMessage `json:"ring,omitempty"`
}

// MarshalJSON embeds the record and the keyring in their file encodings.
func (c *RotationStep) MarshalJSON() ([]byte, error) {
	j := rotationStepJSON{Step: c.Step}
	var err error
	if c.Record != nil {
		if j.Record, err = rotation.EncodeRecord(*c.Record); err != nil {
			return nil, err
		}
	}
	if c.Ring != nil {
		if j.Ring, err = keys.EncodeKeyring(c.Ring); err != nil {
			return nil, err
		}
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the embedded record and keyring with their own
// strict decoders.
func (c *RotationStep) UnmarshalJSON(data []byte) error {
	var j rotationStepJSON
	if err := strictjson.Decode(data, &j); err != nil {
		return err
	}
	*c = RotationStep{Step: j.Step}
	if j.Record != nil {
		rec, err := rotation.DecodeRecord(j.Record)
		if err != nil {
			return err
		}
		c.Record = &rec
	}
	if j.Ring != nil {
		ring, err := keys.DecodeKeyring(j.Ring)
		if err != nil {
			return err
		}
		c.Ring = ring
	}
	return nil
}

// LiftDeny drops deny entries: an address given to a node again, or
// entries whose keys are all retired.
type LiftDeny struct {
	Entries []DenyEntry `json:"entries"`
}

// Op is OpLiftDeny.
func (*LiftDeny) Op() Op { return OpLiftDeny }

func (c *LiftDeny) check() error {
	if len(c.Entries) == 0 {
		return fmt.Errorf("lift deny: no entries")
	}
	return checkDeny(c.Entries)
}

// CreateMember is `create server NAME Address=HOST[:PORT]`: a member to
// be, and the record of its one-time join token.
type CreateMember struct {
	Name    string           `json:"name"`
	Addr    string           `json:"addr"` // replication address HOST:PORT
	Standby bool             `json:"standby"`
	Token   group.JoinRecord `json:"token"`
}

// Op is OpCreateMember.
func (*CreateMember) Op() Op { return OpCreateMember }

func (c *CreateMember) check() error {
	if err := checkName("member", c.Name); err != nil {
		return err
	}
	if err := group.CheckAddr(c.Addr); err != nil {
		return fmt.Errorf("member %s: %w", c.Name, err)
	}
	if c.Token.Member != c.Name || c.Token.Addr != c.Addr {
		return fmt.Errorf("member %s: join token is for %s at %s", c.Name, c.Token.Member, c.Token.Addr)
	}
	return nil
}

// JoinMember is a joiner's redemption of its join token: applying it
// redeems the token at most once across the group; the leader then adds
// the member to the raft configuration (voter, or non-voter for a
// standby).
type JoinMember struct {
	Name       string `json:"name"`
	TokenID    ID16   `json:"token_id"`
	SecretHash Hash32 `json:"secret_hash"`
}

// Op is OpJoinMember.
func (*JoinMember) Op() Op { return OpJoinMember }

func (c *JoinMember) check() error { return checkName("member", c.Name) }

// DeleteMember is `delete server NAME`.
type DeleteMember struct {
	Name string `json:"name"`
}

// Op is OpDeleteMember.
func (*DeleteMember) Op() Op { return OpDeleteMember }

func (c *DeleteMember) check() error { return checkName("member", c.Name) }

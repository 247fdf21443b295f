package replica

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// OpStateRecords is a write of the server as the records it changed:
// what the server would append to its state journal or write to one of
// its state files (docs/HA.md section 12.1, as built). The leader decides
// and changes its own state as a single server does; the command carries
// the records that changed, and applying it puts them into each member's
// replica of the state. Every write path of the server goes through it
// (sealed marks, host names and deleted-node records included); it is the
// one operation of this version.
const OpStateRecords Op = 13

// Record kinds of StateRecords.
const (
	RecordMeta   = "meta"   // the server's attributes and id; key "server"
	RecordNode   = "node"   // one node; key: node id
	RecordToken  = "token"  // one enrollment token; key: token id, hex
	RecordFile   = "file"   // a whole state file; key: its name (keyring.json, rotation.json, deny.json)
	RecordMember = "member" // one member of the group; key: member name
	// RecordRotation is the rotation record without its behind list (the
	// encoding of rotation.json, format 1); key "record".
	RecordRotation = "rotation"
	// RecordBehind is one node of the rotation record's behind list; key:
	// node id; value {}; deleted when the node left the list.
	RecordBehind = "behind"
	// RecordDeny is one entry of the deny list; key "node:" and a node id
	// or "addr:" and an IP address; value {"keys": [...]} (the key ids the
	// server held when the entry was made, absent: kept for good);
	// deleted when the entry is lifted or pruned.
	RecordDeny = "deny"
	// RecordDeleted is one deleted node remembered; key: node id; value
	// {"name", "at"}; deleted when it is forgotten (the oldest past the
	// bound).
	RecordDeleted = "deleted"
)

// Limits of StateRecords.
const (
	MaxRecords   = 1 << 16
	MaxRecordKey = 128
	MaxWhyLen    = 256
)

// StateRecord is one record put (Value) or deleted.
type StateRecord struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
}

// StateRecords is one write of the server: its records, applied in order.
type StateRecords struct {
	Why     string        `json:"why"` // for logs: the operation ("create node n1")
	Records []StateRecord `json:"records"`
}

// Op is OpStateRecords.
func (*StateRecords) Op() Op { return OpStateRecords }

func (c *StateRecords) check() error {
	if len(c.Records) == 0 || len(c.Records) > MaxRecords {
		return fmt.Errorf("state records: %d records, want 1 to %d", len(c.Records), MaxRecords)
	}
	if len(c.Why) > MaxWhyLen {
		return fmt.Errorf("state records: reason over %d bytes", MaxWhyLen)
	}
	for i, r := range c.Records {
		switch r.Kind {
		case RecordMeta, RecordNode, RecordToken, RecordFile, RecordMember, RecordRotation, RecordBehind, RecordDeny, RecordDeleted:
		default:
			return fmt.Errorf("record %d: unknown kind %.32q", i, r.Kind)
		}
		if r.Key == "" || len(r.Key) > MaxRecordKey {
			return fmt.Errorf("record %d (%s): key of %d bytes, want 1 to %d", i, r.Kind, len(r.Key), MaxRecordKey)
		}
		if r.Deleted != (len(r.Value) == 0) {
			return fmt.Errorf("record %d (%s %s): a value exactly when not deleted", i, r.Kind, r.Key)
		}
		if !r.Deleted && (!json.Valid(r.Value) || bytes.TrimSpace(r.Value)[0] != '{') {
			return fmt.Errorf("record %d (%s %s): value is not a JSON object", i, r.Kind, r.Key)
		}
	}
	return nil
}

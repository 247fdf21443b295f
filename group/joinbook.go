package group

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"time"

	"github.com/momgate/momgate/strictjson"
)

// Join redemption errors: each is a distinct refusal the joiner is told.
var (
	ErrJoinUnknown = errors.New("unknown join token")
	ErrJoinUsed    = errors.New("join token already used")
	ErrJoinExpired = errors.New("join token expired")
	ErrJoinSecret  = errors.New("join token secret does not match")
)

var memberNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckMemberName validates a member name: 1-64 letters, digits, '.', '_'
// or '-', starting with a letter or digit (the rule of node names).
func CheckMemberName(name string) error { return checkMemberName(name) }

func checkMemberName(name string) error {
	if !memberNameRE.MatchString(name) {
		return fmt.Errorf("member name %q: want 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// JoinRecord is what the group keeps of a join token: never the secret.
type JoinRecord struct {
	ID      [16]byte
	Hash    [32]byte // HashSecret of the secret
	Member  string   // the member name given at create server
	Addr    string   // its replication address HOST:PORT, from create server
	Expires time.Time
	Used    bool
}

// JoinBook is the group's set of join records. It is part of the
// replicated state: every member applies the same redemptions in the same
// order, so a token is redeemed at most once across the group. Not safe for
// concurrent use.
type JoinBook struct {
	recs map[[16]byte]JoinRecord
}

// NewJoinBook returns an empty book.
func NewJoinBook() *JoinBook { return &JoinBook{recs: map[[16]byte]JoinRecord{}} }

// Add inserts a record; a duplicate id is refused.
func (b *JoinBook) Add(r JoinRecord) error {
	if _, dup := b.recs[r.ID]; dup {
		return fmt.Errorf("join token %x: duplicate id", r.ID[:4])
	}
	b.recs[r.ID] = r
	return nil
}

// Lookup returns the record of id, used or not, expired or not.
func (b *JoinBook) Lookup(id [16]byte) (JoinRecord, error) {
	r, ok := b.recs[id]
	if !ok {
		return r, ErrJoinUnknown
	}
	return r, nil
}

// Redeem uses a token: it must exist, be unused, be unexpired at now and
// its secret must hash to secretHash (HashSecret). It is deterministic, so
// it runs inside the replicated state machine with now taken from the
// command, never from the local clock. Only a successful redeem marks the
// record used.
func (b *JoinBook) Redeem(id [16]byte, secretHash [32]byte, now time.Time) (JoinRecord, error) {
	r, ok := b.recs[id]
	switch {
	case !ok:
		return r, ErrJoinUnknown
	case r.Used:
		return r, ErrJoinUsed
	case !now.Before(r.Expires):
		return r, ErrJoinExpired
	case subtle.ConstantTimeCompare(secretHash[:], r.Hash[:]) != 1:
		return r, ErrJoinSecret
	}
	r.Used = true
	b.recs[id] = r
	return r, nil
}

// RevokeMember drops every record of member (delete server before its
// join) and returns how many.
func (b *JoinBook) RevokeMember(member string) int {
	n := 0
	for id, r := range b.recs {
		if r.Member == member {
			delete(b.recs, id)
			n++
		}
	}
	return n
}

// Prune drops records that expired at or before now, used or not.
func (b *JoinBook) Prune(now time.Time) int {
	n := 0
	for id, r := range b.recs {
		if !now.Before(r.Expires) {
			delete(b.recs, id)
			n++
		}
	}
	return n
}

// Len is the number of records.
func (b *JoinBook) Len() int { return len(b.recs) }

// Records returns every record sorted by member then id (the snapshot
// order, so every member writes the same bytes).
func (b *JoinBook) Records() []JoinRecord {
	out := make([]JoinRecord, 0, len(b.recs))
	for _, r := range b.recs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Member != out[j].Member {
			return out[i].Member < out[j].Member
		}
		return string(out[i].ID[:]) < string(out[j].ID[:])
	})
	return out
}

type joinRecordJSON struct {
	ID      string    `json:"id"`
	Hash    string    `json:"hash"`
	Member  string    `json:"member"`
	Addr    string    `json:"addr"`
	Expires time.Time `json:"expires"`
	Used    bool      `json:"used"`
}

// MarshalJSON writes ids and hashes in hex.
func (r JoinRecord) MarshalJSON() ([]byte, error) {
	return json.Marshal(joinRecordJSON{ID: hex.EncodeToString(r.ID[:]), Hash: hex.EncodeToString(r.Hash[:]),
		Member: r.Member, Addr: r.Addr, Expires: r.Expires, Used: r.Used})
}

// UnmarshalJSON strictly reads a record.
func (r *JoinRecord) UnmarshalJSON(data []byte) error {
	var j joinRecordJSON
	if err := strictjson.Decode(data, &j); err != nil {
		return fmt.Errorf("join record: %w", err)
	}
	id, err := hex.DecodeString(j.ID)
	if err != nil || len(id) != 16 || hex.EncodeToString(id) != j.ID {
		return fmt.Errorf("join record id %q: want 32 lowercase hex digits", j.ID)
	}
	h, err := hex.DecodeString(j.Hash)
	if err != nil || len(h) != 32 || hex.EncodeToString(h) != j.Hash {
		return fmt.Errorf("join record %s hash: want 64 lowercase hex digits", j.ID)
	}
	if err := checkMemberName(j.Member); err != nil {
		return fmt.Errorf("join record %s: %w", j.ID, err)
	}
	if err := CheckAddr(j.Addr); err != nil {
		return fmt.Errorf("join record %s: %w", j.ID, err)
	}
	*r = JoinRecord{Member: j.Member, Addr: j.Addr, Expires: j.Expires, Used: j.Used}
	copy(r.ID[:], id)
	copy(r.Hash[:], h)
	return nil
}

package keys

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/momgate/momgate/strictjson"
)

// Token errors.
var (
	ErrBadToken       = errors.New("malformed enrollment token")
	ErrServerMismatch = errors.New("server key does not match the token's pinned fingerprint")
	ErrTokenUnknown   = errors.New("unknown enrollment token")
	ErrTokenUsed      = errors.New("enrollment token already used")
	ErrTokenExpired   = errors.New("enrollment token expired")
	ErrTokenSecret    = errors.New("enrollment token secret does not match")
)

// TokenPrefix starts every enrollment token.
const TokenPrefix = "mgt1_"

const tokenRawSize = 16 + 32 + 32 // id | secret | server fingerprint

// Token is a parsed enrollment token: what the MOM holds.
type Token struct {
	ID       [16]byte
	Secret   [32]byte
	ServerFP [32]byte // SHA-256 of the server's public key
}

// TokenRecord is what the server stores of a token: never the secret.
type TokenRecord struct {
	ID      [16]byte
	Hash    [32]byte // SHA-256 of the secret
	Node    string
	Expires time.Time
	Used    bool
}

// IssueToken makes a single-use token for node that expires after ttl and
// pins the server's public key. It returns the token text for the
// administrator and the record for the server to keep.
func IssueToken(rnd io.Reader, now time.Time, ttl time.Duration, node string, serverPub [32]byte) (string, TokenRecord, error) {
	var t Token
	if _, err := io.ReadFull(rnd, t.ID[:]); err != nil {
		return "", TokenRecord{}, fmt.Errorf("issue token: %w", err)
	}
	if _, err := io.ReadFull(rnd, t.Secret[:]); err != nil {
		return "", TokenRecord{}, fmt.Errorf("issue token: %w", err)
	}
	t.ServerFP = Fingerprint(serverPub)
	rec := TokenRecord{ID: t.ID, Hash: sha256.Sum256(t.Secret[:]), Node: node, Expires: now.Add(ttl).UTC().Truncate(time.Second)}
	return t.String(), rec, nil
}

// String encodes the token.
func (t Token) String() string {
	raw := make([]byte, 0, tokenRawSize)
	raw = append(raw, t.ID[:]...)
	raw = append(raw, t.Secret[:]...)
	raw = append(raw, t.ServerFP[:]...)
	return TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// ParseToken strictly parses a token string.
func ParseToken(s string) (Token, error) {
	var t Token
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, TokenPrefix) {
		return t, fmt.Errorf("%w: does not start with %q", ErrBadToken, TokenPrefix)
	}
	body := s[len(TokenPrefix):]
	if len(body) != base64.RawURLEncoding.EncodedLen(tokenRawSize) {
		return t, fmt.Errorf("%w: %d characters after the prefix, want %d (truncated copy?)", ErrBadToken, len(body), base64.RawURLEncoding.EncodedLen(tokenRawSize))
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil || len(raw) != tokenRawSize {
		return t, fmt.Errorf("%w: not URL-safe base64", ErrBadToken)
	}
	copy(t.ID[:], raw[0:16])
	copy(t.Secret[:], raw[16:48])
	copy(t.ServerFP[:], raw[48:80])
	return t, nil
}

// CheckServer verifies that pub is the server key the token pins.
func (t Token) CheckServer(pub [32]byte) error {
	fp := Fingerprint(pub)
	if subtle.ConstantTimeCompare(fp[:], t.ServerFP[:]) != 1 {
		return ErrServerMismatch
	}
	return nil
}

// TokenBook is the server's set of token records (pure, not safe for
// concurrent use: the server guards it with its registry lock).
type TokenBook struct {
	recs map[[16]byte]TokenRecord
}

// NewTokenBook returns an empty book.
func NewTokenBook() *TokenBook { return &TokenBook{recs: map[[16]byte]TokenRecord{}} }

// Add inserts a record; a duplicate id is refused.
func (b *TokenBook) Add(r TokenRecord) error {
	if _, dup := b.recs[r.ID]; dup {
		return fmt.Errorf("token %x: duplicate id", r.ID[:4])
	}
	b.recs[r.ID] = r
	return nil
}

// Lookup returns the record of id, used or not, expired or not.
func (b *TokenBook) Lookup(id [16]byte) (TokenRecord, error) {
	r, ok := b.recs[id]
	if !ok {
		return r, ErrTokenUnknown
	}
	return r, nil
}

// Check verifies secret against the record of id without using it.
func (b *TokenBook) Check(id [16]byte, secret [32]byte) error {
	r, ok := b.recs[id]
	if !ok {
		return ErrTokenUnknown
	}
	h := sha256.Sum256(secret[:])
	if subtle.ConstantTimeCompare(h[:], r.Hash[:]) != 1 {
		return ErrTokenSecret
	}
	return nil
}

// Redeem uses a token: it must exist, be unused, be unexpired at now and
// match secret. Only a successful redeem marks it used.
func (b *TokenBook) Redeem(id [16]byte, secret [32]byte, now time.Time) (TokenRecord, error) {
	r, ok := b.recs[id]
	switch {
	case !ok:
		return r, ErrTokenUnknown
	case r.Used:
		return r, ErrTokenUsed
	case !now.Before(r.Expires):
		return r, ErrTokenExpired
	}
	if err := b.Check(id, secret); err != nil {
		return r, err
	}
	r.Used = true
	b.recs[id] = r
	return r, nil
}

// Unredeem marks a token unused again (undoing a Redeem whose effects could
// not be persisted).
func (b *TokenBook) Unredeem(id [16]byte) {
	if r, ok := b.recs[id]; ok {
		r.Used = false
		b.recs[id] = r
	}
}

// Prune drops records that expired at or before now, used or not, and
// returns how many it dropped. A used token is kept until then so that a
// reuse is reported as such (and a retry after a lost Welcome succeeds);
// the enrollment itself is recorded in the node. Past expiry a reused
// token is refused as unknown, and the server holds no per-node token
// state at all.
func (b *TokenBook) Prune(now time.Time) int {
	n := 0
	for id, r := range b.recs {
		if !now.Before(r.Expires) {
			delete(b.recs, id)
			n++
		}
	}
	if n > len(b.recs) {
		// A Go map keeps its size after deletions (maps.Clone too): copy it.
		m := make(map[[16]byte]TokenRecord, len(b.recs))
		for id, r := range b.recs {
			m[id] = r
		}
		b.recs = m
	}
	return n
}

// Revoke drops every token of node and returns what it dropped.
func (b *TokenBook) Revoke(node string) []TokenRecord {
	var out []TokenRecord
	for id, r := range b.recs {
		if r.Node == node {
			out = append(out, r)
			delete(b.recs, id)
		}
	}
	return out
}

// Len is the number of records.
func (b *TokenBook) Len() int { return len(b.recs) }

// Range calls fn for every record, in no particular order, until fn
// returns false.
func (b *TokenBook) Range(fn func(TokenRecord) bool) {
	for _, r := range b.recs {
		if !fn(r) {
			return
		}
	}
}

// Records returns every record, sorted by node then id.
func (b *TokenBook) Records() []TokenRecord {
	out := make([]TokenRecord, 0, len(b.recs))
	for _, r := range b.recs {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return string(out[i].ID[:]) < string(out[j].ID[:])
	})
	return out
}

type tokenRecordJSON struct {
	ID      string    `json:"id"`
	Hash    string    `json:"hash"`
	Node    string    `json:"node"`
	Expires time.Time `json:"expires"`
	Used    bool      `json:"used"`
}

// MarshalJSON writes ids and hashes in hex.
func (r TokenRecord) MarshalJSON() ([]byte, error) {
	return json.Marshal(tokenRecordJSON{ID: hex.EncodeToString(r.ID[:]), Hash: hex.EncodeToString(r.Hash[:]),
		Node: r.Node, Expires: r.Expires, Used: r.Used})
}

// UnmarshalJSON strictly reads a record.
func (r *TokenRecord) UnmarshalJSON(data []byte) error {
	var j tokenRecordJSON
	if err := strictjson.Decode(data, &j); err != nil {
		return fmt.Errorf("token record: %w", err)
	}
	id, err := hex.DecodeString(j.ID)
	if err != nil || len(id) != 16 {
		return fmt.Errorf("token record id %q: want 32 hex digits", j.ID)
	}
	h, err := hex.DecodeString(j.Hash)
	if err != nil || len(h) != 32 {
		return fmt.Errorf("token record hash: want 64 hex digits")
	}
	if j.Node == "" {
		return fmt.Errorf("token record %s: no node", j.ID)
	}
	*r = TokenRecord{Node: j.Node, Expires: j.Expires, Used: j.Used}
	copy(r.ID[:], id)
	copy(r.Hash[:], h)
	return nil
}

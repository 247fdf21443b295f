package group

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// Join token errors.
var (
	ErrBadJoinToken  = errors.New("malformed join token")
	ErrGroupMismatch = errors.New("group key does not match the join token's pinned fingerprint")
)

// JoinTokenPrefix starts every join token.
const JoinTokenPrefix = "mgj1_"

// Limits of a join token.
const (
	// MaxJoinAddrs is how many member addresses a token carries.
	MaxJoinAddrs = 7
	// MaxAddrLen bounds one HOST:PORT address.
	MaxAddrLen = 255
)

// JoinToken is a parsed join token: what `momgate-server join --token`
// holds. It names where the group's members listen for replication, pins
// the group's CA key (the joiner refuses a member whose TLS chain does not
// end there) and carries the one-time secret.
type JoinToken struct {
	ID      [16]byte
	Secret  [32]byte
	GroupFP [32]byte // SHA-256 of the group CA's Ed25519 public key
	Addrs   []string // replication addresses HOST:PORT of members at issue time
}

// IssueJoinToken makes a one-time token for member that expires after ttl,
// pins the group (caPub) and lists addrs (at least one) as the members to
// dial. It returns the token text for the administrator and the record the
// group keeps (no secret, only its hash).
func IssueJoinToken(rnd io.Reader, now time.Time, ttl time.Duration, member, memberAddr string, caPub []byte, addrs []string) (string, JoinRecord, error) {
	if err := checkMemberName(member); err != nil {
		return "", JoinRecord{}, fmt.Errorf("issue join token: %w", err)
	}
	if err := CheckAddr(memberAddr); err != nil {
		return "", JoinRecord{}, fmt.Errorf("issue join token: member address: %w", err)
	}
	if ttl <= 0 {
		return "", JoinRecord{}, fmt.Errorf("issue join token: lifetime %s must be positive", ttl)
	}
	t := JoinToken{GroupFP: sha256.Sum256(caPub), Addrs: append([]string(nil), addrs...)}
	if err := t.checkAddrs(); err != nil {
		return "", JoinRecord{}, fmt.Errorf("issue join token: %w", err)
	}
	if _, err := io.ReadFull(rnd, t.ID[:]); err != nil {
		return "", JoinRecord{}, fmt.Errorf("issue join token: %w", err)
	}
	if _, err := io.ReadFull(rnd, t.Secret[:]); err != nil {
		return "", JoinRecord{}, fmt.Errorf("issue join token: %w", err)
	}
	rec := JoinRecord{ID: t.ID, Hash: HashSecret(t.Secret), Member: member, Addr: memberAddr,
		Expires: now.Add(ttl).UTC().Truncate(time.Second)}
	return t.String(), rec, nil
}

// HashSecret is what the group stores, and what a redemption command
// carries, of a token secret: the secret itself never enters the
// replicated log.
func HashSecret(secret [32]byte) [32]byte { return sha256.Sum256(secret[:]) }

func (t JoinToken) checkAddrs() error {
	if len(t.Addrs) == 0 || len(t.Addrs) > MaxJoinAddrs {
		return fmt.Errorf("%d member addresses, want 1 to %d", len(t.Addrs), MaxJoinAddrs)
	}
	for _, a := range t.Addrs {
		if err := CheckAddr(a); err != nil {
			return err
		}
	}
	return nil
}

// CheckAddr validates a HOST:PORT replication address: a host of printable
// ASCII without spaces and a decimal port 1-65535.
func CheckAddr(a string) error {
	if len(a) == 0 || len(a) > MaxAddrLen {
		return fmt.Errorf("address of %d bytes, want 1 to %d", len(a), MaxAddrLen)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("address %q: want HOST:PORT: %w", a, err)
	}
	if host == "" {
		return fmt.Errorf("address %q: no host", a)
	}
	for _, c := range host {
		if c <= ' ' || c > '~' {
			return fmt.Errorf("address %q: host has a space or a non-ASCII character", a)
		}
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 || strconv.Itoa(p) != port {
		return fmt.Errorf("address %q: port %q: want a decimal number 1-65535", a, port)
	}
	return nil
}

// String encodes the token:
//
//	mgj1_ base64url( id(16) | secret(32) | group fp(32) | n(1) | n x ( len(1) | HOST:PORT ) )
func (t JoinToken) String() string {
	raw := make([]byte, 0, 81+len(t.Addrs)*24)
	raw = append(raw, t.ID[:]...)
	raw = append(raw, t.Secret[:]...)
	raw = append(raw, t.GroupFP[:]...)
	raw = append(raw, byte(len(t.Addrs)))
	for _, a := range t.Addrs {
		raw = append(raw, byte(len(a)))
		raw = append(raw, a...)
	}
	return JoinTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// maxJoinTokenLen bounds the text ParseJoinToken looks at.
const maxJoinTokenLen = len(JoinTokenPrefix) + (81+MaxJoinAddrs*(1+MaxAddrLen))*4/3 + 4

// ParseJoinToken strictly parses a token string (surrounding white space,
// as from a paste, is ignored). Every error wraps ErrBadJoinToken.
func ParseJoinToken(s string) (JoinToken, error) {
	var t JoinToken
	s = strings.TrimSpace(s)
	if len(s) > maxJoinTokenLen {
		return t, fmt.Errorf("%w: %d characters, at most %d", ErrBadJoinToken, len(s), maxJoinTokenLen)
	}
	body, ok := strings.CutPrefix(s, JoinTokenPrefix)
	if !ok {
		return t, fmt.Errorf("%w: does not start with %q", ErrBadJoinToken, JoinTokenPrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(body)
	if err != nil {
		return t, fmt.Errorf("%w: not URL-safe base64 without padding (truncated copy?)", ErrBadJoinToken)
	}
	if len(raw) < 81 {
		return t, fmt.Errorf("%w: %d bytes, want at least 81 (truncated copy?)", ErrBadJoinToken, len(raw))
	}
	copy(t.ID[:], raw[0:16])
	copy(t.Secret[:], raw[16:48])
	copy(t.GroupFP[:], raw[48:80])
	n, rest := int(raw[80]), raw[81:]
	for i := 0; i < n; i++ {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return JoinToken{}, fmt.Errorf("%w: address %d cut short (truncated copy?)", ErrBadJoinToken, i)
		}
		l := int(rest[0])
		t.Addrs = append(t.Addrs, string(rest[1:1+l]))
		rest = rest[1+l:]
	}
	if len(rest) != 0 {
		return JoinToken{}, fmt.Errorf("%w: %d bytes after the last address", ErrBadJoinToken, len(rest))
	}
	if err := t.checkAddrs(); err != nil {
		return JoinToken{}, fmt.Errorf("%w: %v", ErrBadJoinToken, err)
	}
	return t, nil
}

// CheckGroup verifies that caPub is the group CA key the token pins.
func (t JoinToken) CheckGroup(caPub []byte) error {
	fp := sha256.Sum256(caPub)
	if subtle.ConstantTimeCompare(fp[:], t.GroupFP[:]) != 1 {
		return ErrGroupMismatch
	}
	return nil
}

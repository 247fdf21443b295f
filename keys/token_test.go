package keys

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func issue(t *testing.T, rnd *countingRand, node string, ttl time.Duration, server *Identity) (Token, TokenRecord) {
	t.Helper()
	text, rec, err := IssueToken(rnd, t0, ttl, node, server.Public)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseToken(text)
	if err != nil {
		t.Fatalf("ParseToken(%q): %v", text, err)
	}
	return tok, rec
}

func TestIssueParseToken(t *testing.T) {
	server := testIdentity(t, 1)
	text, rec, err := IssueToken(&countingRand{}, t0.Add(300*time.Millisecond), time.Hour, "n1", server.Public)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, TokenPrefix) || len(text) != len(TokenPrefix)+107 {
		t.Fatalf("token %q", text)
	}
	tok, err := ParseToken("  " + text + "\n") // pasted with whitespace
	if err != nil {
		t.Fatal(err)
	}
	if tok.String() != text || tok.ID != rec.ID || sha256.Sum256(tok.Secret[:]) != rec.Hash || tok.ServerFP != Fingerprint(server.Public) {
		t.Fatalf("token %+v does not match record %+v", tok, rec)
	}
	if rec.Node != "n1" || rec.Used || !rec.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("record %+v", rec)
	}
	if err := tok.CheckServer(server.Public); err != nil {
		t.Fatalf("CheckServer of the pinned key: %v", err)
	}
	if err := tok.CheckServer(testIdentity(t, 2).Public); !errors.Is(err, ErrServerMismatch) {
		t.Fatalf("CheckServer of another key: %v", err)
	}
	if _, _, err := IssueToken(&failRand{n: 3}, t0, time.Hour, "n1", server.Public); !errors.Is(err, errRand) {
		t.Fatalf("issue with a failing source (id): %v", err)
	}
	if _, _, err := IssueToken(&failRand{n: 20}, t0, time.Hour, "n1", server.Public); !errors.Is(err, errRand) {
		t.Fatalf("issue with a failing source (secret): %v", err)
	}
}

func TestParseTokenRefuses(t *testing.T) {
	text, _, err := IssueToken(&countingRand{}, t0, time.Hour, "n1", testIdentity(t, 1).Public)
	if err != nil {
		t.Fatal(err)
	}
	body := strings.TrimPrefix(text, TokenPrefix)
	// The last character carries 2 bits of padding: setting them gives a
	// different string for the same bytes, which Strict refuses.
	last := strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", body[len(body)-1])
	nonCanonical := TokenPrefix + body[:len(body)-1] + string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"[last|1])
	for _, tc := range []struct{ name, s string }{
		{"empty", ""},
		{"no prefix", body},
		{"other prefix", "mgt2_" + body},
		{"upper-case prefix", "MGT1_" + body},
		{"truncated", text[:len(text)-1]},
		{"too long", text + "A"},
		{"standard base64 alphabet", TokenPrefix + strings.NewReplacer("-", "+", "_", "/").Replace(body[:len(body)-1]) + "+"},
		{"padded", TokenPrefix + body[:len(body)-1] + "="},
		{"space inside", TokenPrefix + body[:50] + " " + body[51:]},
		{"non-canonical padding bits", nonCanonical},
	} {
		if tc.s == text {
			t.Fatalf("%s: the case is the valid token", tc.name)
		}
		if _, err := ParseToken(tc.s); !errors.Is(err, ErrBadToken) {
			t.Errorf("%s: ParseToken(%q) = %v, want ErrBadToken", tc.name, tc.s, err)
		}
	}
}

func TestTokenBookRedeem(t *testing.T) {
	server, rnd := testIdentity(t, 1), &countingRand{}
	tok, rec := issue(t, rnd, "n1", time.Hour, server)
	b := NewTokenBook()
	if err := b.Add(rec); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(rec); err == nil {
		t.Fatal("duplicate id added")
	}
	var wrong [32]byte
	if _, err := b.Redeem(tok.ID, wrong, t0); !errors.Is(err, ErrTokenSecret) {
		t.Fatalf("wrong secret: %v", err)
	}
	if err := b.Check(tok.ID, wrong); !errors.Is(err, ErrTokenSecret) {
		t.Fatalf("Check of a wrong secret: %v", err)
	}
	if err := b.Check(tok.ID, tok.Secret); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if r, _ := b.Lookup(tok.ID); r.Used {
		t.Fatal("a failed redeem or a Check used the token")
	}
	got, err := b.Redeem(tok.ID, tok.Secret, t0.Add(time.Minute))
	if err != nil || !got.Used || got.Node != "n1" {
		t.Fatalf("redeem: %+v, %v", got, err)
	}
	if _, err := b.Redeem(tok.ID, tok.Secret, t0.Add(time.Minute)); !errors.Is(err, ErrTokenUsed) {
		t.Fatalf("second redeem: %v", err)
	}
	// Unredeem undoes a redeem whose effects were not persisted.
	b.Unredeem(tok.ID)
	b.Unredeem([16]byte{9}) // unknown: no-op
	if _, err := b.Redeem(tok.ID, tok.Secret, t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("redeem after Unredeem: %v", err)
	}
	var unknown [16]byte
	if _, err := b.Redeem(unknown, tok.Secret, t0); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("unknown id: %v", err)
	}
	if err := b.Check(unknown, tok.Secret); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("Check of an unknown id: %v", err)
	}
	if _, err := b.Lookup(unknown); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("Lookup of an unknown id: %v", err)
	}
}

func TestTokenBookExpiry(t *testing.T) {
	server, rnd := testIdentity(t, 1), &countingRand{}
	tok, rec := issue(t, rnd, "n1", time.Hour, server)
	b := NewTokenBook()
	if err := b.Add(rec); err != nil {
		t.Fatal(err)
	}
	// At the expiry instant and after: expired, and not used by trying.
	for _, now := range []time.Time{t0.Add(time.Hour), t0.Add(48 * time.Hour)} {
		if _, err := b.Redeem(tok.ID, tok.Secret, now); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("redeem at %v: %v", now, err)
		}
	}
	// A wrong secret on an expired token reports the expiry first.
	if _, err := b.Redeem(tok.ID, [32]byte{}, t0.Add(2*time.Hour)); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("wrong secret on an expired token: %v", err)
	}
	// One nanosecond before: fine.
	if _, err := b.Redeem(tok.ID, tok.Secret, t0.Add(time.Hour-1)); err != nil {
		t.Fatalf("redeem just before expiry: %v", err)
	}
}

func TestTokenBookPruneRevokeRecords(t *testing.T) {
	server, rnd := testIdentity(t, 1), &countingRand{}
	b := NewTokenBook()
	short, recShort := issue(t, rnd, "n2", time.Minute, server) // will expire unused
	_, recLong := issue(t, rnd, "n1", 24*time.Hour, server)
	usedTok, recUsed := issue(t, rnd, "n3", time.Minute, server)
	_, recN1b := issue(t, rnd, "n1", time.Minute, server)
	for _, r := range []TokenRecord{recShort, recLong, recUsed, recN1b} {
		if err := b.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Redeem(usedTok.ID, usedTok.Secret, t0); err != nil {
		t.Fatal(err)
	}
	if n := b.Prune(t0); n != 0 {
		t.Fatalf("Prune before any expiry dropped %d", n)
	}
	if n := b.Prune(t0.Add(time.Hour)); n != 3 {
		t.Fatalf("Prune dropped %d, want the 3 expired tokens, used or not", n)
	}
	if _, err := b.Lookup(short.ID); !errors.Is(err, ErrTokenUnknown) {
		t.Fatal("expired unused token kept")
	}
	if _, err := b.Lookup(usedTok.ID); !errors.Is(err, ErrTokenUnknown) {
		t.Fatal("expired used token kept")
	}
	recs := b.Records()
	if len(recs) != 1 || recs[0].Node != "n1" {
		t.Fatalf("Records = %+v", recs)
	}
	// Records are sorted by node, then id.
	b2 := NewTokenBook()
	ids := [][16]byte{{3}, {1}, {2}}
	for i, id := range ids {
		if err := b2.Add(TokenRecord{ID: id, Node: []string{"b", "a", "b"}[i]}); err != nil {
			t.Fatal(err)
		}
	}
	var order []string
	for _, r := range b2.Records() {
		order = append(order, fmt.Sprintf("%s%d", r.Node, r.ID[0]))
	}
	if got := strings.Join(order, ","); got != "a1,b2,b3" {
		t.Fatalf("Records order %s", got)
	}
	// Revoke drops every token of a node and returns them.
	if _, err := b.Redeem(usedTok.ID, usedTok.Secret, t0); !errors.Is(err, ErrTokenUnknown) {
		t.Fatalf("reuse of a pruned token: %v", err)
	}
	gone := b.Revoke("n1")
	if len(gone) != 1 || gone[0].ID != recLong.ID {
		t.Fatalf("Revoke(n1) = %+v", gone)
	}
	if _, err := b.Lookup(recLong.ID); !errors.Is(err, ErrTokenUnknown) {
		t.Fatal("revoked token kept")
	}
	if gone := b.Revoke("nobody"); len(gone) != 0 {
		t.Fatalf("Revoke(nobody) = %+v", gone)
	}
}

// TestTokenStoredOnlyAsHash: neither a record nor its JSON holds the
// secret in any common encoding.
func TestTokenStoredOnlyAsHash(t *testing.T) {
	server, rnd := testIdentity(t, 1), &countingRand{n: 100}
	b := NewTokenBook()
	var toks []Token
	for _, node := range []string{"n1", "n2"} {
		tok, rec := issue(t, rnd, node, time.Hour, server)
		toks = append(toks, tok)
		if err := b.Add(rec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Redeem(toks[0].ID, toks[0].Secret, t0); err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(b.Records())
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range toks {
		s := tok.Secret[:]
		forms := map[string][]byte{
			"raw":                   s,
			"hex":                   []byte(hex.EncodeToString(s)),
			"HEX":                   []byte(strings.ToUpper(hex.EncodeToString(s))),
			"base64":                []byte(base64.StdEncoding.EncodeToString(s)),
			"base64 raw":            []byte(base64.RawStdEncoding.EncodeToString(s)),
			"base64url":             []byte(base64.URLEncoding.EncodeToString(s)),
			"base64url raw":         []byte(base64.RawURLEncoding.EncodeToString(s)),
			"token text":            []byte(tok.String()),
			"hex of the first half": []byte(hex.EncodeToString(s[:16])),
			"JSON number array":     []byte(strings.Join(strings.Fields(fmt.Sprint(s)), ",")),
		}
		for name, f := range forms {
			if bytes.Contains(data, f) {
				t.Errorf("records JSON contains the secret (%s)", name)
			}
		}
		if want := hex.EncodeToString(func() []byte { h := sha256.Sum256(s); return h[:] }()); !bytes.Contains(data, []byte(want)) {
			t.Errorf("records JSON lacks the secret's hash")
		}
	}
	// Nor does a record printed with %+v (a log line), in decimal or hex.
	for _, r := range b.Records() {
		printed := fmt.Sprintf("%+v %x", r, r.ID)
		for _, tok := range toks {
			if strings.Contains(printed, strings.Trim(fmt.Sprint(tok.Secret[:]), "[]")) || strings.Contains(printed, hex.EncodeToString(tok.Secret[:])) {
				t.Errorf("record %s prints a secret", printed)
			}
		}
	}
}

func TestTokenRecordJSON(t *testing.T) {
	server := testIdentity(t, 1)
	_, rec := issue(t, &countingRand{}, "n1", time.Hour, server)
	rec.Used = true
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var got TokenRecord
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if got.ID != rec.ID || got.Hash != rec.Hash || got.Node != rec.Node || !got.Expires.Equal(rec.Expires) || !got.Used {
		t.Fatalf("round trip %+v, want %+v", got, rec)
	}
	id, hash := hex.EncodeToString(rec.ID[:]), hex.EncodeToString(rec.Hash[:])
	for _, text := range []string{
		`{"id":"` + id + `","hash":"` + hash + `","node":"","expires":"2026-03-01T12:00:00Z","used":false}`,
		`{"id":"` + id[:30] + `","hash":"` + hash + `","node":"n1","expires":"2026-03-01T12:00:00Z","used":false}`,
		`{"id":"` + id + `","hash":"` + hash[:62] + `","node":"n1","expires":"2026-03-01T12:00:00Z","used":false}`,
		`{"id":"zz` + id[2:] + `","hash":"` + hash + `","node":"n1","expires":"2026-03-01T12:00:00Z","used":false}`,
		`{"id":"` + id + `","hash":"` + hash + `","node":"n1","expires":"2026-03-01T12:00:00Z","used":false,"secret":"x"}`,
		`{"id":"` + id + `","hash":"` + hash + `","node":"n1","expires":"never","used":false}`,
	} {
		var r TokenRecord
		if err := json.Unmarshal([]byte(text), &r); err == nil {
			t.Errorf("accepted %s", text)
		}
	}
}

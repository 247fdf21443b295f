package group

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func issueJoin(t *testing.T, ca *CA, addrs ...string) (JoinToken, JoinRecord) {
	t.Helper()
	text, rec, err := IssueJoinToken(&countingRand{n: 50}, t0, time.Hour, "s2", "127.0.0.2:15005", ca.Public(), addrs)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseJoinToken(text)
	if err != nil {
		t.Fatalf("parse the token just issued: %v", err)
	}
	return tok, rec
}

func TestJoinTokenRoundTrip(t *testing.T) {
	ca := testCA(t, 1)
	tok, rec := issueJoin(t, ca, "127.0.0.1:15005", "[::1]:15005", "server-3.example:15005")
	if tok.ID != rec.ID || HashSecret(tok.Secret) != rec.Hash {
		t.Fatal("token and record disagree on id or secret")
	}
	if rec.Member != "s2" || rec.Addr != "127.0.0.2:15005" || rec.Used || !rec.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("record = %+v", rec)
	}
	if got := strings.Join(tok.Addrs, ","); got != "127.0.0.1:15005,[::1]:15005,server-3.example:15005" {
		t.Fatalf("addresses = %s", got)
	}
	if err := tok.CheckGroup(ca.Public()); err != nil {
		t.Fatalf("CheckGroup of the issuing CA: %v", err)
	}
	if err := tok.CheckGroup(testCA(t, 99).Public()); !errors.Is(err, ErrGroupMismatch) {
		t.Fatalf("CheckGroup of another CA = %v, want ErrGroupMismatch", err)
	}
	if again, err := ParseJoinToken(" \t" + tok.String() + "\r\n"); err != nil || again.String() != tok.String() {
		t.Fatalf("pasted with white space: %v", err)
	}
}

func TestIssueJoinTokenRefusesBadInput(t *testing.T) {
	ca := testCA(t, 1)
	for _, tc := range []struct {
		name, member, addr string
		ttl                time.Duration
		addrs              []string
	}{
		{"bad member name", "-s2", "h:1", time.Hour, []string{"h:1"}},
		{"bad member address", "s2", "h", time.Hour, []string{"h:1"}},
		{"no addresses", "s2", "h:1", time.Hour, nil},
		{"too many addresses", "s2", "h:1", time.Hour, strings.Split("a:1,b:1,c:1,d:1,e:1,f:1,g:1,h:1", ",")},
		{"port 0", "s2", "h:1", time.Hour, []string{"h:0"}},
		{"port with sign", "s2", "h:1", time.Hour, []string{"h:+5"}},
		{"space in host", "s2", "h:1", time.Hour, []string{"a b:1"}},
		{"no lifetime", "s2", "h:1", 0, []string{"h:1"}},
	} {
		if _, _, err := IssueJoinToken(&countingRand{}, t0, tc.ttl, tc.member, tc.addr, ca.Public(), tc.addrs); err == nil {
			t.Errorf("%s: issued", tc.name)
		}
	}
}

func TestParseJoinTokenRefusesMalformed(t *testing.T) {
	tok, _ := issueJoin(t, testCA(t, 1), "127.0.0.1:15005")
	text := tok.String()
	body := strings.TrimPrefix(text, JoinTokenPrefix)
	long := JoinToken{Addrs: []string{strings.Repeat("h", 250) + ":1"}}
	for _, tc := range []struct{ name, s string }{
		{"empty", ""},
		{"enrollment token prefix", "mgt1_" + body},
		{"truncated", text[:len(text)-4]},
		{"padded", text + "="},
		{"standard alphabet", JoinTokenPrefix + strings.NewReplacer("-", "+", "_", "/").Replace(body)},
		{"trailing byte", (JoinToken{ID: tok.ID, Addrs: tok.Addrs}).String() + "AA"},
		{"no addresses", (JoinToken{ID: tok.ID}).String()},
		{"bad address", (JoinToken{Addrs: []string{"nocolon"}}).String()},
		{"too long", JoinTokenPrefix + strings.Repeat("A", maxJoinTokenLen)},
	} {
		if _, err := ParseJoinToken(tc.s); !errors.Is(err, ErrBadJoinToken) {
			t.Errorf("%s: %v, want ErrBadJoinToken", tc.name, err)
		}
	}
	if _, err := ParseJoinToken(long.String()); err != nil {
		t.Errorf("a 252-byte address: %v", err)
	}
}

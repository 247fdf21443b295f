package group

import (
	"encoding/json"
	"errors"
	"testing"
	"time"
)

func TestJoinBookRedeemsOnce(t *testing.T) {
	tok, rec := issueJoin(t, testCA(t, 1), "127.0.0.1:15005")
	b := NewJoinBook()
	if err := b.Add(rec); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(rec); err == nil {
		t.Fatal("a duplicate id was added")
	}
	good := HashSecret(tok.Secret)
	var wrong [32]byte
	if _, err := b.Redeem(tok.ID, wrong, t0); !errors.Is(err, ErrJoinSecret) {
		t.Fatalf("wrong secret: %v", err)
	}
	if _, err := b.Redeem([16]byte{1}, good, t0); !errors.Is(err, ErrJoinUnknown) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := b.Redeem(tok.ID, good, rec.Expires); !errors.Is(err, ErrJoinExpired) {
		t.Fatalf("at expiry: %v", err)
	}
	if r, _ := b.Lookup(tok.ID); r.Used {
		t.Fatal("a refused redeem used the token")
	}
	got, err := b.Redeem(tok.ID, good, t0.Add(time.Minute))
	if err != nil || !got.Used || got.Member != "s2" {
		t.Fatalf("redeem: %+v, %v", got, err)
	}
	if _, err := b.Redeem(tok.ID, good, t0.Add(time.Minute)); !errors.Is(err, ErrJoinUsed) {
		t.Fatalf("second redeem: %v", err)
	}
}

func TestJoinBookPruneAndRevoke(t *testing.T) {
	b := NewJoinBook()
	for i, m := range []string{"s2", "s3", "s3"} {
		r := JoinRecord{ID: [16]byte{byte(i + 1)}, Member: m, Addr: "h:1", Expires: t0.Add(time.Duration(i+1) * time.Hour)}
		if err := b.Add(r); err != nil {
			t.Fatal(err)
		}
	}
	if n := b.RevokeMember("s2"); n != 1 || b.Len() != 2 {
		t.Fatalf("RevokeMember dropped %d, %d left", n, b.Len())
	}
	if n := b.Prune(t0.Add(2 * time.Hour)); n != 1 || b.Len() != 1 {
		t.Fatalf("Prune dropped %d, %d left", n, b.Len())
	}
	if recs := b.Records(); len(recs) != 1 || recs[0].ID != ([16]byte{3}) {
		t.Fatalf("Records = %+v", recs)
	}
}

func TestJoinRecordJSON(t *testing.T) {
	_, rec := issueJoin(t, testCA(t, 1), "127.0.0.1:15005")
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var back JoinRecord
	if err := json.Unmarshal(data, &back); err != nil || back != rec {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	for _, bad := range []string{
		`{"id":"00","hash":"00","member":"s2","addr":"h:1","expires":"2026-01-01T00:00:00Z","used":false}`,
		`{"id":"0102030405060708090a0b0c0d0e0f10","hash":"` + hex64('A') + `","member":"s2","addr":"h:1","expires":"2026-01-01T00:00:00Z","used":false}`,
		`{"id":"0102030405060708090a0b0c0d0e0f10","hash":"` + hex64('a') + `","member":"","addr":"h:1","expires":"2026-01-01T00:00:00Z","used":false}`,
		`{"id":"0102030405060708090a0b0c0d0e0f10","hash":"` + hex64('a') + `","member":"s2","addr":"h","expires":"2026-01-01T00:00:00Z","used":false}`,
		`{"id":"0102030405060708090a0b0c0d0e0f10","hash":"` + hex64('a') + `","member":"s2","addr":"h:1","expires":"2026-01-01T00:00:00Z","used":false,"secret":"x"}`,
	} {
		if err := json.Unmarshal([]byte(bad), &back); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func hex64(c byte) string {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return string(b)
}

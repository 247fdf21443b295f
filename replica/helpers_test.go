package replica

import (
	"net/netip"
	"testing"
	"time"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/rotation"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testRing(t testing.TB) *keys.Keyring {
	t.Helper()
	r := keys.NewKeyring()
	for i, st := range []keys.State{keys.StateActive, keys.StateNext} {
		k := &keys.Key{ID: keys.KeyID(0x0a1b2c3d + i), State: st, Created: t0}
		for j := range k.Secret {
			k.Secret[j] = byte(0x40 + i + j)
		}
		var err error
		if r, err = r.WithKey(k); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// samples is one valid entry of every op.
func samples(t testing.TB) []Entry {
	t.Helper()
	tok := keys.TokenRecord{ID: [16]byte{1, 2, 3}, Hash: [32]byte{9}, Node: "n1", Expires: t0.Add(time.Hour)}
	join := group.JoinRecord{ID: [16]byte{4}, Hash: [32]byte{5}, Member: "s2", Addr: "127.0.0.2:15005", Expires: t0.Add(time.Hour)}
	node := UUID{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	addr := netip.MustParseAddr("10.0.0.11")
	deny := []DenyEntry{{Node: node, Addr: addr, Keys: []uint32{0x0a1b2c3d}}, {Addr: netip.MustParseAddr("fd00::5")}}
	rec := rotation.Record{Phase: rotation.Distributing, Seq: 4, Reason: "delete node n1", Old: 0x0a1b2c3d, New: 0x0a1b2c3e,
		Started: t0, Behind: nil}
	cmds := []Command{
		&CreateNode{Name: "n1", ID: node, Mom: addr, Port: 15003, Token: tok},
		&EnrollNode{Name: "n1", TokenID: ID16(tok.ID), SecretHash: Hash32(tok.Hash), Pub: Key32{7, 7, 7}},
		&DeleteNode{Name: "n1", Deny: deny},
		&SetNodeAddr{Name: "n2", Mom: netip.MustParseAddr("10.0.0.21"), Deny: deny[1:]},
		&SetUpgraded{Name: "n2", Upgraded: true},
		&SetServer{Attrs: map[string]string{"mode": "ping", "key_grace": "30s"}},
		&PruneTokens{Before: t0.Add(-time.Hour)},
		&RotationStep{Step: rotation.StepDistributing, Record: &rec},
		&RotationStep{Step: rotation.StepNextSaved, Ring: testRing(t)},
		&LiftDeny{Entries: deny[1:]},
		&CreateMember{Name: "s2", Addr: "127.0.0.2:15005", Token: join},
		&JoinMember{Name: "s2", TokenID: ID16(join.ID), SecretHash: Hash32(join.Hash)},
		&DeleteMember{Name: "s2"},
		&StateRecords{Why: "create node n1", Records: []StateRecord{
			{Kind: RecordNode, Key: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", Value: []byte(`{"name":"n1"}`)},
			{Kind: RecordToken, Key: "01020300000000000000000000000000", Deleted: true}}},
	}
	out := make([]Entry, len(cmds))
	for i, c := range cmds {
		out[i] = Entry{At: t0.Add(time.Duration(i) * time.Second), Cmd: c}
	}
	return out
}

func mustEncode(t testing.TB, e Entry) []byte {
	t.Helper()
	b, err := Encode(e)
	if err != nil {
		t.Fatalf("encode %s: %v", e.Cmd.Op(), err)
	}
	return b
}

package replicatest

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/replica"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func apply(t *testing.T, r *Registry, i uint64, at time.Time, c replica.Command) replica.Result {
	t.Helper()
	res, err := ApplyEncoded(r, i, at, c)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func createNode(name string, secret byte) (*replica.CreateNode, *replica.EnrollNode) {
	var s [32]byte
	s[0] = secret
	tok := keys.TokenRecord{ID: [16]byte{secret}, Hash: group.HashSecret(s), Node: name, Expires: t0.Add(time.Hour)}
	c := &replica.CreateNode{Name: name, ID: replica.UUID{secret, 1}, Mom: netip.MustParseAddr("10.0.0.1"), Port: 15003, Token: tok}
	e := &replica.EnrollNode{Name: name, TokenID: replica.ID16(tok.ID), SecretHash: replica.Hash32(tok.Hash), Pub: replica.Key32{secret}}
	return c, e
}

func TestEnrollmentRedeemsOnce(t *testing.T) {
	r := New()
	c, e := createNode("n1", 1)
	if res := apply(t, r, 1, t0, c); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := apply(t, r, 2, t0, c); !errors.Is(res.Err, ErrExists) {
		t.Fatalf("second create: %v", res.Err)
	}
	wrong := *e
	wrong.SecretHash[0] ^= 1
	if res := apply(t, r, 3, t0, &wrong); !errors.Is(res.Err, keys.ErrTokenSecret) {
		t.Fatalf("wrong secret: %v", res.Err)
	}
	if res := apply(t, r, 4, t0.Add(2*time.Hour), e); !errors.Is(res.Err, keys.ErrTokenExpired) {
		t.Fatalf("expired (by the entry's time): %v", res.Err)
	}
	if res := apply(t, r, 5, t0.Add(time.Minute), e); res.Err != nil {
		t.Fatalf("enroll: %v", res.Err)
	}
	if res := apply(t, r, 6, t0.Add(time.Minute), e); !errors.Is(res.Err, keys.ErrTokenUsed) {
		t.Fatalf("second enroll: %v", res.Err)
	}
	if n, _ := r.Node("n1"); n.Pub == nil || n.Pub[0] != 1 {
		t.Fatalf("node after enrollment: %+v", n)
	}
	if r.Applied() != 6 {
		t.Fatalf("Applied = %d", r.Applied())
	}
}

func TestSnapshotRestore(t *testing.T) {
	r := New()
	for i, name := range []string{"n2", "n1", "n3"} {
		c, e := createNode(name, byte(i+1))
		apply(t, r, uint64(2*i+1), t0, c)
		apply(t, r, uint64(2*i+2), t0, e)
	}
	ring := keys.NewKeyring()
	ring, _ = ring.WithKey(&keys.Key{ID: 7, State: keys.StateActive, Created: t0})
	apply(t, r, 7, t0, &replica.RotationStep{Step: "activated", Ring: ring})
	apply(t, r, 8, t0, &replica.DeleteNode{Name: "n3"})
	snap, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	snap.Release()
	back := New()
	if err := back.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := back.Names(); len(got) != 2 || got[0] != "n1" || got[1] != "n2" {
		t.Fatalf("restored names %v", got)
	}
	if !bytes.Equal(back.Ring(), r.Ring()) {
		t.Fatal("keyring not restored")
	}
	// The restored state refuses a second redemption too.
	_, e := createNode("n1", 2)
	if res := apply(t, back, 9, t0, e); !errors.Is(res.Err, keys.ErrTokenUsed) {
		t.Fatalf("redeem after restore: %v", res.Err)
	}
	// Snapshots are deterministic: the same state writes the same bytes.
	again, _ := back.Snapshot()
	var buf2 bytes.Buffer
	again.WriteTo(&buf2)
	if !bytes.Equal(buf.Bytes(), buf2.Bytes()) {
		t.Fatal("the restored state snapshots to other bytes")
	}
	// A damaged snapshot is refused and changes nothing.
	bad := bytes.Clone(buf.Bytes())
	bad[len(bad)-2] ^= 1
	if err := back.Restore(bytes.NewReader(bad)); !errors.Is(err, replica.ErrBadSnapshot) {
		t.Fatalf("damaged snapshot: %v", err)
	}
	if len(back.Names()) != 2 {
		t.Fatal("a refused restore changed the state")
	}
}

func TestJoinRedeemsOnce(t *testing.T) {
	r := New()
	var secret [32]byte
	secret[3] = 3
	rec := group.JoinRecord{ID: [16]byte{8}, Hash: group.HashSecret(secret), Member: "s2", Addr: "127.0.0.2:15005", Expires: t0.Add(time.Hour)}
	apply(t, r, 1, t0, &replica.CreateMember{Name: "s2", Addr: rec.Addr, Token: rec})
	join := &replica.JoinMember{Name: "s2", TokenID: replica.ID16(rec.ID), SecretHash: replica.Hash32(rec.Hash)}
	if res := apply(t, r, 2, t0, join); res.Err != nil || res.Value != "s2" {
		t.Fatalf("join: %+v", res)
	}
	if res := apply(t, r, 3, t0, join); !errors.Is(res.Err, group.ErrJoinUsed) {
		t.Fatalf("second join: %v", res.Err)
	}
	if res := apply(t, r, 4, t0, &replica.SetServer{Attrs: map[string]string{"mode": "ping"}}); !errors.Is(res.Err, ErrUnsupported) {
		t.Fatalf("unsupported op: %v", res.Err)
	}
}

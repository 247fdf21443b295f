package server

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/tools/fuzzcorpus"
)

// groupRecords is a small server state as state records: the meta
// record, n nodes with their tokens, a keyring and one member.
func groupRecords(t testing.TB, n int) []replica.StateRecord {
	t.Helper()
	p := persisted{Format: 1, ID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", Attrs: DefaultAttrs()}
	meta, _ := metaOf(p)
	recs := []replica.StateRecord{{Kind: replica.RecordMeta, Key: "server", Value: meta}}
	base := time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)
	for i := range n {
		id := uuid.NewSHA1(uuid.NameSpaceDNS, []byte{byte(i)}).String()
		rec := nodeRecord{Name: "n" + string(rune('a'+i)), ID: id, Mom: "127.0.3." + string(rune('1'+i)), Port: 15003, Created: base}
		raw, _ := json.Marshal(rec)
		recs = append(recs, replica.StateRecord{Kind: replica.RecordNode, Key: id, Value: raw})
		tr := keys.TokenRecord{Node: rec.Name, Expires: base.Add(time.Hour)}
		tr.ID[0] = byte(i + 1)
		traw, _ := json.Marshal(tr)
		recs = append(recs, replica.StateRecord{Kind: replica.RecordToken, Key: hex.EncodeToString(tr.ID[:]), Value: traw})
	}
	k := &keys.Key{ID: 0x0a1b2c3d, State: keys.StateActive, Created: base}
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keys.EncodeKeyring(ring)
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, replica.StateRecord{Kind: replica.RecordFile, Key: keyringFile, Value: kr})
	m, _ := json.Marshal(memberRecord{Name: "s1", Raft: "127.0.0.1:15005", Control: "127.0.0.1:15001"})
	return append(recs, replica.StateRecord{Kind: replica.RecordMember, Key: "s1", Value: m})
}

func applyRecords(t testing.TB, g *groupState, index uint64, recs ...replica.StateRecord) replica.Result {
	t.Helper()
	return g.Apply(index, replica.Entry{At: time.Unix(1, 0), Cmd: &replica.StateRecords{Why: "test", Records: recs}})
}

func snapshotBytes(t testing.TB, g *groupState) []byte {
	t.Helper()
	snap, err := g.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The replica's snapshot restores to a replica whose snapshot is the same
// bytes, and holds what was applied: a node deleted is gone.
func TestGroupStateSnapshotRoundTrip(t *testing.T) {
	g := newGroupState()
	recs := groupRecords(t, 3)
	if res := applyRecords(t, g, 1, recs...); res.Err != nil {
		t.Fatal(res.Err)
	}
	if res := applyRecords(t, g, 2, replica.StateRecord{Kind: replica.RecordNode, Key: recs[1].Key, Deleted: true}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if g.Nodes() != 2 || g.serverID() != "6ba7b810-9dad-11d1-80b4-00c04fd430c8" {
		t.Fatalf("replica: %d nodes, server %q", g.Nodes(), g.serverID())
	}
	b := snapshotBytes(t, g)
	h := newGroupState()
	if err := h.Restore(bytes.NewReader(b)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(snapshotBytes(t, h), b) {
		t.Fatal("restored replica snapshots differently")
	}
	if ms := h.Members(); len(ms) != 1 || ms[0].Control != "127.0.0.1:15001" {
		t.Fatalf("members after restore: %+v", ms)
	}
}

// A member removed with delete server leaves the member list but stays on
// record, through a snapshot too, so that its certificate is refused at the
// replication port; create server with its name makes a new member whose
// certificate is taken again.
func TestRemovedMemberRefusedAtReplication(t *testing.T) {
	g := newGroupState()
	if res := applyRecords(t, g, 1, groupRecords(t, 1)...); res.Err != nil {
		t.Fatal(res.Err)
	}
	s2, _ := json.Marshal(memberRecord{Name: "s2", Raft: "127.0.0.2:15005", Removed: true})
	if res := applyRecords(t, g, 2, replica.StateRecord{Kind: replica.RecordMember, Key: "s2", Value: s2}); res.Err != nil {
		t.Fatal(res.Err)
	}
	h := newGroupState()
	if err := h.Restore(bytes.NewReader(snapshotBytes(t, g))); err != nil {
		t.Fatal(err)
	}
	r := &groupRunner{state: h} // not open: no raft configuration to ask
	if ms := h.Members(); len(ms) != 1 || ms[0].Name != "s1" {
		t.Fatalf("members: %+v, want s1 only", ms)
	}
	if _, ok := h.member("s2"); ok {
		t.Fatal("a removed member still has a record")
	}
	if err := r.allowPeer("s2"); !errors.Is(err, ErrNotAMember) {
		t.Fatalf("allowPeer(removed s2) = %v, want ErrNotAMember", err)
	}
	// Current members, and names this member has not heard of yet (the
	// members that joined while it lagged), are the CA's to decide.
	for _, name := range []string{"s1", "s3"} {
		if err := r.allowPeer(name); err != nil {
			t.Fatalf("allowPeer(%s) = %v", name, err)
		}
	}
	again, _ := json.Marshal(memberRecord{Name: "s2", Raft: "127.0.0.7:15005"})
	if res := applyRecords(t, h, 3, replica.StateRecord{Kind: replica.RecordMember, Key: "s2", Value: again}); res.Err != nil {
		t.Fatal(res.Err)
	}
	if err := r.allowPeer("s2"); err != nil {
		t.Fatalf("allowPeer(s2 created again) = %v", err)
	}
}

// A command with one record that does not decode changes nothing, alike
// on every member; a damaged snapshot changes nothing.
func TestGroupStateRefusesBadInput(t *testing.T) {
	g := newGroupState()
	recs := groupRecords(t, 2)
	applyRecords(t, g, 1, recs...)
	before := snapshotBytes(t, g)
	cases := [][]replica.StateRecord{
		{recs[1], {Kind: replica.RecordToken, Key: "00", Value: []byte(`{"bogus":1}`)}},
		{{Kind: replica.RecordNode, Key: "not-the-id", Value: recs[1].Value}},
		{{Kind: replica.RecordFile, Key: "identity.json", Value: []byte(`{}`)}},
		{{Kind: replica.RecordFile, Key: keyringFile, Deleted: true}},
		{{Kind: replica.RecordMeta, Key: "server", Value: []byte(`{"format":2}`)}},
	}
	for i, c := range cases {
		if res := applyRecords(t, g, uint64(2+i), c...); !errors.Is(res.Err, errBadRecord) {
			t.Errorf("case %d: %v, want errBadRecord", i, res.Err)
		}
	}
	if !bytes.Equal(snapshotBytes(t, g), before) {
		t.Fatal("a refused command changed the replica")
	}
	if err := g.Restore(bytes.NewReader(before[:len(before)-3])); err == nil {
		t.Fatal("a truncated snapshot restored")
	}
	if !bytes.Equal(snapshotBytes(t, g), before) {
		t.Fatal("a refused snapshot changed the replica")
	}
}

func groupRestoreSeeds(t testing.TB) []fuzzcorpus.Seed {
	g := newGroupState()
	applyRecords(t, g, 1, groupRecords(t, 2)...)
	b := snapshotBytes(t, g)
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("two_nodes", b),
		fuzzcorpus.Bytes("truncated", b[:len(b)/2]),
		fuzzcorpus.Bytes("empty", nil),
	}
}

// FuzzGroupRestore: no snapshot panics Restore; an accepted one snapshots
// again to bytes that restore to the same.
func FuzzGroupRestore(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		g := newGroupState()
		if err := g.Restore(bytes.NewReader(b)); err != nil {
			return
		}
		again := snapshotBytes(t, g)
		h := newGroupState()
		if err := h.Restore(bytes.NewReader(again)); err != nil {
			t.Fatalf("a replica's own snapshot does not restore: %v", err)
		}
		if !bytes.Equal(snapshotBytes(t, h), again) {
			t.Fatal("snapshot is not a fixed point")
		}
	})
}

func joinSeeds() []fuzzcorpus.Seed {
	grant, _ := json.Marshal(joinGrant{Identity: []byte("x"), Files: map[string][]byte{stateFile: []byte("{}")}, Member: "s2", Raft: "127.0.0.2:15005"})
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("grant", append(grant, '\n')),
		fuzzcorpus.Bytes("refusal", []byte(`{"error":"not_leader"}`+"\n")),
		fuzzcorpus.Bytes("unknown_field", []byte(`{"bogus":true}`+"\n")),
		fuzzcorpus.Bytes("no_newline", grant),
	}
}

// FuzzJoinGrant: no bytes from a member panic the joiner's reader; what it
// accepts re-encodes to what it decodes.
func FuzzJoinGrant(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		var g joinGrant
		if err := readJoin(bufio.NewReader(bytes.NewReader(b)), &g); err != nil {
			return
		}
		again, err := json.Marshal(g)
		if err != nil {
			t.Fatal(err)
		}
		var h joinGrant
		if err := readJoin(bufio.NewReader(strings.NewReader(string(again)+"\n")), &h); err != nil {
			t.Fatalf("re-encoded grant does not decode: %v", err)
		}
	})
}

// TestGroupSeedCorpus checks the checked-in seeds of the fuzz targets
// above; MOMGATE_UPDATE_CORPUS=1 rewrites them.
func TestGroupSeedCorpus(t *testing.T) {
	fuzzcorpus.Check(t, "FuzzGroupRestore", groupRestoreSeeds(t))
	fuzzcorpus.Check(t, "FuzzJoinGrant", joinSeeds())
}

// The replica's state.json is the bytes a single server writes for the
// same state (store.EncodeJSON of persisted, nodes by name; tokens by
// id), although its records go in undecoded: every field of a node and a
// token, records applied in an order that is neither.
func TestStateJSONAsSingleServerWrites(t *testing.T) {
	base := time.Date(2026, 12, 3, 1, 2, 3, 456, time.UTC)
	enrolled := base.Add(time.Minute)
	p := persisted{Format: 1, Manifest: true, ID: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", Attrs: DefaultAttrs()}
	p.Attrs.KeyGrace = Duration(90 * time.Second)
	for i, name := range []string{"zeta", "alpha", "mu", "beta10", "beta2"} {
		n := nodeRecord{Name: name, ID: uuid.NewSHA1(uuid.NameSpaceDNS, []byte(name)).String(),
			Mom: "127.0.3." + string(rune('1'+i)), Port: DefaultMomPort + i, Created: base}
		switch i {
		case 1:
			n.Host, n.Pub, n.Enrolled, n.Upgraded, n.Sealed = "alpha.example", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", &enrolled, true, true
		case 3:
			n.Upgraded = true
		}
		p.Nodes = append(p.Nodes, n)
		tr := keys.TokenRecord{Node: name, Expires: base.Add(time.Hour)}
		tr.ID[0], tr.ID[15] = byte(0xf0-i*0x30), byte(i)
		p.Tokens = append(p.Tokens, tr)
	}
	meta, err := metaOf(p)
	if err != nil {
		t.Fatal(err)
	}
	recs := []replica.StateRecord{{Kind: replica.RecordMeta, Key: "server", Value: meta}}
	for _, n := range p.Nodes {
		raw, _ := json.Marshal(n)
		recs = append(recs, replica.StateRecord{Kind: replica.RecordNode, Key: n.ID, Value: raw})
	}
	for _, tr := range p.Tokens {
		raw, _ := json.Marshal(tr)
		recs = append(recs, replica.StateRecord{Kind: replica.RecordToken, Key: hex.EncodeToString(tr.ID[:]), Value: raw})
	}
	g := newGroupState()
	if res := applyRecords(t, g, 1, recs...); res.Err != nil {
		t.Fatal(res.Err)
	}
	snap, _ := g.Snapshot()
	got, err := snap.(*groupSnapshot).stateJSON()
	if err != nil {
		t.Fatal(err)
	}
	reg, err := newRegistry(p)
	if err != nil {
		t.Fatal(err)
	}
	single := reg.snapshot() // its tokens as the book holds them; a replica's by id
	sort.Slice(single.Tokens, func(i, j int) bool { return bytes.Compare(single.Tokens[i].ID[:], single.Tokens[j].ID[:]) < 0 })
	want, err := store.EncodeJSON(single)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("replica's state.json:\n%s\nsingle server's:\n%s", got, want)
	}
}

// stateDoc has persisted's members, in its order, with the same JSON
// names; only the nodes and tokens are records as committed.
func TestStateDocMirrorsPersisted(t *testing.T) {
	pt, dt := reflect.TypeOf(persisted{}), reflect.TypeOf(stateDoc{})
	if pt.NumField() != dt.NumField() {
		t.Fatalf("persisted has %d fields, stateDoc %d", pt.NumField(), dt.NumField())
	}
	raw := reflect.TypeOf([]json.RawMessage{})
	for i := range pt.NumField() {
		pf, df := pt.Field(i), dt.Field(i)
		if pf.Name != df.Name || pf.Tag != df.Tag {
			t.Errorf("field %d: persisted %s %q, stateDoc %s %q", i, pf.Name, pf.Tag, df.Name, df.Tag)
		}
		if df.Type != pf.Type && !(df.Type == raw && (pf.Name == "Nodes" || pf.Name == "Tokens")) {
			t.Errorf("field %s: persisted %s, stateDoc %s", pf.Name, pf.Type, df.Type)
		}
	}
}

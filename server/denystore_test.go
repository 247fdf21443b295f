package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/statecheck"
)

// FuzzDecodeDenyRecord: a deny.journal line's record (or a group's deny
// record) is decoded strictly or refused with errBadDenyRecord, never a
// panic; one that decodes is encoded back to a record that decodes to the
// same change.
func FuzzDecodeDenyRecord(f *testing.F) {
	f.Add(kindDeny, "node:a0000000-0000-0000-0000-000000000001", []byte(`{"keys":["01020304"]}`), false)
	f.Add(kindDeny, "addr:127.0.0.4", []byte(`{}`), false)
	f.Add(kindDeny, "addr:::1", []byte(nil), true)
	f.Add(kindDeny, "addr:::ffff:127.0.0.4", []byte(`{}`), false)
	f.Add(kindDeleted, "a0000000-0000-0000-0000-000000000001", []byte(`{"name":"cn03","at":"2026-12-01T10:00:00Z"}`), false)
	f.Add(kindDeleted, "a0000000-0000-0000-0000-000000000001", []byte(nil), true)
	f.Add(kindDeleted, "A0000000-0000-0000-0000-000000000001", []byte(`{"name":"cn03","at":"2026-12-01T10:00:00Z"}`), false)
	f.Add("node", "x", []byte(`{}`), false)
	f.Fuzz(func(t *testing.T, kind, key string, value []byte, deleted bool) {
		c, err := decodeDenyRecord(kind, key, value, deleted)
		if err != nil {
			if !strings.Contains(err.Error(), errBadDenyRecord.Error()) {
				t.Fatalf("error does not name errBadDenyRecord: %v", err)
			}
			return
		}
		var r store.JournalRecord
		switch {
		case c.removed && c.deny:
			r = store.JournalRecord{Kind: kindDeny, Key: denyKey(c.entry), Deleted: true}
		case c.removed:
			r = store.JournalRecord{Kind: kindDeleted, Key: key, Deleted: true}
		case c.deny:
			r, err = denyRecordOf(c.entry, c.ids)
		default:
			r, err = deletedRecordOf(c.node, c.del)
		}
		if err != nil {
			t.Fatal(err)
		}
		if r.Key != key {
			t.Fatalf("key %q encodes back as %q", key, r.Key)
		}
		again, err := decodeDenyRecord(r.Kind, r.Key, r.Value, r.Deleted)
		if err != nil {
			t.Fatalf("re-encoded record %+v: %v", r, err)
		}
		if again.entry != c.entry || again.node != c.node || !slices.Equal(again.ids, c.ids) ||
			again.del.Name != c.del.Name || !again.del.At.Equal(c.del.At) || again.removed != c.removed {
			t.Fatalf("record %+v decodes as %+v, then %+v", r, c, again)
		}
	})
}

func TestParseDenyKeyCanonicalOnly(t *testing.T) {
	for _, bad := range []string{"", "node:", "node:A0000000-0000-0000-0000-000000000001", "node:00000000-0000-0000-0000-000000000000",
		"addr:", "addr:127.0.0.01", "addr:::ffff:127.0.0.4", "addr:fe80::1%eth0", "addr:0.0.0.0x", "host:n1", "addr:127.0.0.1 "} {
		if _, err := parseDenyKey(bad); err == nil {
			t.Errorf("parseDenyKey(%q) accepted", bad)
		}
	}
	for _, good := range []string{"node:a0000000-0000-0000-0000-000000000001", "addr:127.0.0.4", "addr:::1"} {
		e, err := parseDenyKey(good)
		if err != nil || denyKey(e) != good {
			t.Errorf("parseDenyKey(%q) = %+v, %v", good, e, err)
		}
	}
}

// denyFixture denies n nodes (id and address) as delete node does, each
// with its deleted-node record, on server s.
func denyFixture(s *Server, from, n int, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; i < from+n; i++ {
		id := proto.NodeID{0xd0, byte(i >> 16), byte(i >> 8), byte(i)}
		s.deleted.add(id, fmt.Sprintf("gone%05d", i), at.Add(time.Duration(i)*time.Millisecond))
		s.denyLocked(id, proto.AddrFrom(netip.AddrFrom4([4]byte{127, 9, byte(i >> 8), byte(i)})))
	}
}

// deletedFixture records n deleted nodes, batch of them per save (a
// delete node of several names), without deny entries.
func deletedFixture(s *Server, from, n, batch int, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; i < from+n; i++ {
		id := proto.NodeID{0xd0, byte(i >> 16), byte(i >> 8), byte(i)}
		s.deleted.add(id, fmt.Sprintf("gone%05d", i), at.Add(time.Duration(i)*time.Millisecond))
		if (i-from+1)%batch == 0 || i == from+n-1 {
			s.saveDenyList()
		}
	}
}

// sameDeny fails unless the server's list and deleted nodes are what the
// book holds.
func sameDeny(t *testing.T, s *Server, b *denyBook) {
	t.Helper()
	s.mu.Lock()
	cur := s.denyBookLocked()
	got, err := cur.encode()
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	want, err := b.encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("server holds\n%s\nthe files hold\n%s", got, want)
	}
}

func restartTestServer(t *testing.T, s *Server, clock *fakeClock) *Server {
	t.Helper()
	dir := s.cfg.StateDir
	s.closeUnstarted()
	return newTestServer(t, dir, clock)
}

// A change to the deny list appends its records to deny.journal; deny.json
// is not rewritten, and a restart replays the journal to the same list,
// keys and deleted nodes, lifts included.
func TestDenyJournalAppendsChanges(t *testing.T) {
	dir := initDir(t)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newTestServer(t, dir, clock)
	snap, err := os.ReadFile(filepath.Join(dir, denyFile))
	if err != nil {
		t.Fatal(err)
	}
	denyFixture(s, 0, 50, clock.Now())
	s.mu.Lock()
	s.liftDenyLocked(netip.AddrFrom4([4]byte{127, 9, 0, 3}))
	s.mu.Unlock()
	now, err := os.ReadFile(filepath.Join(dir, denyFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(now, snap) {
		t.Fatal("deny.json rewritten by a change below the fold threshold")
	}
	b := persistedDenyBook(t, dir)
	if len(b.entries) != 99 || len(b.deleted.order) != 50 {
		t.Fatalf("files hold %d entries and %d deleted nodes, want 99 and 50", len(b.entries), len(b.deleted.order))
	}
	sameDeny(t, s, b)
	fi, err := os.Stat(filepath.Join(dir, denyJournalFile))
	if err != nil {
		t.Fatal(err)
	}
	// Per delete: two entries and a deleted node, a few hundred bytes.
	if per := (fi.Size() - int64(store.JournalHeaderSize)) / 50; per > 1024 {
		t.Fatalf("%d journal bytes per delete", per)
	}

	s = restartTestServer(t, s, clock)
	if s.denyWithheld.Load() {
		t.Fatal("deny list withheld after a clean restart")
	}
	sameDeny(t, s, b)
	if d, ok := s.deleted.lookup(proto.NodeID{0xd0, 0, 0, 7}); !ok || d.Name != "gone00007" {
		t.Fatalf("deleted node 7 after the restart: %+v %v", d, ok)
	}
	if s.deny.Revoked(proto.NodeID{}, proto.AddrFrom(netip.AddrFrom4([4]byte{127, 9, 0, 3}))) {
		t.Fatal("a lifted address is denied again after the restart")
	}
}

// Once deny.journal outgrows deny.json (and 64 KiB) it is folded into it;
// the deleted nodes stay bounded at maxDeleted through the journal and the
// fold, the oldest forgotten first.
func TestDenyJournalFoldsAndBoundsDeleted(t *testing.T) {
	dir := initDir(t)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newTestServer(t, dir, clock)
	denyFixture(s, 0, 100, clock.Now())
	deletedFixture(s, 100, maxDeleted+200, 16, clock.Now())
	js, err := store.ReadStateJournal(filepath.Join(dir, denyJournalFile), store.JournalOptions{Snapshot: filepath.Join(dir, denyFile), Expect: true})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, denyFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() < denyCompactMinBytes || len(js.Records) >= 2*(maxDeleted+300) {
		t.Fatalf("deny.json %d bytes, %d journal records: never folded", fi.Size(), len(js.Records))
	}
	b := persistedDenyBook(t, dir)
	if len(b.deleted.order) != maxDeleted {
		t.Fatalf("%d deleted nodes on disk, want %d", len(b.deleted.order), maxDeleted)
	}
	if _, ok := b.deleted.lookup(proto.NodeID{0xd0, 0, 0, 0}); ok {
		t.Fatal("the oldest deleted node is still remembered")
	}
	sameDeny(t, s, b)
	s = restartTestServer(t, s, clock)
	sameDeny(t, s, b)
	if got := s.deleted.order[0]; got != (proto.NodeID{0xd0, 0, 1, 44}) { // node 300
		t.Fatalf("oldest deleted node after the restart: %x", got)
	}
}

// A deny.journal line that fails its checksum refuses the start; a
// journal missing or cut is a lost deny list: withheld, deny.json and the
// journal left as found until the recovery rotation completes, then
// written whole under a new journal.
func TestDenyJournalDamageAndLoss(t *testing.T) {
	setup := func(t *testing.T) (string, *fakeClock, *denyBook) {
		dir := initDir(t)
		clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		s := newTestServer(t, dir, clock)
		mustAdmin(t, s, admin.OpSetServer, admin.SetArgs{Attrs: []admin.Attr{{Name: "key_grace", Value: "1s"}}})
		denyFixture(s, 0, 5, clock.Now())
		b := persistedDenyBook(t, dir)
		s.closeUnstarted()
		return dir, clock, b
	}
	t.Run("damaged", func(t *testing.T) {
		dir, clock, _ := setup(t)
		p := filepath.Join(dir, denyJournalFile)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data[store.JournalHeaderSize+20] ^= 0x01
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err = New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(), Now: clock.Now})
		if err == nil || !strings.Contains(err.Error(), denyJournalFile) {
			t.Fatalf("start over a damaged deny.journal: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		do   func(t *testing.T, path string)
	}{
		{"missing", func(t *testing.T, path string) {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"cut", func(t *testing.T, path string) {
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()-10); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, clock, before := setup(t)
			jpath := filepath.Join(dir, denyJournalFile)
			tc.do(t, jpath)
			snap, _ := os.ReadFile(filepath.Join(dir, denyFile))
			jdata, jerr := os.ReadFile(jpath)
			s := newTestServer(t, dir, clock)
			if !s.base.State.Has(statecheck.StepRotateWithholdDeny) || !s.denyWithheld.Load() || s.denySet() != nil {
				t.Fatal("a lost deny journal does not withhold the deny list")
			}
			denyFixture(s, 100, 1, clock.Now())
			if now, _ := os.ReadFile(filepath.Join(dir, denyFile)); !bytes.Equal(now, snap) {
				t.Fatal("deny.json written while withheld")
			}
			if now, err := os.ReadFile(jpath); !bytes.Equal(now, jdata) || (err == nil) != (jerr == nil) {
				t.Fatal("deny.journal written while withheld")
			}
			for i := 0; i < 10 && s.denyWithheld.Load(); i++ {
				clock.add(time.Minute)
				tick(t, s)
			}
			if s.denyWithheld.Load() {
				t.Fatalf("still withheld after the rotation: %+v", s.rot.info())
			}
			after := persistedDenyBook(t, dir)
			sameDeny(t, s, after)
			if _, ok := after.deleted.lookup(proto.NodeID{0xd0, 0, 0, 100}); !ok {
				t.Fatal("the deny made while withheld is not in the files after the recovery")
			}
			if len(before.entries) == 0 {
				t.Fatal("fixture without entries")
			}
			s = restartTestServer(t, s, clock)
			if s.denyWithheld.Load() {
				t.Fatal("withheld again after the recovery completed")
			}
			sameDeny(t, s, after)
		})
	}
}

// A state directory of the version before deny.journal (deny.json whole,
// a manifest without the journal) starts with its list and gets the
// journal; nothing is withheld.
func TestDenyJournalUpgradeInPlace(t *testing.T) {
	dir := initDir(t)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	old := []byte(`{"format":1,"entries":[{"node":"a0000000-0000-0000-0000-000000000001","keys":["01020304"]},{"addr":"127.0.0.4"}],` +
		`"deleted":[{"node":"a0000000-0000-0000-0000-000000000001","name":"cn03","at":"2026-12-01T10:00:00Z"}]}` + "\n")
	s := newTestServer(t, dir, clock)
	s.closeUnstarted()
	if err := os.WriteFile(filepath.Join(dir, denyFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, denyJournalFile)); err != nil {
		t.Fatal(err)
	}
	files := slices.DeleteFunc(statecheck.Files(statecheck.RoleServer, true), func(f string) bool { return f == denyJournalFile })
	if err := store.SaveManifest(dir, statecheck.RoleServer.String(), files); err != nil {
		t.Fatal(err)
	}
	s = newTestServer(t, dir, clock)
	if s.denyWithheld.Load() {
		t.Fatal("an older directory's deny list is withheld")
	}
	want, err := denyBookOf(old)
	if err != nil {
		t.Fatal(err)
	}
	sameDeny(t, s, want)
	sameDeny(t, s, persistedDenyBook(t, dir))
	m, err := store.LoadManifest(dir)
	if err != nil || !m.Lists(denyJournalFile) {
		t.Fatalf("manifest after the upgrade: %+v %v", m, err)
	}
}

// The group's replica takes deny.json whole (an older leader's record)
// and then the records of each change; a snapshot carries the result, and
// a record that does not decode changes nothing.
func TestGroupStateDenyRecords(t *testing.T) {
	g := newGroupState()
	old := []byte(`{"format":1,"entries":[{"addr":"127.0.0.4"}],"deleted":[]}` + "\n")
	apply := func(recs ...replica.StateRecord) error {
		return g.Apply(g.applied+1, replica.Entry{Cmd: &replica.StateRecords{Why: "test", Records: recs}}).Err
	}
	p, err := loadState(initDir(t))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metaOf(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(replica.StateRecord{Kind: replica.RecordMeta, Key: "server", Value: meta},
		replica.StateRecord{Kind: replica.RecordFile, Key: denyFile, Value: old}); err != nil {
		t.Fatal(err)
	}
	next := g.deny.clone()
	id := proto.NodeID{0xd0, 1}
	next.deleted.add(id, "gone1", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	next.entries[proto.NodeAddr{Node: id}] = nil
	delete(next.entries, proto.NodeAddr{Addr: proto.AddrFrom(netip.MustParseAddr("127.0.0.4"))})
	recs, err := g.deny.changes(next)
	if err != nil || len(recs) != 3 {
		t.Fatalf("changes: %+v %v", recs, err)
	}
	if err := apply(journalRecords(recs)...); err != nil {
		t.Fatal(err)
	}
	bad := replica.StateRecord{Kind: replica.RecordDeny, Key: "addr:127.0.0.01", Value: json.RawMessage(`{}`)}
	if err := apply(replica.StateRecord{Kind: replica.RecordDeny, Key: "addr:127.0.0.5", Value: json.RawMessage(`{}`)}, bad); err == nil {
		t.Fatal("a command with a bad deny record applied")
	}
	want, _ := next.encode()
	for _, gs := range []*groupState{g, snapshotRoundTrip(t, g)} {
		got, _ := gs.deny.encode()
		if !bytes.Equal(got, want) {
			t.Fatalf("replica's deny.json\n%s\nwant\n%s", got, want)
		}
	}
}

// snapshotRoundTrip is a replica restored from g's snapshot.
func snapshotRoundTrip(t *testing.T, g *groupState) *groupState {
	t.Helper()
	g2 := newGroupState()
	if err := g2.Restore(bytes.NewReader(snapshotBytes(t, g))); err != nil {
		t.Fatal(err)
	}
	return g2
}

// A deny.json that is JSON but not a deny list (a bit flipped in a field
// name) is lost as a damaged one is: `state check` says recover and the
// start recovers (withheld until the rotation completes), instead of the
// check saying recover and the start then refusing on the decode.
func TestDenyFileNotADenyList(t *testing.T) {
	dir := initDir(t)
	clock := &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := newTestServer(t, dir, clock)
	mustAdmin(t, s, admin.OpSetServer, admin.SetArgs{Attrs: []admin.Attr{{Name: "key_grace", Value: "1s"}}})
	denyFixture(s, 0, 5, clock.Now())
	s.closeUnstarted()
	p := filepath.Join(dir, denyFile)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(data, []byte(`"format"`), []byte(`"foroat"`), 1)
	if bytes.Equal(bad, data) {
		t.Fatalf("no format field in %s", data)
	}
	if err := os.WriteFile(p, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := store.InspectDir(dir, statecheck.RoleServer, [16]byte{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(in.Findings, func(f statecheck.Finding) bool { return f.File == denyFile && f.Problem == statecheck.Damaged }) {
		t.Fatalf("findings %+v: want deny.json damaged", in.Findings)
	}
	s = newTestServer(t, dir, clock)
	if !s.base.State.Has(statecheck.StepRotateWithholdDeny) || !s.denyWithheld.Load() || s.denySet() != nil {
		t.Fatal("a deny.json that is not a deny list does not withhold the deny list")
	}
	for i := 0; i < 10 && s.denyWithheld.Load(); i++ {
		clock.add(time.Minute)
		tick(t, s)
	}
	if s.denyWithheld.Load() {
		t.Fatalf("still withheld after the rotation: %+v", s.rot.info())
	}
	persistedDenyBook(t, dir) // whole again
}

package server

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/rotation"
	"github.com/momgate/momgate/statecheck"
)

// The rotation record's journal (rotstore.go), without sockets: a step
// appends the record and the nodes that changed, a restart replays them,
// and every way the two files can be left by a crash or damaged is
// recovered or refused as docs/KEYS.md says.

func persistedRecord(t *testing.T, s *Server) []byte {
	t.Helper()
	data, err := rotation.EncodeRecord(s.rot.persisted())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func machineRecord(t *testing.T, s *Server) []byte {
	t.Helper()
	data, err := rotation.EncodeRecord(s.rot.record())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// deleteSome deletes nodes off000000 to off(k-1).
func deleteSome(t *testing.T, s *Server, from, k int) {
	t.Helper()
	for i := from; i < from+k; i++ {
		if _, err := s.deleteNode(fmt.Sprintf("off%06d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

// restartClean closes s and opens dir again, asserting that the start
// found nothing to recover and that the record is the one persisted
// before.
func restartClean(t *testing.T, s *Server, dir string) *Server {
	t.Helper()
	want := persistedRecord(t, s)
	s.closeUnstarted()
	s2 := openServer(t, dir, nil)
	t.Cleanup(s2.closeUnstarted)
	if v := s2.base.State.Verdict; v.Action != statecheck.Start {
		t.Fatalf("restart: verdict %+v", v)
	}
	if got := machineRecord(t, s2); !bytes.Equal(got, want) {
		t.Fatalf("record after restart\n%s\nwant\n%s", got, want)
	}
	return s2
}

// TestRotationJournalDeletes: at many offline nodes a delete node leaves
// rotation.json as it was and appends a few hundred bytes to
// rotation.journal; a restart replays them to the same record.
func TestRotationJournalDeletes(t *testing.T) {
	const n = 300 // more than a step appends: the first rotation writes rotation.json whole
	dir := offlineDir(t, n)
	s := openServer(t, dir, nil)
	primeBehind(t, s, n)
	snap := readFile(t, filepath.Join(dir, rotationFile))
	if !bytes.Contains(snap, []byte(`"behind"`)) {
		t.Fatalf("rotation.json after the first rotation names nobody behind:\n%s", snap)
	}
	j0 := len(readFile(t, filepath.Join(dir, rotationJournalFile)))
	const k = 5
	deleteSome(t, s, 0, k)
	if got := readFile(t, filepath.Join(dir, rotationFile)); !bytes.Equal(got, snap) {
		t.Fatal("rotation.json rewritten by a delete node")
	}
	grown := len(readFile(t, filepath.Join(dir, rotationJournalFile))) - j0
	if grown <= 0 || grown > k*4096 {
		t.Fatalf("rotation.journal grew by %d bytes for %d deletes (rotation.json is %d bytes)", grown, k, len(snap))
	}
	if in := s.rot.info(); in.Behind != n-k || in.Phase != string(rotation.Grace) {
		t.Fatalf("after the deletes: %+v", in)
	}
	s = restartClean(t, s, dir)
	if in := s.rot.info(); in.Behind != n-k || in.Queued == 0 {
		t.Fatalf("after the restart: %+v", in)
	}
}

// TestRotationJournalFolds: once the journal outgrows rotation.json (and
// its floor) it is folded into it, so the journal stays bounded; the
// record survives the fold and a restart.
func TestRotationJournalFolds(t *testing.T) {
	const n = 300
	dir := offlineDir(t, n)
	s := openServer(t, dir, nil)
	primeBehind(t, s, n)
	snap := readFile(t, filepath.Join(dir, rotationFile))
	folded := false
	for i := range 250 {
		deleteSome(t, s, i, 1)
		if i%10 == 9 {
			endGrace(t, s) // rotations complete now and then
		}
		if size := len(readFile(t, filepath.Join(dir, rotationJournalFile))); size > rotCompactMinBytes+64<<10 {
			t.Fatalf("rotation.journal at %d bytes after %d deletes: not folded", size, i+1)
		}
		if !bytes.Equal(readFile(t, filepath.Join(dir, rotationFile)), snap) {
			folded = true
		}
	}
	if !folded {
		t.Fatal("rotation.json never rewritten: the journal was not folded")
	}
	restartClean(t, s, dir)
}

// TestRotationJournalTornTail: a crash during an append leaves part of a
// line after the lines the header vouches for; it was never acknowledged,
// and the start drops it without a finding.
func TestRotationJournalTornTail(t *testing.T) {
	const n = 20
	dir := offlineDir(t, n)
	s := openServer(t, dir, nil)
	primeBehind(t, s, n)
	deleteSome(t, s, 0, 3)
	want := persistedRecord(t, s)
	s.closeUnstarted()
	jpath := filepath.Join(dir, rotationJournalFile)
	line, err := store.AppendJournalLine(nil, store.JournalRecord{Kind: kindBehind, Key: "6ba7b810-9dad-11d1-80b4-00c04fd430c8", Value: behindValue})
	if err != nil {
		t.Fatal(err)
	}
	size := len(readFile(t, jpath))
	f, err := os.OpenFile(jpath, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(line[:len(line)/2]); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s2 := openServer(t, dir, nil)
	t.Cleanup(s2.closeUnstarted)
	if v := s2.base.State.Verdict; v.Action != statecheck.Start {
		t.Fatalf("verdict %+v", v)
	}
	if got := machineRecord(t, s2); !bytes.Equal(got, want) {
		t.Fatalf("record\n%s\nwant\n%s", got, want)
	}
	if got := len(readFile(t, jpath)); got != size {
		t.Fatalf("torn tail not cut: %d bytes, want %d", got, size)
	}
}

// TestRotationJournalDamaged: a line the header vouches for that fails its
// checksum, before the last: the start is refused, naming the file, and no
// byte of the directory's rotation files changes; nothing after it is
// dropped silently.
func TestRotationJournalDamaged(t *testing.T) {
	const n = 20
	dir := offlineDir(t, n)
	s := openServer(t, dir, nil)
	primeBehind(t, s, n)
	deleteSome(t, s, 0, 3)
	s.closeUnstarted()
	jpath := filepath.Join(dir, rotationJournalFile)
	data := readFile(t, jpath)
	if bytes.Count(data[store.JournalHeaderSize:], []byte("\n")) < 3 {
		t.Fatalf("journal of %d lines: want several", bytes.Count(data, []byte("\n")))
	}
	data[store.JournalHeaderSize+20] ^= 0x01 // inside the first line
	if err := os.WriteFile(jpath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	snap := readFile(t, filepath.Join(dir, rotationFile))
	_, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
	if !errors.Is(err, statecheck.ErrStateLost) || !strings.Contains(err.Error(), rotationJournalFile) {
		t.Fatalf("start on a damaged rotation.journal: %v", err)
	}
	if !bytes.Equal(readFile(t, jpath), data) || !bytes.Equal(readFile(t, filepath.Join(dir, rotationFile)), snap) {
		t.Fatal("a refused start changed the rotation files")
	}
}

// setPending rewrites a format 2 journal header as a fold leaves it after
// its first step: naming the snapshot being written (checksum pend).
func setPending(t *testing.T, jpath string, pend uint32) {
	t.Helper()
	data := readFile(t, jpath)
	hdr := string(data[:store.JournalHeaderSize-1])
	body, _, ok := strings.Cut(hdr, " hcrc=")
	if !ok || !strings.HasSuffix(body, " pend=--------") {
		t.Fatalf("header %q", hdr)
	}
	body = strings.TrimSuffix(body, "--------") + fmt.Sprintf("%08x", pend)
	line := fmt.Sprintf("%s hcrc=%08x\n", body, crc32.Checksum([]byte(body), crc32.MakeTable(crc32.Castagnoli)))
	if len(line) != store.JournalHeaderSize {
		t.Fatalf("header of %d bytes", len(line))
	}
	copy(data, line)
	if err := os.WriteFile(jpath, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRotationJournalFoldInterrupted: killed during a fold, after the new
// rotation.json was written and before the journal was emptied. The
// journal's lines are already in the snapshot; replayed over it they give
// the same record, and the start completes the fold.
func TestRotationJournalFoldInterrupted(t *testing.T) {
	const n = 20
	dir := offlineDir(t, n)
	s := openServer(t, dir, nil)
	primeBehind(t, s, n)
	deleteSome(t, s, 0, 3)
	want := persistedRecord(t, s)
	s.closeUnstarted()
	jpath := filepath.Join(dir, rotationJournalFile)
	setPending(t, jpath, crc32.Checksum(want, crc32.MakeTable(crc32.Castagnoli)))
	if err := os.WriteFile(filepath.Join(dir, rotationFile), want, 0o600); err != nil {
		t.Fatal(err)
	}
	s2 := openServer(t, dir, nil)
	t.Cleanup(s2.closeUnstarted)
	if v := s2.base.State.Verdict; v.Action != statecheck.Start {
		t.Fatalf("verdict %+v", v)
	}
	if got := machineRecord(t, s2); !bytes.Equal(got, want) {
		t.Fatalf("record\n%s\nwant\n%s", got, want)
	}
	if got := len(readFile(t, jpath)); got != store.JournalHeaderSize {
		t.Fatalf("fold not completed: journal of %d bytes", got)
	}
}

// TestRotationJournalLost: rotation.journal deleted, or rotation.json
// replaced under it: recovered as rotation.json lost is, by a key rotation
// at once, loudly; the journal then vouches for the new snapshot.
func TestRotationJournalLost(t *testing.T) {
	for _, tc := range []struct {
		name string
		do   func(t *testing.T, dir string)
	}{
		{"journal deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, rotationJournalFile)); err != nil {
				t.Fatal(err)
			}
		}},
		{"snapshot replaced", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, rotationFile), []byte("{\"format\": 1, \"phase\": \"idle\", \"seq\": 0}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"snapshot deleted", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, rotationFile)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 10
			dir := offlineDir(t, n)
			s := openServer(t, dir, nil)
			primeBehind(t, s, n)
			deleteSome(t, s, 0, 2)
			endGrace(t, s)
			s.closeUnstarted()
			tc.do(t, dir)
			s2 := openServer(t, dir, nil)
			v := s2.base.State.Verdict
			if v.Action != statecheck.Recover || !v.Has(statecheck.StepRotateNow) {
				s2.closeUnstarted()
				t.Fatalf("verdict %+v", v)
			}
			if in := s2.rot.info(); in.Phase == string(rotation.Idle) {
				s2.closeUnstarted()
				t.Fatalf("no rotation after the loss: %+v", in)
			}
			// The next start finds nothing lost.
			restartClean(t, s2, dir)
		})
	}
}

// TestRotationJournalUpgrade: a state directory of the previous version
// (rotation.json whole with its behind list, no rotation.journal, a
// manifest that does not list it) loads as it was: the same record, no
// rotation started, no recovery, every node still enrolled; the journal
// is created and the manifest lists it.
func TestRotationJournalUpgrade(t *testing.T) {
	const n = 8
	dir := offlineDir(t, n)
	s := openServer(t, dir, nil)
	primeBehind(t, s, n)
	if _, err := s.rot.rotate("in grace at the upgrade"); err != nil {
		t.Fatal(err)
	}
	old := persistedRecord(t, s)
	s.closeUnstarted()
	// What the previous version left: rotation.json written whole.
	if err := os.Remove(filepath.Join(dir, rotationJournalFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, rotationFile), old, 0o600); err != nil {
		t.Fatal(err)
	}
	prev := slices.DeleteFunc(statecheck.Files(statecheck.RoleServer, true), func(f string) bool { return f == rotationJournalFile })
	if err := store.SaveManifest(dir, "server", prev); err != nil {
		t.Fatal(err)
	}
	regBefore := readFile(t, filepath.Join(dir, stateFile))
	s2 := openServer(t, dir, nil)
	t.Cleanup(s2.closeUnstarted)
	if v := s2.base.State.Verdict; v.Action != statecheck.Start || len(v.Steps) != 0 {
		t.Fatalf("upgrade verdict %+v", v)
	}
	if got := machineRecord(t, s2); !bytes.Equal(got, old) {
		t.Fatalf("record after the upgrade\n%s\nwant\n%s", got, old)
	}
	if in := s2.rot.info(); in.Seq != 2 || in.Phase != string(rotation.Grace) || in.Behind != n {
		t.Fatalf("rotation after the upgrade: %+v", in)
	}
	s2.mu.Lock()
	enrolled := 0
	for _, nd := range s2.reg.byID {
		if nd.enrolled() {
			enrolled++
		}
	}
	s2.mu.Unlock()
	if enrolled != n || !bytes.Equal(readFile(t, filepath.Join(dir, stateFile)), regBefore) {
		t.Fatalf("%d of %d nodes enrolled after the upgrade, registry changed: %v", enrolled, n, !bytes.Equal(readFile(t, filepath.Join(dir, stateFile)), regBefore))
	}
	m, err := store.LoadManifest(dir)
	if err != nil || !m.Lists(rotationJournalFile) {
		t.Fatalf("manifest after the upgrade: %+v %v", m, err)
	}
	restartClean(t, s2, dir)
}

// TestRotationRecordsGroup: on a group's leader a delete node commits the
// rotation record and the nodes that changed, never rotation.json whole;
// the replica applies them to the same record, which its snapshot carries
// as rotation.json and a restored replica reads back.
func TestRotationRecordsGroup(t *testing.T) {
	const n = 300
	g := newGroupState()
	var index uint64
	var whole, changes int
	replicate := func(why string, recs []replica.StateRecord) error {
		for _, r := range recs {
			switch {
			case r.Kind == replica.RecordFile && r.Key == rotationFile:
				whole++
			case r.Kind == replica.RecordRotation || r.Kind == replica.RecordBehind:
				changes++
			}
		}
		index++
		return g.Apply(index, replica.Entry{Cmd: &replica.StateRecords{Why: why, Records: recs}}).Err
	}
	dir := offlineDir(t, n)
	seed, _, err := adoptSnapshot(Config{StateDir: dir, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Restore(bytes.NewReader(seed)); err != nil {
		t.Fatal(err)
	}
	s := openServer(t, dir, replicate)
	t.Cleanup(s.closeUnstarted)
	primeBehind(t, s, n)
	whole, changes = 0, 0
	deleteSome(t, s, 0, 5)
	if whole != 0 || changes == 0 {
		t.Fatalf("deletes committed rotation.json whole %d times, %d rotation records", whole, changes)
	}
	want := persistedRecord(t, s)
	snap, _ := g.Snapshot()
	secs, err := snap.(*groupSnapshot).sections()
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for _, sec := range secs {
		if sec.Name == rotationFile {
			got = sec.Data
		}
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("replica's rotation.json\n%s\nwant\n%s", got, want)
	}
	g2 := snapshotRoundTrip(t, g)
	if again, _ := rotationFileOf(g2.rotHead, g2.behind); !bytes.Equal(again, want) {
		t.Fatalf("restored replica's rotation.json\n%s\nwant\n%s", again, want)
	}
}

// TestRotationRecordsChecked: the replica refuses rotation and behind
// records that do not decode strictly, whole commands at a time.
func TestRotationRecordsChecked(t *testing.T) {
	const node = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	for _, r := range []replica.StateRecord{
		{Kind: replica.RecordRotation, Key: "other", Value: []byte(`{"format":1,"phase":"idle","seq":0}`)},
		{Kind: replica.RecordRotation, Key: rotationRecordKey, Value: []byte(`{"format":2,"phase":"idle","seq":0}`)},
		{Kind: replica.RecordRotation, Key: rotationRecordKey, Value: []byte(`{"format":1,"phase":"idle","seq":0,"behind":["` + node + `"]}`)},
		{Kind: replica.RecordRotation, Key: rotationRecordKey, Deleted: true},
		{Kind: replica.RecordBehind, Key: strings.ToUpper(node), Value: behindValue},
		{Kind: replica.RecordBehind, Key: "n1", Deleted: true},
		{Kind: replica.RecordBehind, Key: node, Value: []byte(`{"since":1}`)},
	} {
		g := newGroupState()
		ok := replica.StateRecord{Kind: replica.RecordBehind, Key: node, Value: behindValue}
		res := g.Apply(1, replica.Entry{Cmd: &replica.StateRecords{Why: "test", Records: []replica.StateRecord{ok, r}}})
		if !errors.Is(res.Err, errBadRecord) || len(g.behind) != 0 {
			t.Errorf("record %s %q %s (deleted %v): %v, %d behind", r.Kind, r.Key, r.Value, r.Deleted, res.Err, len(g.behind))
		}
	}
}

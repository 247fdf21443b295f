package store

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/statecheck"
)

var (
	bootA = [16]byte{1, 2, 3}
	bootB = [16]byte{9, 9, 9}
)

func readStore(t *testing.T, dir string, opt MarkOptions) *MarkState {
	t.Helper()
	st, err := ReadMarkStore(dir, opt)
	if err != nil {
		t.Fatalf("ReadMarkStore: %v", err)
	}
	return st
}

func openStore(t *testing.T, dir string, st *MarkState, loss *MarkLoss) *MarkLog {
	t.Helper()
	m, err := st.Open(dir, bootA, loss)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return m
}

// problems lists the findings as "file problem".
func problems(st *MarkState) []string {
	var out []string
	for _, f := range st.Findings {
		out = append(out, f.File+" "+f.Problem.String())
	}
	slices.Sort(out)
	return out
}

func wantProblems(t *testing.T, st *MarkState, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := problems(st); !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v (%+v)", got, want, st.Findings)
	}
}

// newStore makes a format 2 store with marks for nodes 0..n-1 (node i at
// 1000+i, put twice, the second time lower) and returns the writer.
func newStore(t *testing.T, dir string, n int) (*MarkLog, map[proto.NodeID]uint64) {
	t.Helper()
	st := readStore(t, dir, MarkOptions{Boot: bootA})
	wantProblems(t, st)
	m := openStore(t, dir, st, nil)
	want := map[proto.NodeID]uint64{}
	for i := 0; i < n; i++ {
		mustPut(t, m, nodeID(i), uint64(1000+i))
		mustPut(t, m, nodeID(i), uint64(500+i)) // out of order: the maximum must win
		want[nodeID(i)] = uint64(1000 + i)
	}
	return m, want
}

func TestMarkStoreCleanStopAndCrash(t *testing.T) {
	t.Run("clean", func(t *testing.T) {
		dir := t.TempDir()
		m, want := newStore(t, dir, 5)
		mustClose(t, m)
		st := readStore(t, dir, MarkOptions{Expect: true, Boot: bootB}) // even after a reboot
		wantProblems(t, st)
		equalMarks(t, st.Marks, want)
	})
	t.Run("killed, same boot", func(t *testing.T) {
		dir := t.TempDir()
		_, want := newStore(t, dir, 5) // never closed: the page cache holds every append
		st := readStore(t, dir, MarkOptions{Expect: true, Boot: bootA})
		wantProblems(t, st)
		equalMarks(t, st.Marks, want)
	})
	t.Run("killed, then the machine went down", func(t *testing.T) {
		dir := t.TempDir()
		_, want := newStore(t, dir, 5)
		st := readStore(t, dir, MarkOptions{Expect: true, Boot: bootB})
		wantProblems(t, st, "marks.log not provably whole")
		equalMarks(t, st.Marks, want)
		st = readStore(t, dir, MarkOptions{Expect: true}) // boot id unreadable
		wantProblems(t, st, "marks.log not provably whole")
	})
	t.Run("killed between an append and its header", func(t *testing.T) {
		dir := t.TempDir()
		_, want := newStore(t, dir, 3)
		var rec [MarkRecordSize]byte
		encodeMarkRecord(rec[:], nodeID(7), 7777)
		appendBytes(t, filepath.Join(dir, MarkLogName), append(rec[:], rec[:9]...)) // a whole one and a torn one
		st := readStore(t, dir, MarkOptions{Expect: true, Boot: bootA})
		wantProblems(t, st)
		want[nodeID(7)] = 7777
		equalMarks(t, st.Marks, want)
	})
}

func appendBytes(t *testing.T, path string, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// TestMarkStoreDamage: every damage of issue 16 is reported, after a clean
// stop and after a crash alike, and the readable marks are kept as lower
// bounds.
func TestMarkStoreDamage(t *testing.T) {
	logFile := func(dir string) string { return filepath.Join(dir, MarkLogName) }
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   []string
	}{
		{"log truncated to zero", func(t *testing.T, dir string) { truncate(t, logFile(dir), 0) }, []string{"marks.log truncated"}},
		{"log cut to its header", func(t *testing.T, dir string) { truncate(t, logFile(dir), MarkHeaderSize) }, []string{"marks.log truncated"}},
		{"log cut at a record boundary", func(t *testing.T, dir string) {
			truncate(t, logFile(dir), fileSize(t, logFile(dir))-MarkRecordSize)
		}, []string{"marks.log truncated"}},
		{"log cut mid-record", func(t *testing.T, dir string) {
			truncate(t, logFile(dir), fileSize(t, logFile(dir))-5)
		}, []string{"marks.log truncated"}},
		{"log tail zeroed", func(t *testing.T, dir string) { zeroTail(t, logFile(dir), 2*MarkRecordSize) }, []string{"marks.log damaged"}},
		{"log header zeroed", func(t *testing.T, dir string) { zeroAt(t, logFile(dir), 0, MarkHeaderSize) }, []string{"marks.log damaged"}},
		{"a record overwritten with another valid one", func(t *testing.T, dir string) {
			var rec [MarkRecordSize]byte
			encodeMarkRecord(rec[:], nodeID(1), 1)
			writeAt(t, logFile(dir), MarkHeaderSize, rec[:])
		}, []string{"marks.log damaged"}},
		{"log deleted", func(t *testing.T, dir string) { remove(t, logFile(dir)) }, []string{"marks.log missing"}},
		{"snapshot deleted", func(t *testing.T, dir string) { remove(t, filepath.Join(dir, MarkSnapName)) }, []string{"marks.snap missing"}},
		{"snapshot damaged", func(t *testing.T, dir string) { zeroTail(t, filepath.Join(dir, MarkSnapName), 4) }, []string{"marks.snap damaged"}},
		{"both deleted", func(t *testing.T, dir string) {
			remove(t, logFile(dir))
			remove(t, filepath.Join(dir, MarkSnapName))
		}, []string{"marks.log missing", "marks.snap missing"}},
	}
	for _, tc := range cases {
		for _, clean := range []bool{true, false} {
			name := tc.name + map[bool]string{true: ", clean stop", false: ", after a crash"}[clean]
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				m, _ := newStore(t, dir, 4)
				if clean {
					if err := m.Compact(map[proto.NodeID]uint64{}); err != nil {
						t.Fatal(err)
					}
					mustPut(t, m, nodeID(9), 9000) // one record after the compaction
					mustPut(t, m, nodeID(8), 8000)
					mustClose(t, m)
				}
				tc.damage(t, dir)
				st := readStore(t, dir, MarkOptions{Expect: true, Boot: bootA})
				wantProblems(t, st, tc.want...)
				if !st.Lost() {
					t.Fatal("a loss not reported as one")
				}
				v := statecheck.Judge(statecheck.Input{Role: statecheck.RoleMom, Dir: dir, Findings: st.Findings})
				if v.Action != statecheck.Recover || !v.Has(statecheck.StepMarksFloor) {
					t.Fatalf("verdict %+v", v)
				}
			})
		}
	}
}

// TestMarkStoreSnapshotRestoredAlone: a snapshot of another generation
// beside the log (restored from a backup alone) is inconsistent.
func TestMarkStoreSnapshotRestoredAlone(t *testing.T) {
	dir := t.TempDir()
	m, _ := newStore(t, dir, 2)
	old, err := os.ReadFile(filepath.Join(dir, MarkSnapName))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := m.Compact(map[proto.NodeID]uint64{}); err != nil {
			t.Fatal(err)
		}
	}
	mustClose(t, m)
	if err := os.WriteFile(filepath.Join(dir, MarkSnapName), old, 0o600); err != nil {
		t.Fatal(err)
	}
	wantProblems(t, readStore(t, dir, MarkOptions{Expect: true, Boot: bootA}), "marks.snap inconsistent with its companion file")
}

// TestMarkStoreCrashMidCompaction: a snapshot one generation ahead of the
// log (killed between the two) is whole, and the next Open resets the log
// before it writes a newer snapshot.
func TestMarkStoreCrashMidCompaction(t *testing.T) {
	dir := t.TempDir()
	m, want := newStore(t, dir, 3)
	logBytes, err := os.ReadFile(filepath.Join(dir, MarkLogName))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Compact(map[proto.NodeID]uint64{}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, m)
	// Put the old log back: as if killed after the snapshot, before the reset.
	if err := os.WriteFile(filepath.Join(dir, MarkLogName), logBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	st := readStore(t, dir, MarkOptions{Expect: true, Boot: bootA})
	wantProblems(t, st)
	equalMarks(t, st.Marks, want)
	m = openStore(t, dir, st, nil)
	mustClose(t, m)
	st = readStore(t, dir, MarkOptions{Expect: true, Boot: bootA})
	wantProblems(t, st)
	equalMarks(t, st.Marks, want)
}

// TestMarkStoreUpgrade: a format 1 directory (snapshot and log written by
// the old MarkLog) is read with every mark, reported as upgraded, and
// rewritten in format 2 by Open.
func TestMarkStoreUpgrade(t *testing.T) {
	dir := t.TempDir()
	old, _ := openMarks(t, dir)
	want, _ := putSeq(t, old, 20, 4)
	if err := old.Compact(nil); err != nil {
		t.Fatal(err)
	}
	mustPut(t, old, nodeID(9), 99999)
	want[nodeID(9)] = 99999
	mustClose(t, old)
	st := readStore(t, dir, MarkOptions{Boot: bootA})
	wantProblems(t, st, "marks.log old format", "marks.snap old format")
	if st.Lost() {
		t.Fatal("an upgrade reported as a loss")
	}
	equalMarks(t, st.Marks, want)
	m := openStore(t, dir, st, nil)
	mustPut(t, m, nodeID(10), 10)
	want[nodeID(10)] = 10
	mustClose(t, m)
	st = readStore(t, dir, MarkOptions{Expect: true, Boot: bootA})
	wantProblems(t, st)
	equalMarks(t, st.Marks, want)
	data, err := os.ReadFile(filepath.Join(dir, MarkLogName))
	if err != nil || !strings.HasPrefix(string(data), MarkLogMagic) {
		t.Fatalf("log not rewritten in format 2: %v", err)
	}
}

// TestMarkStoreUpgradeTornFormat1: a format 1 log with a torn final
// record cannot be told from a damaged one: a loss.
func TestMarkStoreUpgradeTornFormat1(t *testing.T) {
	dir := t.TempDir()
	old, _ := openMarks(t, dir)
	putSeq(t, old, 3, 3)
	mustClose(t, old)
	appendBytes(t, filepath.Join(dir, MarkLogName), []byte{1, 2, 3})
	wantProblems(t, readStore(t, dir, MarkOptions{Boot: bootA}), "marks.log truncated")
}

// TestMarkStoreRecoveryPersists: after a loss every restored sender is
// unvouched; a Put vouches for one; the recovery (floor, unvouched set)
// survives a compaction and a restart.
func TestMarkStoreRecoveryPersists(t *testing.T) {
	dir := t.TempDir()
	m, _ := newStore(t, dir, 3)
	if err := m.Compact(nil); err != nil { // nodes 0..2 in the snapshot
		t.Fatal(err)
	}
	mustPut(t, m, nodeID(0), 2000) // lost below
	mustClose(t, m)
	truncate(t, filepath.Join(dir, MarkLogName), MarkHeaderSize)
	st := readStore(t, dir, MarkOptions{Expect: true, Boot: bootA})
	wantProblems(t, st, "marks.log truncated")
	m = openStore(t, dir, st, &MarkLoss{Floor: 424242})
	if r := st.Recovery(); !r.Active || r.Floor != 424242 || len(r.Unvouched) != len(st.Marks) {
		t.Fatalf("recovery %+v", r)
	}
	mustPut(t, m, nodeID(0), 500000) // vouched for since
	if err := m.Compact(map[proto.NodeID]uint64{nodeID(0): 500000, nodeID(1): 1, nodeID(2): 2}); err != nil {
		t.Fatal(err)
	}
	mustPut(t, m, nodeID(1), 500001) // after the compaction: vouched by the log
	mustClose(t, m)
	st = readStore(t, dir, MarkOptions{Expect: true, Boot: bootA})
	wantProblems(t, st)
	r := st.Recovery()
	if !r.Active || r.Floor != 424242 {
		t.Fatalf("recovery lost at restart: %+v", r)
	}
	if _, ok := r.Unvouched[nodeID(2)]; !ok || len(r.Unvouched) != 1 {
		t.Fatalf("unvouched %v, want only node 2", r.Unvouched)
	}
}

func TestMarkStoreFreshAndExpected(t *testing.T) {
	wantProblems(t, readStore(t, t.TempDir(), MarkOptions{}))
	wantProblems(t, readStore(t, t.TempDir(), MarkOptions{Expect: true}), "marks.log missing", "marks.snap missing")
}

func truncate(t *testing.T, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
}

func writeAt(t *testing.T, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func zeroAt(t *testing.T, path string, off, n int64) {
	t.Helper()
	writeAt(t, path, off, make([]byte, n))
}

func zeroTail(t *testing.T, path string, n int64) {
	t.Helper()
	zeroAt(t, path, fileSize(t, path)-n, n)
}

package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/momgate/momgate/proto"
)

func nodeID(i int) proto.NodeID {
	var n proto.NodeID
	binary.BigEndian.PutUint32(n[12:], uint32(i))
	n[0] = 0xA0
	return n
}

func openMarks(t *testing.T, dir string) (*MarkLog, map[proto.NodeID]uint64) {
	t.Helper()
	m, marks, err := OpenMarkLog(dir)
	if err != nil {
		t.Fatalf("OpenMarkLog: %v", err)
	}
	return m, marks
}

func mustClose(t *testing.T, m *MarkLog) {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func mustPut(t *testing.T, m *MarkLog, n proto.NodeID, ts uint64) {
	t.Helper()
	if err := m.Put(n, ts); err != nil {
		t.Fatalf("Put: %v", err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func equalMarks(t *testing.T, got, want map[proto.NodeID]uint64) {
	t.Helper()
	if !maps.Equal(got, want) {
		t.Fatalf("marks differ:\n got %v\nwant %v", got, want)
	}
}

// putSeq puts n records over k nodes, ascending per node, and returns the
// expected maxima and every (node, ts) in order.
func putSeq(t *testing.T, m *MarkLog, n, k int) (map[proto.NodeID]uint64, [][2]uint64) {
	t.Helper()
	want := make(map[proto.NodeID]uint64)
	var seq [][2]uint64
	for i := 0; i < n; i++ {
		node := nodeID(i % k)
		ts := uint64(1000 + i)
		mustPut(t, m, node, ts)
		want[node] = ts
		seq = append(seq, [2]uint64{uint64(i % k), ts})
	}
	return want, seq
}

func TestMarkLogRoundTrip(t *testing.T) {
	dir := t.TempDir()
	m, marks := openMarks(t, dir)
	if len(marks) != 0 || m.LogSize() != 0 {
		t.Fatalf("fresh store: %v, size %d", marks, m.LogSize())
	}
	want, _ := putSeq(t, m, 50, 7)
	mustPut(t, m, nodeID(0), 1) // a lower mark never lowers the merged maximum
	if got := m.LogSize(); got != 51*MarkRecordSize {
		t.Fatalf("LogSize = %d", got)
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, m)
	fi, err := os.Stat(filepath.Join(dir, MarkLogName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("log mode %v", fi.Mode().Perm())
	}

	m, marks = openMarks(t, dir)
	defer mustClose(t, m)
	equalMarks(t, marks, want)
	if got := m.LogSize(); got != 51*MarkRecordSize {
		t.Fatalf("LogSize after reopen = %d", got)
	}
}

func TestMarkLogClosed(t *testing.T) {
	m, _ := openMarks(t, t.TempDir())
	mustClose(t, m)
	for name, err := range map[string]error{
		"Put":     m.Put(nodeID(1), 1),
		"Sync":    m.Sync(),
		"Compact": m.Compact(nil),
		"Close":   m.Close(),
	} {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

// TestMarkLogTornTail truncates the log at every byte offset of its last
// record, as a crash mid-append would leave it: opening loses at most that
// record, never errors, and leaves the log aligned for further appends.
func TestMarkLogTornTail(t *testing.T) {
	src := t.TempDir()
	m, _ := openMarks(t, src)
	const n, k = 10, 3
	_, seq := putSeq(t, m, n, k)
	mustClose(t, m)
	full, err := os.ReadFile(filepath.Join(src, MarkLogName))
	if err != nil {
		t.Fatal(err)
	}
	maxOf := func(recs [][2]uint64) map[proto.NodeID]uint64 {
		out := make(map[proto.NodeID]uint64)
		for _, r := range recs {
			if ts := r[1]; ts > out[nodeID(int(r[0]))] {
				out[nodeID(int(r[0]))] = ts
			}
		}
		return out
	}
	for cut := len(full) - MarkRecordSize; cut <= len(full); cut++ {
		t.Run(fmt.Sprint(cut), func(t *testing.T) {
			dir := t.TempDir()
			logPath := filepath.Join(dir, MarkLogName)
			if err := os.WriteFile(logPath, full[:cut], 0o600); err != nil {
				t.Fatal(err)
			}
			m, marks := openMarks(t, dir)
			whole := cut / MarkRecordSize
			equalMarks(t, marks, maxOf(seq[:whole]))
			if got := fileSize(t, logPath); got != int64(whole*MarkRecordSize) {
				t.Fatalf("log is %d bytes after open, want %d", got, whole*MarkRecordSize)
			}
			mustPut(t, m, nodeID(9), 99999)
			mustClose(t, m)
			m, marks = openMarks(t, dir)
			defer mustClose(t, m)
			want := maxOf(seq[:whole])
			want[nodeID(9)] = 99999
			equalMarks(t, marks, want)
		})
	}
}

func TestMarkLogBadFinalRecordIsTorn(t *testing.T) {
	dir := t.TempDir()
	m, _ := openMarks(t, dir)
	mustPut(t, m, nodeID(1), 10)
	mustPut(t, m, nodeID(2), 20)
	mustClose(t, m)
	logPath := filepath.Join(dir, MarkLogName)
	data, _ := os.ReadFile(logPath)
	data[len(data)-10] ^= 0xff
	if err := os.WriteFile(logPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	m, marks := openMarks(t, dir)
	defer mustClose(t, m)
	equalMarks(t, marks, map[proto.NodeID]uint64{nodeID(1): 10})
	if got := fileSize(t, logPath); got != MarkRecordSize {
		t.Fatalf("log is %d bytes", got)
	}
}

// TestMarkLogZeroTail: a power loss can leave the unsynced tail of the log
// as zero bytes, several records long; that is a torn tail, not corruption.
func TestMarkLogZeroTail(t *testing.T) {
	dir := t.TempDir()
	m, _ := openMarks(t, dir)
	mustPut(t, m, nodeID(1), 10)
	mustClose(t, m)
	logPath := filepath.Join(dir, MarkLogName)
	data, _ := os.ReadFile(logPath)
	data = append(data, make([]byte, 3*MarkRecordSize+5)...)
	if err := os.WriteFile(logPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	m, marks := openMarks(t, dir)
	defer mustClose(t, m)
	equalMarks(t, marks, map[proto.NodeID]uint64{nodeID(1): 10})
	if got := fileSize(t, logPath); got != MarkRecordSize {
		t.Fatalf("log is %d bytes", got)
	}
}

func TestMarkLogCorruptMiddle(t *testing.T) {
	dir := t.TempDir()
	m, _ := openMarks(t, dir)
	putSeq(t, m, 5, 5)
	mustClose(t, m)
	logPath := filepath.Join(dir, MarkLogName)
	data, _ := os.ReadFile(logPath)
	orig := bytes.Clone(data)
	data[2*MarkRecordSize+3] ^= 0x01
	if err := os.WriteFile(logPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := OpenMarkLog(dir)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
	for _, s := range []string{logPath, "offset 56"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name %q", err, s)
		}
	}
	if after, _ := os.ReadFile(logPath); !bytes.Equal(after, data) {
		t.Error("a corrupt log was modified")
	}
	// A bad final record followed by a partial one is not a torn append.
	data = bytes.Clone(orig)
	data[4*MarkRecordSize] ^= 0x01
	data = append(data, 1, 2, 3)
	if err := os.WriteFile(logPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenMarkLog(dir); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "offset 112") {
		t.Fatalf("err = %v", err)
	}
}

func TestCompactReopen(t *testing.T) {
	dir := t.TempDir()
	m, _ := openMarks(t, dir)
	want, _ := putSeq(t, m, 40, 8)
	// The caller's view may lag the log (Puts after its Snapshot) or hold
	// nodes that are only in the old snapshot: Compact merges both.
	view := map[proto.NodeID]uint64{nodeID(0): 5, nodeID(100): 7}
	if err := m.Compact(view); err != nil {
		t.Fatal(err)
	}
	want[nodeID(100)] = 7
	if m.LogSize() != 0 || fileSize(t, filepath.Join(dir, MarkLogName)) != 0 {
		t.Fatalf("log not truncated: %d", m.LogSize())
	}
	fi, err := os.Stat(filepath.Join(dir, MarkSnapName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("snapshot mode %v", fi.Mode().Perm())
	}
	mustPut(t, m, nodeID(3), 5000)
	want[nodeID(3)] = 5000
	mustClose(t, m)

	m, marks := openMarks(t, dir)
	equalMarks(t, marks, want)
	// A node neither in the caller's marks nor in the log is dropped, as
	// the guard dropped it from memory.
	if err := m.Compact(map[proto.NodeID]uint64{nodeID(1): 1}); err != nil {
		t.Fatal(err)
	}
	mustClose(t, m)
	m, marks = openMarks(t, dir)
	defer mustClose(t, m)
	equalMarks(t, marks, map[proto.NodeID]uint64{nodeID(1): 1, nodeID(3): 5000})
}

// TestCrashBetweenSnapshotAndTruncate simulates a crash after Compact wrote
// the snapshot but before it truncated the log.
func TestCrashBetweenSnapshotAndTruncate(t *testing.T) {
	dir := t.TempDir()
	m, _ := openMarks(t, dir)
	mustPut(t, m, nodeID(1), 100)
	mustPut(t, m, nodeID(2), 200)
	mustPut(t, m, nodeID(1), 150)
	mustClose(t, m)
	snap, err := EncodeSnapshot(map[proto.NodeID]uint64{nodeID(1): 150, nodeID(2): 300, nodeID(3): 30})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, MarkSnapName), snap, 0o600); err != nil {
		t.Fatal(err)
	}
	m, marks := openMarks(t, dir)
	defer mustClose(t, m)
	equalMarks(t, marks, map[proto.NodeID]uint64{nodeID(1): 150, nodeID(2): 300, nodeID(3): 30})
}

func TestOpenMarkLogCorruptSnapshot(t *testing.T) {
	dir := t.TempDir()
	snapPath := filepath.Join(dir, MarkSnapName)
	if err := os.WriteFile(snapPath, []byte("MGMARKS1 but not really"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := OpenMarkLog(dir)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), snapPath) {
		t.Fatalf("err = %v", err)
	}
}

func TestOpenMarkLogMissingDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nope")
	_, _, err := OpenMarkLog(dir)
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("err = %v", err)
	}
}

// TestShortWrite: a write that stops mid-record (disk full) is cut off, so
// the log stays aligned and the next Put succeeds.
func TestShortWrite(t *testing.T) {
	dir := t.TempDir()
	m, _ := openMarks(t, dir)
	mustPut(t, m, nodeID(1), 10)
	m.writeHook = func(f *os.File, b []byte) (int, error) {
		n, _ := f.Write(b[:11])
		return n, errors.New("no space left on device")
	}
	if err := m.Put(nodeID(2), 20); err == nil {
		t.Fatal("Put with a short write succeeded")
	}
	m.writeHook = nil
	logPath := filepath.Join(dir, MarkLogName)
	if got := fileSize(t, logPath); got != MarkRecordSize {
		t.Fatalf("log is %d bytes after a short write", got)
	}
	mustPut(t, m, nodeID(3), 30)
	mustClose(t, m)
	m, marks := openMarks(t, dir)
	defer mustClose(t, m)
	equalMarks(t, marks, map[proto.NodeID]uint64{nodeID(1): 10, nodeID(3): 30})
}

func TestConcurrentPut(t *testing.T) {
	dir := t.TempDir()
	m, _ := openMarks(t, dir)
	const workers, per = 8, 200
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 1; i <= per; i++ {
				if err := m.Put(nodeID(w), uint64(i)); err != nil {
					t.Error(err)
					return
				}
				if i == per/2 && w == 0 {
					if err := m.Compact(nil); err != nil {
						t.Error(err)
					}
				}
				if i%50 == 0 {
					_ = m.Sync()
					_ = m.LogSize()
				}
			}
		}(w)
	}
	wg.Wait()
	mustClose(t, m)
	m, marks := openMarks(t, dir)
	defer mustClose(t, m)
	want := make(map[proto.NodeID]uint64)
	for w := 0; w < workers; w++ {
		want[nodeID(w)] = per
	}
	equalMarks(t, marks, want)
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, n := range []int{0, 1, 300} {
		in := make(map[proto.NodeID]uint64)
		for i := 0; i < n; i++ {
			in[nodeID(i*7919)] = uint64(i) << 40
		}
		data, err := EncodeSnapshot(in)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) != 12+24*n+4 {
			t.Fatalf("%d marks: %d bytes", n, len(data))
		}
		out, err := DecodeSnapshot(data)
		if err != nil {
			t.Fatal(err)
		}
		equalMarks(t, out, in)
	}
}

func TestDecodeSnapshotStrict(t *testing.T) {
	good, _ := EncodeSnapshot(map[proto.NodeID]uint64{nodeID(1): 1, nodeID(2): 2})
	reseal := func(b []byte) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint32(b[len(b)-4:], crcOf(b[:len(b)-4]))
		return b
	}
	swapped := bytes.Clone(good)
	copy(swapped[12:36], good[36:60])
	copy(swapped[36:60], good[12:36])
	dup := bytes.Clone(good)
	copy(dup[36:52], good[12:28])
	huge := bytes.Clone(good)
	binary.BigEndian.PutUint32(huge[8:], MaxSnapshotMarks+1)
	cases := map[string][]byte{
		"empty":        nil,
		"short":        good[:15],
		"bad magic":    reseal(append([]byte("MGMARKS2"), good[8:]...)),
		"bad crc":      append(bytes.Clone(good[:len(good)-1]), good[len(good)-1]^1),
		"truncated":    good[:len(good)-5],
		"trailing":     append(bytes.Clone(good), 0),
		"count high":   reseal(append(append([]byte(SnapshotMagic), 0, 0, 0, 3), good[12:]...)),
		"count huge":   reseal(huge),
		"out of order": reseal(swapped),
		"duplicate":    reseal(dup),
	}
	for name, data := range cases {
		if _, err := DecodeSnapshot(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	m, _, err := OpenMarkLog(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	node := nodeID(1)
	b.ReportAllocs()
	b.SetBytes(MarkRecordSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := m.Put(node, uint64(i)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPutParallel(b *testing.B) {
	m, _, err := OpenMarkLog(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	b.ReportAllocs()
	b.SetBytes(MarkRecordSize)
	b.RunParallel(func(pb *testing.PB) {
		node, ts := nodeID(2), uint64(0)
		for pb.Next() {
			ts++
			if err := m.Put(node, ts); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

package server

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/rotation"
)

// The delete-node benchmark (issue 15): N enrolled nodes, none connected,
// so that a first rotation leaves every one of them behind (needs sync);
// then b.N deletes back to back through deleteNode, without sockets. The
// first delete starts a rotation; the rest arrive during it and queue, as
// in a burst. Metrics: deletes/s, the bytes this process wrote per delete
// (write(2) calls, /proc/self/io wchar: every state file, and the raft log
// in a group), and in a group the bytes of the committed records per
// delete, split into the rotation record and the rest.
//
//	go test -run '^$' -bench DeleteNodeOffline -benchtime 200x ./server
//
// MOMGATE_BENCH_DELETE_N (comma-separated) overrides the sizes;
// MOMGATE_BENCH_DELETED=D starts with D deleted nodes already remembered
// (a site that has deleted that many; at most maxDeleted are kept).

func deleteBenchSizes() []int {
	sizes := []int{1000, 10000}
	if v := os.Getenv("MOMGATE_BENCH_DELETE_N"); v != "" {
		sizes = nil
		for _, f := range bytes.Split([]byte(v), []byte(",")) {
			n, err := strconv.Atoi(string(f))
			if err == nil && n > 0 {
				sizes = append(sizes, n)
			}
		}
	}
	return sizes
}

// wchar is the bytes this process has passed to write(2) so far.
func wchar(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		tb.Skipf("no /proc/self/io: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("wchar: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Skip("no wchar in /proc/self/io")
	return 0
}

// recordBytes counts the bytes of committed records by file.
type recordBytes struct {
	rotation, other, deny int64 // deny: deny.json, part of other
}

// newOfflineServer is a server of n enrolled nodes, none connected, every
// one behind after a completed rotation. replicate, if set, commits the
// writes (a group leader).
func newOfflineServer(tb testing.TB, n int, replicate func(string, []replica.StateRecord) error) *Server {
	srv := openServer(tb, offlineDir(tb, n), replicate)
	tb.Cleanup(srv.closeUnstarted)
	primeBehind(tb, srv, n)
	return srv
}

// offlineDir is an initialised state directory of n enrolled nodes,
// named off000000 on.
func offlineDir(tb testing.TB, n int) string {
	dir := tb.TempDir()
	if _, err := Init(dir, rand.Reader, time.Now()); err != nil {
		tb.Fatal(err)
	}
	p, err := loadState(dir)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	var pub [32]byte
	for i := range n {
		if _, err := rand.Read(pub[:]); err != nil {
			tb.Fatal(err)
		}
		p.Nodes = append(p.Nodes, nodeRecord{Name: fmt.Sprintf("off%06d", i), ID: uuid.New().String(), Mom: benchAddr(i), Port: DefaultMomPort,
			Pub: base64.StdEncoding.EncodeToString(pub[:]), Created: now, Enrolled: &now, Upgraded: true})
	}
	if err := saveState(dir, p); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// openServer opens dir without listening; the caller closes it
// (closeUnstarted).
func openServer(tb testing.TB, dir string, replicate func(string, []replica.StateRecord) error) *Server {
	srv, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(), Replicate: replicate})
	if err != nil {
		tb.Fatal(err)
	}
	return srv
}

// primeBehind runs one rotation with nobody connected: every one of the n
// nodes is behind after it.
func primeBehind(tb testing.TB, srv *Server, n int) {
	if _, err := srv.rot.rotate("prime"); err != nil {
		tb.Fatal(err)
	}
	endGrace(tb, srv)
	if in := srv.rot.info(); in.Phase != string(rotation.Idle) || in.Behind != n {
		tb.Fatalf("after the first rotation: phase %s, %d of %d nodes behind", in.Phase, in.Behind, n)
	}
}

// endGrace runs the rotor's clock past the grace period (and any queued
// rotation's), until the machine is idle.
func endGrace(tb testing.TB, srv *Server) {
	for range 100 {
		in := srv.rot.info()
		if in.Phase == string(rotation.Idle) {
			return
		}
		if err := srv.rot.event(func(m *rotation.Machine, now time.Time) ([]rotation.Action, error) {
			at := now.Add(24 * time.Hour)
			if in.GraceUntil != nil && !at.After(*in.GraceUntil) {
				at = in.GraceUntil.Add(time.Second) // a grace period that began at a tick like this one
			}
			return m.Tick(at)
		}); err != nil {
			tb.Fatal(err)
		}
	}
	tb.Fatalf("rotation not idle: %+v", srv.rot.info())
}

func benchDeletes(b *testing.B, members int) {
	for _, n := range deleteBenchSizes() {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			if b.N > n {
				b.Skipf("%d deletes of %d nodes", b.N, n)
			}
			var counted recordBytes
			var replicate func(string, []replica.StateRecord) error
			if members > 0 {
				benchMembers = members
				commit := benchReplicate(b)
				benchMembers = 0
				replicate = func(why string, recs []replica.StateRecord) error {
					for _, r := range recs {
						size := int64(len(r.Kind) + len(r.Key) + len(r.Value))
						if r.Kind == replica.RecordFile && r.Key == rotationFile || r.Kind == replica.RecordRotation || r.Kind == replica.RecordBehind {
							counted.rotation += size
						} else {
							counted.other += size
							if r.Kind == replica.RecordFile && r.Key == denyFile || r.Kind == replica.RecordDeny || r.Kind == replica.RecordDeleted {
								counted.deny += size
							}
						}
					}
					return commit(why, recs)
				}
			}
			srv := newOfflineServer(b, n, replicate)
			if d, _ := strconv.Atoi(os.Getenv("MOMGATE_BENCH_DELETED")); d > 0 {
				srv.mu.Lock()
				for i := range d {
					srv.deleted.add(proto.NodeID(uuid.New()), fmt.Sprintf("old%06d", i), time.Now())
				}
				srv.saveDenyList()
				srv.mu.Unlock()
			}
			counted = recordBytes{}
			w0 := wchar(b)
			b.ResetTimer()
			for i := range b.N {
				if _, err := srv.deleteNode(fmt.Sprintf("off%06d", i)); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			w := wchar(b) - w0
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deletes/s")
			b.ReportMetric(float64(w)/float64(b.N), "written-B/delete")
			if members > 0 {
				b.ReportMetric(float64(counted.rotation)/float64(b.N), "rotation-rec-B/delete")
				b.ReportMetric(float64(counted.other)/float64(b.N), "other-rec-B/delete")
				b.ReportMetric(float64(counted.deny)/float64(b.N), "deny-rec-B/delete")
			}
		})
	}
}

// BenchmarkDeleteNodeOffline: delete node on a single server of N
// offline nodes (see benchDeletes).
func BenchmarkDeleteNodeOffline(b *testing.B) { benchDeletes(b, 0) }

// BenchmarkDeleteNodeOfflineGroup1 is the same on the leader of a group of
// one member (its own raft log, in this process).
func BenchmarkDeleteNodeOfflineGroup1(b *testing.B) { benchDeletes(b, 1) }

package server

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
)

// BenchmarkRegistryMemory is the server's live heap per enrolled node in
// steady state: a server loaded from a state directory with N enrolled,
// upgraded nodes (each with a replay mark and its used, expired token),
// none connected.
// The scale run (tools/cmd/momgate-scale) measures the same in the real daemon;
// this one runs in seconds and takes a heap profile:
//
//	go test -run '^$' -bench RegistryMemory -benchtime 1x -memprofile mem.out -memprofilerate 1 ./server
func BenchmarkRegistryMemory(b *testing.B) {
	const n = 10000
	dir := b.TempDir()
	if _, err := Init(dir, rand.Reader, time.Now()); err != nil {
		b.Fatal(err)
	}
	p, err := loadState(dir)
	if err != nil {
		b.Fatal(err)
	}
	marks, _, err := store.OpenMarkLog(dir)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	all := map[proto.NodeID]uint64{}
	for i := range n {
		var pub [32]byte
		if _, err := rand.Read(pub[:]); err != nil {
			b.Fatal(err)
		}
		id := uuid.New()
		all[proto.NodeID(id)] = uint64(now.UnixNano())
		// The node's used token, expired: pruned at load.
		tok := keys.TokenRecord{Node: fmt.Sprintf("sim%05d", i), Expires: now.Add(-time.Hour), Used: true}
		if _, err := rand.Read(tok.ID[:]); err != nil {
			b.Fatal(err)
		}
		p.Tokens = append(p.Tokens, tok)
		p.Nodes = append(p.Nodes, nodeRecord{Name: fmt.Sprintf("sim%05d", i), ID: id.String(), Mom: benchAddr(i), Port: DefaultMomPort,
			Pub: base64.StdEncoding.EncodeToString(pub[:]), Created: now, Enrolled: &now, Upgraded: true})
	}
	if err := marks.Compact(all); err != nil {
		b.Fatal(err)
	}
	if err := marks.Close(); err != nil {
		b.Fatal(err)
	}
	if err := saveState(dir, p); err != nil {
		b.Fatal(err)
	}
	p, all = persisted{}, nil
	log := logrus.New()
	log.SetOutput(os.Stderr)
	log.SetLevel(logrus.ErrorLevel)
	cfg := Config{StateDir: dir, Listen: "127.0.0.1:0", Log: log}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	b.ResetTimer()
	for range b.N {
		before := heap()
		srv, err := New(cfg)
		if err != nil {
			b.Fatal(err)
		}
		after := heap()
		b.ReportMetric(float64(int64(after)-int64(before))/n, "heap-B/node")
		if path := os.Getenv("MOMGATE_HEAP_PROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
				b.Fatal(err)
			}
			f.Close()
		}
		runtime.KeepAlive(srv)
		srv.base.Close()
		srv.states.close()
	}
}

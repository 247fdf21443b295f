package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// BenchmarkOnlineBackup: momgate-server backup (Backup, chunked over the
// admin socket) of a running single server of N enrolled nodes, and the
// restore of the file. Metrics: the backup file's size, backups/s.
//
//	go test -run '^$' -bench OnlineBackup -benchtime 3x ./server
//
// MOMGATE_BENCH_BACKUP_N overrides N (10,000); 160000 is a Fugaku-sized
// registry, over what one admin response carries.
func BenchmarkOnlineBackup(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("MOMGATE_BENCH_BACKUP_N")); err == nil && v > 0 {
		n = v
	}
	b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
		dir := offlineDir(b, n)
		srv := openServer(b, dir, nil)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		b.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				b.Errorf("server run: %v", err)
			}
		})
		srv.Addr() // Run has started: the admin socket is up
		out := filepath.Join(b.TempDir(), "state.backup")
		var size int64
		b.ResetTimer()
		for range b.N {
			bk, err := Backup(ctx, BackupConfig{StateDir: dir, Out: out, Force: true})
			if err != nil {
				b.Fatal(err)
			}
			if bk.Nodes != n {
				b.Fatalf("backup of %d nodes, want %d", bk.Nodes, n)
			}
			fi, err := os.Stat(out)
			if err != nil {
				b.Fatal(err)
			}
			size = fi.Size()
		}
		b.StopTimer()
		b.ReportMetric(float64(size)/(1<<20), "file-MiB")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "backups/s")
		if _, err := Restore(RestoreConfig{From: out, StateDir: filepath.Join(b.TempDir(), "restored"), Log: quietLog()}, func(string) {}); err != nil {
			b.Fatalf("restore: %v", err)
		}
	})
}

package member

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Adopt makes dir the raft state of a one-member group (name, voter,
// replication address addr) whose replicated state starts as snapshot:
// the state a server held before it had a group (docs/HA.md, upgrade in
// place). The snapshot is stored at index 1 with the configuration, as
// raft's RecoverCluster stores its own, so the log starts after it: a
// member added later is sent the snapshot, never an empty log replayed on
// an empty state. snapshot must be what the state machine's Snapshot
// writes. A dir that already holds a raft state is refused (ErrHasState).
func Adopt(dir, name, addr string, snapshot io.Reader) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("member dir %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("member dir %s: %w", dir, err)
	}
	logger := hclog.NewNullLogger()
	store, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, logFile),
		BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		return fmt.Errorf("open raft log in %s: %w", dir, err)
	}
	defer store.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(filepath.Join(dir, snapshotDir), 2, logger)
	if err != nil {
		return fmt.Errorf("open snapshots in %s: %w", dir, err)
	}
	has, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		return fmt.Errorf("adopt %s: %w", dir, err)
	}
	if has {
		return fmt.Errorf("adopt %s: %w", dir, ErrHasState)
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(name), Address: raft.ServerAddress(addr)}}}
	// The transport only encodes the peer list of old snapshot versions.
	_, enc := raft.NewInmemTransport(raft.ServerAddress(addr))
	defer enc.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, 1, 1, conf, 1, enc)
	if err != nil {
		return fmt.Errorf("adopt %s: create snapshot: %w", dir, err)
	}
	if _, err := io.Copy(sink, snapshot); err != nil {
		sink.Cancel()
		return fmt.Errorf("adopt %s: write snapshot: %w", dir, err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("adopt %s: finish snapshot: %w", dir, err)
	}
	return nil
}

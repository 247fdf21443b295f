package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/rotation"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// Online backup and restore (docs/DEPLOYMENT.md 14.4). A running member
// (leader or follower: every member holds the whole replica) or a single
// server answers the admin op backup with a copy of its state at one
// applied index: its identity and a snapshot of the replica in the
// sections raft sends a new member, each with its SHA-256. momgate-server
// backup writes the answer to a file; momgate-server restore makes a
// state directory of a single server of it, which run as a single server
// or upgrades in place into a new group's first member.

// ErrBackupExists: the backup file is there already and --force was not
// given.
var ErrBackupExists = errors.New("backup file exists")

// maxBackup bounds a backup so that its answer fits an admin response
// (base64 grows it by a third).
const maxBackup = admin.MaxResponse/4*3 - 1<<20

// backupOf is the backup of snap, a copy of the replica; identity.json is
// read from dir (it never changes while the daemon runs). whole: the
// backup is answered in one response, whose size bounds it.
func backupOf(dir string, snap *groupSnapshot, member string, now time.Time, whole bool) (*admin.Backup, error) {
	ident, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	var p persisted
	if err := strictjson.Decode(snap.meta, &p); err != nil {
		return nil, fmt.Errorf("backup: server record: %w", err)
	}
	var buf bytes.Buffer
	if _, err := snap.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	}
	if whole && buf.Len()+len(ident) > maxBackup {
		return nil, admin.Errorf(admin.CodeConflict, "the state is %d bytes, over the %d an online backup carries: "+
			"update momgate-server, whose backup reads it in chunks, or back up offline (stop a follower and copy its directory, docs/DEPLOYMENT.md 14.4)", buf.Len(), maxBackup)
	}
	b := &admin.Backup{Format: admin.BackupFormat, Created: now.UTC(), ServerID: p.ID, Member: member, Index: snap.applied,
		Members: []string{}, Nodes: len(snap.nodes), Identity: ident, Snapshot: buf.Bytes()}
	for _, m := range snap.members {
		if !m.Removed {
			b.Members = append(b.Members, m.Name)
		}
	}
	b.Seal()
	return b, nil
}

// decodeBackupArgs decodes OpBackup's arguments (none: the whole backup
// in one answer).
func decodeBackupArgs(raw []byte) (admin.BackupArgs, error) {
	var a admin.BackupArgs
	if len(bytes.TrimSpace(raw)) == 0 {
		return a, nil
	}
	return a, decodeStrictArgs(raw, &a)
}

// decodeStrictArgs decodes an admin op's arguments strictly (unknown
// fields and trailing data are errors) into v.
func decodeStrictArgs(raw []byte, v any) error {
	if err := strictjson.Decode(raw, v); err != nil {
		return admin.Errorf(admin.CodeBadRequest, "bad arguments: %v", err)
	}
	return nil
}

// answerBackup is OpBackup's answer: b itself, or with args.Chunked the
// start of its chunked reading from stash.
func answerBackup(stash *backupStash, args admin.BackupArgs, b *admin.Backup) (any, error) {
	if !args.Chunked {
		return b, nil
	}
	return stash.start(b)
}

// backup is the admin op backup on a group member, leader or follower: a
// copy of the replica as applied here.
func (g *groupRunner) backup(raw []byte) (any, error) {
	args, err := decodeBackupArgs(raw)
	if err != nil {
		return nil, err
	}
	snap, _ := g.state.Snapshot()
	b, err := backupOf(g.gc.Server.StateDir, snap.(*groupSnapshot), g.gc.Member, g.gc.Server.Now(), !args.Chunked)
	if err != nil {
		return nil, err
	}
	g.log.WithField("index", b.Index).WithField("nodes", b.Nodes).Info("online backup taken")
	return answerBackup(&g.backups, args, b)
}

// backup is the admin op backup on a single server: its records, taken
// under s.mu as one write would see them.
func (s *Server) backup(raw []byte) (any, error) {
	args, err := decodeBackupArgs(raw)
	if err != nil {
		return nil, err
	}
	// The rotation record and the registry at one instant: rotor.mu is
	// taken before s.mu (the lock order of rotation.go).
	s.rot.mu.Lock()
	rot, err := rotation.EncodeRecord(s.rot.store.record())
	var recs []replica.StateRecord
	if err == nil {
		s.mu.Lock()
		recs, err = s.allRecordsLocked(rot)
		s.mu.Unlock()
	}
	s.rot.mu.Unlock()
	if err != nil {
		return nil, err
	}
	g := newGroupState()
	if res := g.Apply(0, replica.Entry{Cmd: &replica.StateRecords{Why: "backup", Records: recs}}); res.Err != nil {
		return nil, res.Err
	}
	snap, _ := g.Snapshot()
	b, err := backupOf(s.cfg.StateDir, snap.(*groupSnapshot), "", s.cfg.Now(), !args.Chunked)
	if err != nil {
		return nil, err
	}
	s.log.WithField("nodes", b.Nodes).Info("online backup taken")
	return answerBackup(&s.backups, args, b)
}

// BackupConfig configures Backup.
type BackupConfig struct {
	StateDir string // the running daemon's state directory (its admin socket)
	Out      string // the backup file
	Force    bool   // replace Out if it exists
}

// Backup is momgate-server backup: it asks the daemon running on
// StateDir for a backup, checks it as restore will (format, checksums,
// every section decoded), and writes it to Out owner-only (0600) and
// atomically: a temporary file beside Out, synced, then linked to Out
// (renamed over it with Force), so Out is never a partial backup and an
// existing Out is never replaced without Force.
func Backup(ctx context.Context, bc BackupConfig) (*admin.Backup, error) {
	if !bc.Force {
		if _, err := os.Lstat(bc.Out); err == nil {
			return nil, fmt.Errorf("%s: %w: give another file, or --force to replace it", bc.Out, ErrBackupExists)
		}
	}
	c, err := admin.Dial(ctx, admin.SocketPath(bc.StateDir))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	raw, err := readChunkedBackup(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("backup of %s: %w", bc.StateDir, err)
	}
	b, err := checkBackup(raw)
	if err != nil {
		return nil, fmt.Errorf("the daemon's backup does not check: %w", err)
	}
	if err := writeNoClobber(bc.Out, raw, bc.Force); err != nil {
		return nil, err
	}
	return b, nil
}

// readChunkedBackup starts a chunked backup on the daemon and reads it
// whole: its bytes must come to the size and SHA-256 the start announced.
func readChunkedBackup(ctx context.Context, c *admin.Client) ([]byte, error) {
	var st admin.BackupStarted
	if err := c.Call(ctx, admin.OpBackup, admin.BackupArgs{Chunked: true}, &st); err != nil {
		return nil, err
	}
	if st.Size <= 0 || st.Size > maxChunkedBackup {
		return nil, fmt.Errorf("the daemon announced a backup of %d bytes", st.Size)
	}
	data := make([]byte, 0, st.Size)
	for int64(len(data)) < st.Size {
		var ch admin.BackupChunk
		if err := c.Call(ctx, admin.OpBackupChunk, admin.BackupChunkArgs{ID: st.ID, Offset: int64(len(data))}, &ch); err != nil {
			return nil, fmt.Errorf("read the backup at byte %d of %d: %w", len(data), st.Size, err)
		}
		if len(ch.Data) == 0 || int64(len(data)+len(ch.Data)) > st.Size {
			return nil, fmt.Errorf("read the backup at byte %d of %d: a chunk of %d bytes", len(data), st.Size, len(ch.Data))
		}
		data = append(data, ch.Data...)
	}
	if admin.SHA256Hex(data) != st.SHA256 {
		return nil, fmt.Errorf("%w: the backup read does not match the SHA-256 the daemon announced", admin.ErrBadBackup)
	}
	return data, nil
}

// checkBackup decodes a backup and checks its contents: the identity
// decodes, and the snapshot restores into a replica (every section
// checked by its file's decoder).
func checkBackup(data []byte) (*admin.Backup, error) {
	b, _, err := checkBackupReplica(data)
	return b, err
}

// checkBackupReplica is checkBackup that also returns the replica the
// snapshot restored into, for restore to write out: a backup of up to
// 1 GiB is decoded once, not twice.
func checkBackupReplica(data []byte) (*admin.Backup, *groupState, error) {
	b, err := admin.DecodeBackup(data)
	if err != nil {
		return nil, nil, err
	}
	if _, err := keys.DecodeIdentity(b.Identity); err != nil {
		return nil, nil, fmt.Errorf("%w: identity: %v", admin.ErrBadBackup, err)
	}
	g := newGroupState()
	if err := g.Restore(bytes.NewReader(b.Snapshot)); err != nil {
		return nil, nil, fmt.Errorf("%w: snapshot: %v", admin.ErrBadBackup, err)
	}
	if id := g.serverID(); id != b.ServerID {
		return nil, nil, fmt.Errorf("%w: server id %q in the snapshot, %q in the manifest", admin.ErrBadBackup, id, b.ServerID)
	}
	// What a start needs that a snapshot may lack: the keyring, with an
	// active key (restore would write a directory the server refuses).
	if _, ok := g.files[keyringFile]; !ok {
		return nil, nil, fmt.Errorf("%w: snapshot: no %s", admin.ErrBadBackup, keyringFile)
	}
	if err := checkKeyringFile(g.files[keyringFile]); err != nil {
		return nil, nil, fmt.Errorf("%w: snapshot: %s: %v", admin.ErrBadBackup, keyringFile, err)
	}
	// The counts and names beside the snapshot are outside its SHA-256:
	// they must be the snapshot's, or restore reports what it did not
	// restore.
	snap, err := g.Snapshot()
	if err != nil {
		return nil, nil, err
	}
	gs := snap.(*groupSnapshot)
	if len(gs.nodes) != b.Nodes {
		return nil, nil, fmt.Errorf("%w: %d nodes in the snapshot, %d in the manifest", admin.ErrBadBackup, len(gs.nodes), b.Nodes)
	}
	var members []string
	for _, m := range gs.members {
		if !m.Removed {
			members = append(members, m.Name)
		}
	}
	sort.Strings(members)
	listed := slices.Sorted(slices.Values(b.Members))
	if !slices.Equal(members, listed) {
		return nil, nil, fmt.Errorf("%w: members %q in the snapshot, %q in the manifest", admin.ErrBadBackup, members, listed)
	}
	return b, g, nil
}

// writeNoClobber writes data to path, mode 0600, atomically: a temporary
// file beside it, synced, then linked to path (which fails if path
// exists) or, with force, renamed over it; the directory is synced.
func writeNoClobber(path string, data []byte, force bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if force {
		err = os.Rename(tmp, path)
	} else if err = os.Link(tmp, path); errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s: %w: give another file, or --force to replace it", path, ErrBackupExists)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return statefile.SyncDir(dir)
}

// RestoreConfig configures Restore.
type RestoreConfig struct {
	From     string // the backup file
	StateDir string // the directory to make
	// Force restores into a directory that holds server state: it is
	// first moved into STATE_DIR/backup-UTCSTAMP/.
	Force bool
	Log   logrus.FieldLogger // nil: discarded
	Now   func() time.Time
}

// Restore is momgate-server restore: it checks the backup whole, then
// writes it into StateDir as the state directory of a single server:
// identity.json, state.json with an empty journal, keyring.json,
// rotation.json and deny.json as they were at the backup's index, and a
// manifest marked restored (replay marks are then treated as lost and
// recovered with a floor, as after any restore: docs/DEPLOYMENT.md 7).
// No raft/ and no group CA: run it as a single server, or with
// --replication-listen to upgrade it in place into a new group (its own
// new CA). A directory holding server state is refused unless Force,
// which moves that state aside first (backup reports where).
func Restore(rc RestoreConfig, backup func(string)) (*admin.Backup, error) {
	if rc.Log == nil { // what a start of the restored directory will log, it logs then
		l := logrus.New()
		l.SetOutput(io.Discard)
		rc.Log = l
	}
	if rc.Now == nil {
		rc.Now = time.Now
	}
	data, err := readBackupFile(rc.From, maxChunkedBackup)
	if err != nil {
		return nil, err
	}
	b, g, err := checkBackupReplica(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rc.From, err)
	}
	dir := rc.StateDir
	if err := restoreFiles(dir, b, g, rc, backup); err != nil {
		return nil, err
	}
	// The state file with its journal, as a leader writes it out.
	if err := g.materialize(dir, rc.Log); err != nil {
		return nil, err
	}
	// The manifest restoreFiles wrote is marked restored already.
	// What a start will decide, without starting: a start would consume
	// the restored mark (it recovers the replay marks then).
	if _, err := daemon.CheckState(dir, statecheck.RoleServer); err != nil {
		return nil, fmt.Errorf("the restored %s does not check: %w", dir, err)
	}
	return b, nil
}

// readBackupFile reads the backup file at path, which holds at most limit
// bytes (no backup the daemon hands out is larger): a larger file, or a
// stream such as /dev/zero, is refused instead of read into memory until
// the process dies. A pipe is read (restore --from <(gpg -d ...)).
func readBackupFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("%s: %w: a directory", path, admin.ErrBadBackup)
	}
	if fi.Mode().IsRegular() && fi.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes, over the %d of any backup", path, admin.ErrBadBackup, fi.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: over the %d bytes of any backup", path, admin.ErrBadBackup, limit)
	}
	return data, nil
}

// restoreFiles writes identity.json, the state files and the manifest
// into dir, which it locks and refuses (or, with Force, backs up) if it
// holds server state.
func restoreFiles(dir string, b *admin.Backup, g *groupState, rc RestoreConfig, backup func(string)) error {
	lock, err := lockForInit(dir)
	if err != nil {
		return err
	}
	defer lock.Release()
	// Refused by a start (a file others can reach, another owner), so
	// refused before a byte is written: not after writing the identity
	// and the keys into it.
	if err := statefile.CheckStateDir(dir); err != nil {
		return err
	}
	if err := moveStateAside(dir, "restore", "restore replaces it", rc.Force, rc.Now(), backup); err != nil {
		return err
	}
	write := func(name string, data []byte) error {
		return statefile.WriteAtomic(filepath.Join(dir, name), data, 0o600)
	}
	if err := write(identityFile, b.Identity); err != nil {
		return err
	}
	snap, _ := g.Snapshot()
	secs, err := snap.(*groupSnapshot).sections()
	if err != nil {
		return err
	}
	names := []string{identityFile}
	for _, s := range secs {
		if s.Name == membersSection {
			continue
		}
		if err := write(s.Name, s.Data); err != nil {
			return err
		}
		names = append(names, s.Name)
	}
	sort.Strings(names)
	// Marked restored from the start, not once the journals are written:
	// a restore killed in between would leave a whole directory whose
	// start takes the backup's replay marks as current.
	return store.SaveRestoredManifest(dir, statecheck.RoleServer.String(), names)
}

package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/momgate/momgate/internal/admin"
)

// A chunked online backup (admin.BackupArgs.Chunked): the daemon encodes
// the backup file once and hands its bytes out in chunks of at most
// admin.BackupChunkSize, so that a state too large for one admin response
// (a Fugaku-sized registry) is backed up online too. One backup is kept
// at a time, for backupStashTTL: a newer one replaces it, and it is
// dropped once its last chunk has been read.

// backupStashTTL is how long a started backup can be read.
const backupStashTTL = 5 * time.Minute

// maxChunkedBackup bounds a chunked backup (the registry's own bound,
// store.MaxJSONSize, is 64 MiB; the rest is keys, rotation, deny list and
// base64).
const maxChunkedBackup = 1 << 30

// backupStash is the started backup of one daemon. The zero value is
// ready; now is the daemon's clock (nil: time.Now).
type backupStash struct {
	mu     sync.Mutex
	id     string
	data   []byte
	expiry time.Time
	now    func() time.Time
	chunk  int // bytes per chunk; 0: admin.BackupChunkSize
}

func (st *backupStash) clock() time.Time {
	if st.now == nil {
		return time.Now()
	}
	return st.now()
}

// start keeps b's file bytes under a new id, replacing any backup started
// before.
func (st *backupStash) start(b *admin.Backup) (*admin.BackupStarted, error) {
	data, err := json.Marshal(b)
	if err != nil {
		return nil, err
	}
	if len(data) > maxChunkedBackup {
		return nil, admin.Errorf(admin.CodeConflict, "the backup is %d bytes, over the %d an online backup carries: "+
			"back up offline (stop a follower and copy its directory, docs/DEPLOYMENT.md 14.4)", len(data), maxChunkedBackup)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.id, st.data, st.expiry = hex.EncodeToString(raw[:]), data, st.clock().Add(backupStashTTL)
	return &admin.BackupStarted{ID: st.id, Size: int64(len(data)), SHA256: admin.SHA256Hex(data), Expiry: st.expiry.UTC(),
		Member: b.Member, Index: b.Index, Nodes: b.Nodes}, nil
}

// read answers admin.OpBackupChunk.
func (st *backupStash) read(raw json.RawMessage) (*admin.BackupChunk, error) {
	var a admin.BackupChunkArgs
	if err := decodeStrictArgs(raw, &a); err != nil {
		return nil, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.data != nil && st.clock().After(st.expiry) {
		st.id, st.data = "", nil
	}
	if st.data == nil || a.ID != st.id {
		return nil, admin.Errorf(admin.CodeBadValue, "no backup %q in progress here (expired after %s, replaced by a newer one, or read to its end): start it again", a.ID, backupStashTTL)
	}
	if a.Offset < 0 || a.Offset > int64(len(st.data)) {
		return nil, admin.Errorf(admin.CodeBadValue, "offset %d outside the backup's %d bytes", a.Offset, len(st.data))
	}
	n := st.chunk
	if n <= 0 {
		n = admin.BackupChunkSize
	}
	end := min(a.Offset+int64(n), int64(len(st.data)))
	out := &admin.BackupChunk{Data: st.data[a.Offset:end]} // never changed: a new backup replaces the slice
	if end == int64(len(st.data)) {
		st.id, st.data = "", nil
	}
	return out, nil
}

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
// at a time, for backupStashTTL: a newer one replaces it, it is dropped
// once every chunk has been read in order from the first, and a timer
// drops it at its expiry even if nobody reads it again (up to
// maxChunkedBackup of memory). A chunk read again, or out of order, does
// not end the backup: a client retrying a chunk, or a stray read of the
// last one, leaves it for its reader or its expiry.

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
	next   int64 // the end of the chunks read in order from offset 0
	expiry time.Time
	timer  *time.Timer // drops the backup at its expiry
	closed bool
	now    func() time.Time
	chunk  int           // bytes per chunk; 0: admin.BackupChunkSize
	ttl    time.Duration // the timer's delay; 0: backupStashTTL
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
	if st.closed {
		return nil, admin.Errorf(admin.CodeConflict, "the daemon is shutting down: start the backup again once it runs")
	}
	st.dropLocked()
	ttl := st.ttl
	if ttl <= 0 {
		ttl = backupStashTTL
	}
	id := hex.EncodeToString(raw[:])
	st.id, st.data, st.expiry = id, data, st.clock().Add(ttl)
	st.timer = time.AfterFunc(ttl, func() { st.expire(id) })
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
		st.dropLocked()
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
	if a.Offset == st.next {
		st.next = end
		if end == int64(len(st.data)) {
			st.dropLocked()
		}
	}
	return out, nil
}

// expire drops backup id if it is still the one kept (the timer's end).
func (st *backupStash) expire(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.id == id {
		st.dropLocked()
	}
}

// close drops the kept backup and stops its timer; a backup started after
// it is refused. The daemon calls it as it stops.
func (st *backupStash) close() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dropLocked()
	st.closed = true
}

// kept reports whether a backup is kept (tests).
func (st *backupStash) kept() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.data != nil
}

func (st *backupStash) dropLocked() {
	if st.timer != nil {
		st.timer.Stop()
		st.timer = nil
	}
	st.id, st.data, st.next = "", nil, 0
}

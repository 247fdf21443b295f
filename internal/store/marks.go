package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/proto"
)

// File names of a MarkLog inside its directory.
const (
	MarkSnapName = "marks.snap"
	MarkLogName  = "marks.log"
)

// MarkRecordSize is the size of one mark log record:
// node id (16) | timestamp (8, big-endian) | CRC-32C of the first 24 (4).
const MarkRecordSize = 28

// Snapshot format: SnapshotMagic | count (u32 BE) | count x (node id 16 |
// timestamp u64 BE), ids strictly increasing | CRC-32C (u32 BE) of all the
// preceding bytes.
const (
	SnapshotMagic    = "MGMARKS1"
	MaxSnapshotMarks = 1 << 22
	snapHeaderSize   = len(SnapshotMagic) + 4
	snapEntrySize    = 24
	maxSnapshotSize  = snapHeaderSize + MaxSnapshotMarks*snapEntrySize + 4
	// maxMarkLogSize caps the mark log read at open; the daemon compacts
	// long before (see LogSize).
	maxMarkLogSize = 1 << 30
)

// ErrClosed means the MarkLog or Journal was closed.
var ErrClosed = errors.New("mark log closed")

// MarkLog persists the replay guard's high-water marks: a snapshot
// (marks.snap, rewritten atomically by Compact) plus an append-only log
// (marks.log) of one record per admitted PING. It implements ping.MarkStore
// and is safe for concurrent use.
//
// Durability: Put is a single write(2) to the O_APPEND log, without fsync,
// so an acknowledged mark survives a crash or kill -9 of the process. It
// does not survive power loss until the next Sync: power loss can lose the
// marks written since the last Sync (the daemon calls Sync periodically;
// the freshness window bounds the exposure for a sender whose mark is
// lost). A record torn by such a loss is discarded on open.
type MarkLog struct {
	snapPath string
	logPath  string

	mu     sync.Mutex
	f      *os.File
	size   int64 // bytes of whole, valid records in the log
	broken error // a failed write left a partial record not yet removed
	buf    [MarkRecordSize]byte

	// Format 2 (OpenMarkStore): the log header, rewritten after every
	// append, and what the snapshot keeps besides the marks.
	v2         bool
	base       int64 // offset of the first record: MarkHeaderSize in format 2
	hdr        markHeader
	hbuf       [MarkHeaderSize]byte
	unvouched  map[proto.NodeID]struct{} // restored after a loss and not Put since
	recovering bool
	floor      uint64

	// writeHook replaces f.Write in tests that simulate a full disk.
	writeHook func(f *os.File, b []byte) (int, error)
}

// OpenMarkLog opens (creating if needed) the mark store in dir and returns
// it with the persisted marks: the maximum per node over the snapshot and
// the log. A torn last record is truncated away; a bad record before the
// last is an error wrapping ErrCorrupt that names the file and offset.
func OpenMarkLog(dir string) (*MarkLog, map[proto.NodeID]uint64, error) {
	m := &MarkLog{
		snapPath: filepath.Join(dir, MarkSnapName),
		logPath:  filepath.Join(dir, MarkLogName),
	}
	marks, err := m.loadSnapshot()
	if err != nil {
		return nil, nil, err
	}
	f, err := os.OpenFile(m.logPath, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open mark log %s: %w", m.logPath, err)
	}
	data, err := readAllCapped(f, maxMarkLogSize)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("read mark log %s: %w", m.logPath, err)
	}
	good, err := decodeMarkLog(data, marks)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("mark log %s: %w", m.logPath, err)
	}
	if good < int64(len(data)) {
		// Torn tail of a crash mid-append: drop it so appends stay aligned.
		if err := f.Truncate(good); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("truncate torn tail of mark log %s at offset %d: %w", m.logPath, good, err)
		}
	}
	// Make the log's directory entry durable, in case it was just created,
	// so that Sync really makes the marks survive power loss.
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, nil, err
	}
	m.f, m.size = f, good
	return m, marks, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open mark log directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync mark log directory %s: %w", dir, err)
	}
	return nil
}

func (m *MarkLog) loadSnapshot() (map[proto.NodeID]uint64, error) {
	data, err := readCapped(m.snapPath, int64(maxSnapshotSize))
	if errors.Is(err, fs.ErrNotExist) {
		return make(map[proto.NodeID]uint64), nil
	}
	if err != nil {
		return nil, fmt.Errorf("read mark snapshot %s: %w", m.snapPath, err)
	}
	marks, err := DecodeSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("mark snapshot %s: %w", m.snapPath, err)
	}
	return marks, nil
}

// Put appends node's new mark ts to the log with one write(2). It does not
// fsync (see Sync).
func (m *MarkLog) Put(node proto.NodeID, ts uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return fmt.Errorf("put mark to %s: %w", m.logPath, ErrClosed)
	}
	if m.broken != nil {
		if err := m.repair(); err != nil {
			return err
		}
	}
	encodeMarkRecord(m.buf[:], node, ts)
	var n int
	var err error
	if m.writeHook != nil {
		n, err = m.writeHook(m.f, m.buf[:])
	} else {
		n, err = m.f.Write(m.buf[:])
	}
	if err == nil && n != MarkRecordSize {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 {
			// A short write (disk full) left a partial record; cut it
			// off now or before the next append.
			m.broken = err
			_ = m.repair()
		}
		return fmt.Errorf("append mark to %s: %w", m.logPath, err)
	}
	m.size += MarkRecordSize
	if m.v2 {
		m.hdr.count++
		m.hdr.sum = crc32.Update(m.hdr.sum, castagnoli, m.buf[:])
		if err := m.writeHeader(); err != nil {
			return err
		}
		delete(m.unvouched, node)
	}
	return nil
}

// writeHeader rewrites the format 2 header in place. Called with mu held.
func (m *MarkLog) writeHeader() error {
	m.hdr.encode(m.hbuf[:])
	if _, err := m.f.WriteAt(m.hbuf[:], 0); err != nil {
		return fmt.Errorf("write header of mark log %s: %w", m.logPath, err)
	}
	return nil
}

// repair truncates the log back to its last whole record after a short
// write. Called with mu held.
func (m *MarkLog) repair() error {
	end := m.base + m.size
	if err := m.f.Truncate(end); err != nil {
		return fmt.Errorf("truncate partial record of mark log %s at offset %d (after %v): %w", m.logPath, end, m.broken, err)
	}
	if m.v2 {
		// No O_APPEND in format 2: the next record goes where this one began.
		if _, err := m.f.Seek(end, io.SeekStart); err != nil {
			return fmt.Errorf("seek mark log %s to offset %d: %w", m.logPath, end, err)
		}
	}
	m.broken = nil
	return nil
}

// Sync fsyncs the log, making every mark Put so far survive power loss.
// It does not block Put.
func (m *MarkLog) Sync() error {
	m.mu.Lock()
	f := m.f
	m.mu.Unlock()
	if f == nil {
		return fmt.Errorf("sync mark log %s: %w", m.logPath, ErrClosed)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync mark log %s: %w", m.logPath, err)
	}
	return nil
}

// LogSize returns the size of the log in bytes; the daemon compacts when
// it grows past a threshold (1 MiB is about 37,000 marks).
func (m *MarkLog) LogSize() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.size
}

// Compact replaces the snapshot with marks merged (maximum per node) with
// every record in the log, then empties the log. Pass the guard's current
// marks (ping.Guard.Snapshot): nodes absent from both marks and the log are
// dropped from the store, as the guard dropped them from memory.
//
// The snapshot is written atomically and durably before the log is
// truncated, so a crash at any point reloads to the same maxima. Put is
// blocked for the duration (one small file write and two fsyncs), so call
// it from a background goroutine, not the admission path.
func (m *MarkLog) Compact(marks map[proto.NodeID]uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return fmt.Errorf("compact mark log %s: %w", m.logPath, ErrClosed)
	}
	if m.broken != nil {
		if err := m.repair(); err != nil {
			return err
		}
	}
	data := make([]byte, m.size)
	if _, err := m.f.ReadAt(data, m.base); err != nil {
		return fmt.Errorf("compact: read mark log %s: %w", m.logPath, err)
	}
	merged := make(map[proto.NodeID]uint64, len(marks))
	for n, ts := range marks {
		merged[n] = ts
	}
	good, err := decodeMarkLog(data, merged)
	if err != nil {
		return fmt.Errorf("compact: mark log %s: %w", m.logPath, err)
	}
	if good != m.size {
		return fmt.Errorf("compact: mark log %s: %w: torn record at offset %d", m.logPath, ErrCorrupt, good)
	}
	if m.v2 {
		return m.compact2(merged)
	}
	snap, err := EncodeSnapshot(merged)
	if err != nil {
		return fmt.Errorf("compact mark log into %s: %w", m.snapPath, err)
	}
	if err := statefile.WriteAtomic(m.snapPath, snap, 0o600); err != nil {
		return fmt.Errorf("compact: write mark snapshot %s: %w", m.snapPath, err)
	}
	// The snapshot now holds every mark of the log; a crash before or
	// after the truncation reloads the same maxima.
	if err := m.f.Truncate(0); err != nil {
		return fmt.Errorf("compact: truncate mark log %s: %w", m.logPath, err)
	}
	m.size = 0
	return nil
}

// Close fsyncs and closes the log. Put, Sync and Compact fail afterwards.
func (m *MarkLog) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.f == nil {
		return fmt.Errorf("close mark log %s: %w", m.logPath, ErrClosed)
	}
	var herr error
	if m.v2 {
		// Closed cleanly: the next open need not ask whether the machine
		// went down with appends unsynced.
		m.hdr.open = false
		herr = m.writeHeader()
	}
	serr := m.f.Sync()
	cerr := m.f.Close()
	m.f = nil
	if herr != nil {
		return herr
	}
	if serr != nil {
		return fmt.Errorf("sync mark log %s: %w", m.logPath, serr)
	}
	if cerr != nil {
		return fmt.Errorf("close mark log %s: %w", m.logPath, cerr)
	}
	return nil
}

// encodeMarkRecord writes one log record into dst[:MarkRecordSize].
func encodeMarkRecord(dst []byte, node proto.NodeID, ts uint64) {
	_ = dst[MarkRecordSize-1]
	copy(dst[:16], node[:])
	binary.BigEndian.PutUint64(dst[16:24], ts)
	binary.BigEndian.PutUint32(dst[24:28], crcOf(dst[:24]))
}

// decodeMarkLog merges the records of data into marks (maximum per node)
// and returns the length of the valid prefix. The tail after it is torn
// (a partial record, a bad final record, or bad records that are all zero
// bytes, as a power loss leaves them) and is not an error; a bad record
// followed by anything else is an error wrapping ErrCorrupt with its offset.
func decodeMarkLog(data []byte, marks map[proto.NodeID]uint64) (int64, error) {
	off := 0
	for ; off+MarkRecordSize <= len(data); off += MarkRecordSize {
		rec := data[off : off+MarkRecordSize]
		if binary.BigEndian.Uint32(rec[24:]) != crcOf(rec[:24]) {
			if off+MarkRecordSize == len(data) || allZero(data[off:]) {
				return int64(off), nil
			}
			return int64(off), fmt.Errorf("%w: bad record checksum at offset %d", ErrCorrupt, off)
		}
		var node proto.NodeID
		copy(node[:], rec[:16])
		ts := binary.BigEndian.Uint64(rec[16:24])
		if old, ok := marks[node]; !ok || ts > old {
			marks[node] = ts
		}
	}
	return int64(off), nil
}

// EncodeSnapshot encodes marks in the snapshot format, ids in increasing
// order. It fails if there are more than MaxSnapshotMarks.
func EncodeSnapshot(marks map[proto.NodeID]uint64) ([]byte, error) {
	if len(marks) > MaxSnapshotMarks {
		return nil, fmt.Errorf("%d marks exceed the snapshot limit of %d", len(marks), MaxSnapshotMarks)
	}
	ids := make([]proto.NodeID, 0, len(marks))
	for n := range marks {
		ids = append(ids, n)
	}
	slices.SortFunc(ids, func(a, b proto.NodeID) int { return bytes.Compare(a[:], b[:]) })
	out := make([]byte, snapHeaderSize, snapHeaderSize+len(ids)*snapEntrySize+4)
	copy(out, SnapshotMagic)
	binary.BigEndian.PutUint32(out[len(SnapshotMagic):], uint32(len(ids)))
	for _, n := range ids {
		out = append(out, n[:]...)
		out = binary.BigEndian.AppendUint64(out, marks[n])
	}
	return binary.BigEndian.AppendUint32(out, crcOf(out)), nil
}

// DecodeSnapshot strictly decodes a snapshot: magic, exact length for its
// count (at most MaxSnapshotMarks), ids strictly increasing, checksum. Any
// violation is an error wrapping ErrCorrupt.
func DecodeSnapshot(data []byte) (map[proto.NodeID]uint64, error) {
	if len(data) < snapHeaderSize+4 {
		return nil, fmt.Errorf("%w: snapshot of %d bytes is too short", ErrCorrupt, len(data))
	}
	if string(data[:len(SnapshotMagic)]) != SnapshotMagic {
		return nil, fmt.Errorf("%w: bad snapshot magic %q", ErrCorrupt, data[:len(SnapshotMagic)])
	}
	count := binary.BigEndian.Uint32(data[len(SnapshotMagic):snapHeaderSize])
	if count > MaxSnapshotMarks {
		return nil, fmt.Errorf("%w: snapshot count %d exceeds %d", ErrCorrupt, count, MaxSnapshotMarks)
	}
	if want := snapHeaderSize + int(count)*snapEntrySize + 4; len(data) != want {
		return nil, fmt.Errorf("%w: snapshot of %d marks is %d bytes, want %d", ErrCorrupt, count, len(data), want)
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crcOf(body) != sum {
		return nil, fmt.Errorf("%w: bad snapshot checksum", ErrCorrupt)
	}
	marks := make(map[proto.NodeID]uint64, count)
	var prev proto.NodeID
	for i := 0; i < int(count); i++ {
		e := body[snapHeaderSize+i*snapEntrySize:]
		var n proto.NodeID
		copy(n[:], e[:16])
		if i > 0 && bytes.Compare(n[:], prev[:]) <= 0 {
			return nil, fmt.Errorf("%w: snapshot entry %d out of order", ErrCorrupt, i)
		}
		marks[n] = binary.BigEndian.Uint64(e[16:24])
		prev = n
	}
	return marks, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// readAllCapped reads f from its current offset, refusing more than max.
func readAllCapped(f *os.File, max int64) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w (max %d bytes)", ErrTooLarge, max)
	}
	return data, nil
}

package store

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/strictjson"
)

// A Journal is the append-only companion of a JSON snapshot: each change to
// a keyed record (a node, a token, the server's attributes) is one line, so
// a change costs bytes proportional to the record, not to the whole state.
// Loading replays the journal over the snapshot; Compact folds it back in.
//
// Line format: 8 lowercase hex digits of the CRC-32C of the JSON that
// follows, one space, one JSON object {"kind":K,"key":ID,"value":V} or
// {"kind":K,"key":ID,"deleted":true}, a newline. A torn last line (a crash
// during the append) is dropped on open; a bad line before the last is
// ErrCorrupt with its offset.
//
// Durability: Append writes and fsyncs before it returns.
type Journal struct {
	path string

	mu     sync.Mutex
	f      *os.File
	size   int64 // bytes of whole lines after the header
	broken bool

	// Format 2 (ReadStateJournal): the header line at the start, rewritten
	// in place by every append and fold.
	v2   bool
	base int64 // JournalHeaderSize in format 2, 0 in format 1
	hdr  journalHeader
}

// JournalRecord is one change: the record of Kind and Key now has Value, or
// no longer exists (Deleted).
type JournalRecord struct {
	Kind    string          `json:"kind"`
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
}

// MaxJournalSize caps the journal read at open. Daemons compact long before.
const MaxJournalSize = 256 << 20

// maxJournalLine caps one record's line.
const maxJournalLine = 1 << 20

// OpenJournal opens (creating if needed, mode 0600) the journal at path and
// returns it with its records in order.
func OpenJournal(path string) (*Journal, []JournalRecord, error) {
	data, err := readCapped(path, MaxJournalSize)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	recs, valid, err := DecodeJournal(data)
	if err != nil {
		return nil, nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	if data == nil {
		// A new file: make its directory entry durable too.
		if err := statefile.SyncDir(filepath.Dir(path)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("open journal %s: %w", path, err)
		}
	}
	if valid != len(data) {
		// A torn tail: drop it so the next append starts on a line boundary.
		if err := f.Truncate(int64(valid)); err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("truncate torn tail of journal %s: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(valid), 0); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("open journal %s: %w", path, err)
	}
	return &Journal{path: path, f: f, size: int64(valid)}, recs, nil
}

// DecodeJournal parses journal bytes. It returns the records and the length
// of the prefix made of whole valid lines. Only the last line may be torn
// (no newline, or a newline-less bad checksum); anything else is ErrCorrupt.
func DecodeJournal(data []byte) ([]JournalRecord, int, error) {
	var recs []JournalRecord
	off := 0
	for off < len(data) {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			return recs, off, nil // torn tail
		}
		line := data[off : off+nl]
		rec, err := decodeJournalLine(line)
		if err != nil {
			return nil, 0, fmt.Errorf("%w: offset %d: %v", ErrCorrupt, off, err)
		}
		recs = append(recs, rec)
		off += nl + 1
	}
	return recs, off, nil
}

func decodeJournalLine(line []byte) (JournalRecord, error) {
	var rec JournalRecord
	if len(line) < 10 || line[8] != ' ' {
		return rec, errors.New("line too short or no checksum")
	}
	if len(line) > maxJournalLine {
		return rec, errors.New("line too long")
	}
	var sum [4]byte
	if _, err := hex.Decode(sum[:], line[:8]); err != nil {
		return rec, fmt.Errorf("checksum: %v", err)
	}
	body := line[9:]
	if got := crcOf(body); got != uint32(sum[0])<<24|uint32(sum[1])<<16|uint32(sum[2])<<8|uint32(sum[3]) {
		return rec, fmt.Errorf("checksum mismatch (computed %08x)", got)
	}
	if err := strictjson.Decode(body, &rec); err != nil {
		return rec, err
	}
	if rec.Kind == "" || rec.Key == "" {
		return rec, errors.New("record without kind or key")
	}
	if rec.Deleted == (len(rec.Value) != 0) {
		return rec, errors.New("record must have exactly one of value and deleted")
	}
	return rec, nil
}

// AppendJournalLine appends the encoded line of rec to dst.
func AppendJournalLine(dst []byte, rec JournalRecord) ([]byte, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return dst, fmt.Errorf("encode journal record %s/%s: %w", rec.Kind, rec.Key, err)
	}
	dst = fmt.Appendf(dst, "%08x ", crcOf(body))
	dst = append(dst, body...)
	return append(dst, '\n'), nil
}

// Append writes recs as one write and fsyncs. On error nothing of recs is
// considered written: a partial write is cut off before the next append.
func (j *Journal) Append(recs []JournalRecord) error {
	if len(recs) == 0 {
		return nil
	}
	var buf []byte
	for _, r := range recs {
		var err error
		if buf, err = AppendJournalLine(buf, r); err != nil {
			return err
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("append journal %s: %w", j.path, ErrClosed)
	}
	if j.broken {
		if err := j.f.Truncate(j.base + j.size); err != nil {
			return fmt.Errorf("append journal %s: cut partial write: %w", j.path, err)
		}
		if _, err := j.f.Seek(j.base+j.size, 0); err != nil {
			return fmt.Errorf("append journal %s: %w", j.path, err)
		}
		j.broken = false
	}
	if _, err := j.f.Write(buf); err != nil {
		j.broken = true
		return fmt.Errorf("append journal %s: %w", j.path, err)
	}
	hdr := j.hdr
	if j.v2 {
		// The header vouches for the new lines before the one fsync that
		// makes both durable and acknowledges them: lines found after the
		// header's count were never acknowledged.
		hdr.count += uint64(len(recs))
		hdr.sum = crc32.Update(hdr.sum, castagnoli, buf)
		if err := j.writeHeader(hdr); err != nil {
			j.broken = true
			return err
		}
	}
	if err := j.f.Sync(); err != nil {
		j.broken = true
		return fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	j.hdr = hdr
	j.size += int64(len(buf))
	return nil
}

// Size is the journal's length in bytes.
func (j *Journal) Size() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// Reset empties the journal, after its records have been folded into a
// snapshot that was written durably. A crash between the snapshot and the
// reset is harmless: replaying the old journal over the new snapshot yields
// the same state, since every record sets a key to its final value.
func (j *Journal) Reset() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("reset journal %s: %w", j.path, ErrClosed)
	}
	if j.v2 {
		return fmt.Errorf("reset journal %s: %w", j.path, ErrUseFold)
	}
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("reset journal %s: %w", j.path, err)
	}
	if _, err := j.f.Seek(0, 0); err != nil {
		return fmt.Errorf("reset journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("reset journal %s: %w", j.path, err)
	}
	j.size, j.broken = 0, false
	return nil
}

// Close closes the journal file.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.f.Close()
	j.f = nil
	return err
}

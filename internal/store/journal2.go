package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/statecheck"
)

// Format 2 of the journal (docs/SECURITY.md section 7) starts with one
// fixed-width header line, rewritten in place before the fsync of every
// append, so the journal says how many lines it holds and a cut at a line
// boundary is seen; and it names the checksum of the snapshot it follows,
// so a snapshot deleted, replaced or restored alone is seen too:
//
//	MGJOURNAL2 gen=G count=N sum=S snap=C pend=P hcrc=H
//
// G (16 hex digits) counts folds; N (16) the lines after the header; S (8)
// is the CRC-32C of those lines' bytes; C (8) the CRC-32C of the snapshot
// the lines apply to; P (8, or "--------") that of a snapshot being
// written by a fold not yet complete; H (8) the CRC-32C of the line up to
// " hcrc=". Lines after the header are format 1 lines.
const (
	JournalMagic      = "MGJOURNAL2"
	JournalHeaderSize = len("MGJOURNAL2 gen=0000000000000000 count=0000000000000000 sum=00000000 snap=00000000 pend=00000000 hcrc=00000000\n")
	noPending         = "--------"
)

// ErrUseFold means Reset was called on a format 2 journal, whose snapshot
// must be written through Fold so that the journal can vouch for it.
var ErrUseFold = errors.New("a format 2 journal is emptied by Fold, which writes its snapshot")

type journalHeader struct {
	gen, count uint64
	sum, snap  uint32
	pend       uint32
	pending    bool
}

func (h journalHeader) encode() []byte {
	pend := noPending
	if h.pending {
		pend = fmt.Sprintf("%08x", h.pend)
	}
	b := fmt.Appendf(nil, "%s gen=%016x count=%016x sum=%08x snap=%08x pend=%s", JournalMagic, h.gen, h.count, h.sum, h.snap, pend)
	return fmt.Appendf(b, " hcrc=%08x\n", crcOf(b))
}

// decodeJournalHeader strictly decodes a header line; errors wrap
// ErrCorrupt.
func decodeJournalHeader(b []byte) (journalHeader, error) {
	var h journalHeader
	if len(b) < JournalHeaderSize || b[JournalHeaderSize-1] != '\n' {
		return h, fmt.Errorf("%w: journal header shorter than %d bytes", ErrCorrupt, JournalHeaderSize)
	}
	line := b[:JournalHeaderSize-1]
	body, sum, ok := bytes.Cut(line, []byte(" hcrc="))
	if !ok || len(sum) != 8 {
		return h, fmt.Errorf("%w: journal header without its checksum", ErrCorrupt)
	}
	if want, err := strconv.ParseUint(string(sum), 16, 32); err != nil || uint32(want) != crcOf(body) {
		return h, fmt.Errorf("%w: bad journal header checksum", ErrCorrupt)
	}
	fields := bytes.Fields(body)
	if len(fields) != 6 || string(fields[0]) != JournalMagic {
		return h, fmt.Errorf("%w: bad journal header %q", ErrCorrupt, line)
	}
	var err error
	get := func(f []byte, key string, width int) uint64 {
		v, found := bytes.CutPrefix(f, []byte(key+"="))
		if !found || len(v) != width || err != nil {
			err = fmt.Errorf("%w: journal header field %q", ErrCorrupt, f)
			return 0
		}
		n, perr := strconv.ParseUint(string(v), 16, 64)
		if perr != nil || !bytes.Equal(bytes.ToLower(v), v) { // canonical: lowercase, as written
			err = fmt.Errorf("%w: journal header field %q", ErrCorrupt, f)
		}
		return n
	}
	h.gen = get(fields[1], "gen", 16)
	h.count = get(fields[2], "count", 16)
	h.sum = uint32(get(fields[3], "sum", 8))
	h.snap = uint32(get(fields[4], "snap", 8))
	if string(fields[5]) != "pend="+noPending {
		h.pend, h.pending = uint32(get(fields[5], "pend", 8)), true
	}
	if err != nil {
		return journalHeader{}, err
	}
	return h, nil
}

// JournalOptions tell ReadStateJournal what it cannot see for itself.
type JournalOptions struct {
	// Snapshot is the path of the JSON snapshot the journal applies to.
	Snapshot string
	// Expect means the directory's manifest lists the journal.
	Expect bool
}

// JournalState is what ReadStateJournal found: the records that apply
// over the snapshot, and the findings for statecheck.
type JournalState struct {
	Records  []JournalRecord
	Findings []statecheck.Finding
	// Checked is what the journal's schema built from the snapshot and
	// the records (RegisterJournalSchema), nil if it did not run: the
	// start takes it, and clears it, instead of loading them again.
	Checked any

	path     string
	snapshot string
	format   int // 0 none, 1, 2
	hdr      journalHeader
	valid    int    // bytes of the records that count (after the header)
	snapSum  uint32 // CRC-32C of the snapshot file as found
	haveSnap bool
}

func (js *JournalState) find(file string, p statecheck.Problem, format string, args ...any) {
	js.Findings = append(js.Findings, statecheck.Finding{File: file, Problem: p, Detail: fmt.Sprintf(format, args...)})
}

// ReadStateJournal reads the journal at path, of format 1 or 2, and the
// checksum of its snapshot, without writing anything, and reports what it
// found: missing, damaged, cut at a line boundary or in a line, emptied, a
// snapshot that is not the one the journal follows, an old format. Only
// an I/O error other than a missing file is an error.
func ReadStateJournal(path string, opt JournalOptions) (*JournalState, error) {
	js := &JournalState{path: path, snapshot: opt.Snapshot}
	jname, sname := filepath.Base(path), filepath.Base(opt.Snapshot)
	snap, err := readCapped(opt.Snapshot, MaxJSONSize)
	switch {
	case err == nil:
		js.haveSnap, js.snapSum = true, crcOf(snap)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("read journal snapshot %s: %w", opt.Snapshot, err)
	}
	data, err := readCapped(path, MaxJournalSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if opt.Expect {
			js.find(jname, statecheck.Missing, "the manifest lists it")
		}
		return js, nil
	case err != nil:
		return nil, fmt.Errorf("read journal %s: %w", path, err)
	}
	if len(data) == 0 && opt.Expect {
		js.find(jname, statecheck.Truncated, "emptied: no format 2 header")
		return js, nil
	}
	if !bytes.HasPrefix(data, []byte(JournalMagic+" ")) {
		js.readJournal1(data, jname, opt)
		return js, nil
	}
	js.format = 2
	h, err := decodeJournalHeader(data)
	if err != nil {
		js.find(jname, statecheck.Damaged, "%v", err)
		return js, nil
	}
	js.hdr = h
	rest := data[JournalHeaderSize:]
	off := 0
	for i := uint64(0); i < h.count; i++ {
		nl := bytes.IndexByte(rest[off:], '\n')
		if nl < 0 {
			if bytes.IndexByte(rest[off:], 0) >= 0 {
				js.find(jname, statecheck.Damaged, "line %d of the %d the header vouches for, at byte %d: zeroed", i, h.count, JournalHeaderSize+off)
				return js, nil
			}
			js.find(jname, statecheck.Truncated, "the header vouches for %d lines, %d are whole: cut at byte %d", h.count, i, JournalHeaderSize+len(rest))
			return js, nil
		}
		rec, err := decodeJournalLine(rest[off : off+nl])
		if err != nil {
			what := err.Error()
			if allZero(rest[off:]) {
				what = "zeroed from there on"
			}
			js.find(jname, statecheck.Damaged, "line %d of the %d the header vouches for, at byte %d: %s", i, h.count, JournalHeaderSize+off, what)
			return js, nil
		}
		js.Records = append(js.Records, rec)
		off += nl + 1
	}
	if crc32.Checksum(rest[:off], castagnoli) != h.sum {
		js.find(jname, statecheck.Damaged, "its %d lines do not match the header's checksum", h.count)
		return js, nil
	}
	js.valid = off // anything after: an append killed before its header, never acknowledged
	switch {
	case !js.haveSnap:
		js.find(sname, statecheck.Missing, "%s follows a snapshot (checksum %08x)", jname, h.snap)
	case js.snapSum != h.snap && !(h.pending && js.snapSum == h.pend):
		js.find(sname, statecheck.Inconsistent, "checksum %08x, %s follows %08x", js.snapSum, jname, h.snap)
	}
	return js, nil
}

// readJournal1 reads a format 1 journal (no header).
func (js *JournalState) readJournal1(data []byte, jname string, opt JournalOptions) {
	js.format = 1
	if opt.Expect {
		js.find(jname, statecheck.Damaged, "no format 2 header")
		return
	}
	recs, valid, err := DecodeJournal(data)
	switch {
	case err != nil:
		js.find(jname, statecheck.Damaged, "%v", err)
	case valid < len(data):
		js.Records = recs
		js.find(jname, statecheck.Truncated, "format 1 journal with a torn final line at byte %d: a crash and a damaged line look alike", valid)
	default:
		js.Records, js.valid = recs, valid
		js.find(jname, statecheck.Upgraded, "format 1, %d lines", len(recs))
	}
}

// Open returns the writer of the journal js was read from, in format 2:
// a format 1 or missing journal is rewritten (atomically) with a header
// naming the snapshot as found; lines after the header's count (never
// acknowledged) are cut; a fold interrupted after its snapshot was written
// is completed. Call it only with the state directory locked and when the
// findings allowed the start.
func (js *JournalState) Open() (*Journal, error) {
	j := &Journal{path: js.path, v2: true, base: int64(JournalHeaderSize)}
	if js.format != 2 {
		var body []byte
		for _, r := range js.Records {
			var err error
			if body, err = AppendJournalLine(body, r); err != nil {
				return nil, err
			}
		}
		h := journalHeader{count: uint64(len(js.Records)), sum: crcOf(body), snap: js.snapSum}
		if err := statefile.WriteAtomic(js.path, append(h.encode(), body...), 0o600); err != nil {
			return nil, fmt.Errorf("rewrite journal %s in format 2: %w", js.path, err)
		}
		js.format, js.hdr, js.valid = 2, h, len(body)
	}
	f, err := os.OpenFile(js.path, os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal %s: %w", js.path, err)
	}
	j.f, j.hdr, j.size = f, js.hdr, int64(js.valid)
	if err := f.Truncate(j.base + j.size); err != nil {
		f.Close()
		return nil, fmt.Errorf("cut unacknowledged lines of journal %s: %w", js.path, err)
	}
	if js.hdr.pending && js.haveSnap && js.snapSum == js.hdr.pend && js.snapSum != js.hdr.snap {
		// Killed between a fold's snapshot and its reset: finish it.
		if err := j.reset(js.snapSum); err != nil {
			f.Close()
			return nil, err
		}
	}
	if _, err := f.Seek(j.base+j.size, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("open journal %s: %w", js.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync journal %s: %w", js.path, err)
	}
	return j, nil
}

// writeHeader rewrites the format 2 header in place (not synced). Called
// with mu held.
func (j *Journal) writeHeader(h journalHeader) error {
	if _, err := j.f.WriteAt(h.encode(), 0); err != nil {
		return fmt.Errorf("write header of journal %s: %w", j.path, err)
	}
	return nil
}

// Fold writes data as the journal's snapshot at snapPath (atomically,
// with mode perm) and empties the journal, so that a crash at any point
// leaves a snapshot the journal vouches for: first the header names the
// snapshot being written and is synced, then the snapshot is written,
// then the journal is emptied under a header of the next generation
// naming it.
func (j *Journal) Fold(snapPath string, data []byte, perm os.FileMode) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return fmt.Errorf("fold journal %s: %w", j.path, ErrClosed)
	}
	if !j.v2 {
		return fmt.Errorf("fold journal %s: a format 1 journal has no header to vouch for its snapshot", j.path)
	}
	sum := crcOf(data)
	h := j.hdr
	h.pend, h.pending = sum, true
	if err := j.writeHeader(h); err != nil {
		return err
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	j.hdr = h
	if err := statefile.WriteAtomic(snapPath, data, perm); err != nil {
		return fmt.Errorf("fold journal %s: %w", j.path, err)
	}
	return j.reset(sum)
}

// reset empties the journal under a header of the next generation naming
// the snapshot with checksum snap, and syncs it. Called with mu held.
func (j *Journal) reset(snap uint32) error {
	if err := j.f.Truncate(j.base); err != nil {
		return fmt.Errorf("reset journal %s: %w", j.path, err)
	}
	h := journalHeader{gen: j.hdr.gen + 1, snap: snap}
	if err := j.writeHeader(h); err != nil {
		return err
	}
	if _, err := j.f.Seek(j.base, 0); err != nil {
		return fmt.Errorf("reset journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("sync journal %s: %w", j.path, err)
	}
	j.hdr, j.size, j.broken = h, 0, false
	return nil
}

// EncodeJSON is the encoding SaveJSON writes, for a snapshot written by
// Journal.Fold.
func EncodeJSON(v any) ([]byte, error) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(data, '\n'), nil
}

package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"syscall"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/statecheck"
)

// MarkOptions tell ReadMarkStore what it cannot see for itself.
type MarkOptions struct {
	// Expect means the directory's manifest lists the mark store, so its
	// absence is a loss rather than a first start.
	Expect bool
	// Boot is BootID(); zero proves nothing, so a log left open is then
	// not provably whole.
	Boot [16]byte
}

// MarkState is what ReadMarkStore found: the marks (the maximum per
// sender of everything readable, also when something was lost: they stay
// lower bounds), the recovery state a previous loss left, and the
// findings for statecheck.
type MarkState struct {
	Marks      map[proto.NodeID]uint64
	Unvouched  map[proto.NodeID]struct{}
	Recovering bool
	Floor      uint64
	Findings   []statecheck.Finding

	snapGen uint64 // generation of the snapshot read (0: none or format 1)
	logGen  uint64 // generation the log header names (0: none or format 1)
}

// Recovery returns the guard's recovery state (ping.GuardConfig.Recovery).
func (s *MarkState) Recovery() ping.Recovery {
	if !s.Recovering {
		return ping.Recovery{}
	}
	return ping.Recovery{Active: true, Floor: s.Floor, Unvouched: maps.Clone(s.Unvouched)}
}

// Lost reports whether a finding other than an upgrade was made.
func (s *MarkState) Lost() bool {
	for _, f := range s.Findings {
		if f.Problem != statecheck.Upgraded {
			return true
		}
	}
	return false
}

func (s *MarkState) find(file string, p statecheck.Problem, format string, args ...any) {
	s.Findings = append(s.Findings, statecheck.Finding{File: file, Problem: p, Detail: fmt.Sprintf(format, args...)})
}

// ReadMarkStore reads the mark store in dir, of format 1 or 2, without
// writing anything, and reports what it found: a snapshot or log missing,
// damaged, cut short, emptied or zeroed, a log left open by a machine that
// went down, generations that disagree, an old format. Only an I/O error
// other than a missing file is an error.
func ReadMarkStore(dir string, opt MarkOptions) (*MarkState, error) {
	st := &MarkState{Marks: map[proto.NodeID]uint64{}, Unvouched: map[proto.NodeID]struct{}{}}
	snapPath, logPath := filepath.Join(dir, MarkSnapName), filepath.Join(dir, MarkLogName)
	snapData, err := readCapped(snapPath, int64(max(maxSnapshotSize, maxSnapshot2Size)))
	haveSnap := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, ErrTooLarge):
		haveSnap = true
		st.find(MarkSnapName, statecheck.Damaged, "%v", err)
	case err != nil:
		return nil, fmt.Errorf("read mark snapshot %s: %w", snapPath, err)
	}
	var snap *markSnapshot
	if haveSnap && snapData != nil {
		if snap, err = decodeAnySnapshot(snapData); err != nil {
			st.find(MarkSnapName, statecheck.Damaged, "%v", err)
			snap = nil
		}
	}
	if snap != nil {
		maps.Copy(st.Marks, snap.marks)
		if snap.format == 1 {
			st.find(MarkSnapName, statecheck.Upgraded, "format 1, %d marks", len(snap.marks))
		} else {
			st.snapGen, st.Recovering, st.Floor = snap.gen, snap.recovering, snap.floor
			maps.Copy(st.Unvouched, snap.unvouched)
		}
	}
	logData, err := readCapped(logPath, maxMarkLogSize)
	haveLog := err == nil
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read mark log %s: %w", logPath, err)
	}
	switch {
	case !haveSnap && !haveLog:
		if opt.Expect {
			st.find(MarkSnapName, statecheck.Missing, "the manifest lists the mark store")
			st.find(MarkLogName, statecheck.Missing, "the manifest lists the mark store")
		}
	case !haveLog:
		st.find(MarkLogName, statecheck.Missing, "%s exists, so the log did too", MarkSnapName)
	case len(logData) >= len(MarkLogMagic) && string(logData[:len(MarkLogMagic)]) == MarkLogMagic:
		st.readLog2(logData, snap, haveSnap, opt)
	case len(logData) == 0:
		if opt.Expect || (snap != nil && snap.format == 2) {
			st.find(MarkLogName, statecheck.Truncated, "emptied: no format 2 header")
		} else {
			st.find(MarkLogName, statecheck.Upgraded, "format 1, empty")
		}
	default:
		st.readLog1(logData, snap, opt)
	}
	return st, nil
}

// readLog1 reads a format 1 log (no header).
func (st *MarkState) readLog1(data []byte, snap *markSnapshot, opt MarkOptions) {
	if opt.Expect || (snap != nil && snap.format == 2 && snap.gen != 1) {
		// Format 2 directories never hold a headerless log, except for the
		// moment between the upgrade's snapshot and its new log: the header
		// was destroyed. Keep what records can be read, as lower bounds.
		st.find(MarkLogName, statecheck.Damaged, "no format 2 header")
		if len(data) >= MarkHeaderSize {
			data = data[MarkHeaderSize:]
		}
		_, _ = decodeMarkLog(data, st.Marks)
		return
	}
	good, err := decodeMarkLog(data, st.Marks)
	switch {
	case err != nil:
		st.find(MarkLogName, statecheck.Damaged, "%v", err)
	case good < int64(len(data)):
		st.find(MarkLogName, statecheck.Truncated, "format 1 log with a torn final record at byte %d: a crash and a damaged record look alike", good)
	default:
		st.find(MarkLogName, statecheck.Upgraded, "format 1, %d records", good/MarkRecordSize)
	}
}

// readLog2 reads a format 2 log: the records its header vouches for must
// all be there, whole and matching the header's checksum; records after
// them (appended by a writer killed before it rewrote the header) are
// kept as marks.
func (st *MarkState) readLog2(data []byte, snap *markSnapshot, haveSnap bool, opt MarkOptions) {
	h, err := decodeMarkHeader(data)
	if err != nil {
		st.find(MarkLogName, statecheck.Damaged, "%v", err)
		if len(data) > MarkHeaderSize {
			_, _ = decodeMarkLog(data[MarkHeaderSize:], st.Marks) // lower bounds, best effort
		}
		return
	}
	st.logGen = h.gen
	recs := data[MarkHeaderSize:]
	sum := uint32(0)
	vouch := snap != nil && snap.format == 2 && h.gen == snap.gen
	for i := uint64(0); i < h.count; i++ {
		off := i * MarkRecordSize
		if off+MarkRecordSize > uint64(len(recs)) {
			st.find(MarkLogName, statecheck.Truncated, "the header vouches for %d records, %d are whole: cut at byte %d", h.count, i, MarkHeaderSize+len(recs))
			return
		}
		rec := recs[off : off+MarkRecordSize]
		if crcOf(rec[:24]) != beUint32(rec[24:]) {
			what := "bad checksum"
			if allZero(recs[off:]) {
				what = "zeroed from there on"
			}
			st.find(MarkLogName, statecheck.Damaged, "record %d of the %d the header vouches for, at byte %d: %s", i, h.count, MarkHeaderSize+off, what)
			_, _ = decodeMarkLog(recs[:off], st.Marks)
			return
		}
		sum = crc32.Update(sum, castagnoli, rec)
		st.mergeRecord(rec, vouch)
	}
	if sum != h.sum {
		st.find(MarkLogName, statecheck.Damaged, "its %d records do not match the header's checksum", h.count)
	}
	// Records past the header's count: a writer killed between its append
	// and its header; they are marks all the same (their PINGs were not
	// admitted yet). A torn one there was never acknowledged.
	extra := map[proto.NodeID]uint64{}
	_, _ = decodeMarkLog(recs[h.count*MarkRecordSize:], extra)
	for n, ts := range extra {
		if ts > st.Marks[n] {
			st.Marks[n] = ts
		}
	}
	if h.open && (opt.Boot == [16]byte{} || h.boot != opt.Boot) {
		st.find(MarkLogName, statecheck.Unproven, "left open by a writer on another boot of this machine: marks appended after its last sync may be lost")
	}
	switch {
	case snap != nil && snap.format == 2:
		if h.gen != snap.gen && h.gen+1 != snap.gen {
			st.find(MarkSnapName, statecheck.Inconsistent, "snapshot generation %d, the log follows generation %d", snap.gen, h.gen)
		}
	case snap != nil: // format 1: only the upgrade writes a format 2 log, after a format 2 snapshot
		st.find(MarkSnapName, statecheck.Inconsistent, "format 1 snapshot beside a format 2 log of generation %d", h.gen)
	case !haveSnap && h.gen > 0:
		st.find(MarkSnapName, statecheck.Missing, "the log follows snapshot generation %d", h.gen)
	}
}

// mergeRecord merges one valid record; vouch: it was appended after the
// snapshot it follows, so its sender is vouched for since.
func (st *MarkState) mergeRecord(rec []byte, vouch bool) {
	var n proto.NodeID
	copy(n[:], rec[:16])
	ts := beUint64(rec[16:24])
	if old, ok := st.Marks[n]; !ok || ts > old {
		st.Marks[n] = ts
	}
	if vouch {
		delete(st.Unvouched, n)
	}
}

func beUint32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }

func beUint64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// MarkLoss is a loss of marks the daemon recovers from (statecheck
// StepMarksFloor).
type MarkLoss struct {
	// Floor is the recovery floor: the receiver's wall clock now, in ns,
	// or 0 when clocks are not trusted (freshness 0).
	Floor uint64
}

// Open makes the store in dir the one st was read from, in format 2, and
// returns its writer: a new snapshot (generation + 1) with every mark,
// then an empty log whose header says open under boot. With loss, every
// mark becomes unvouched and the store records the recovery (a later
// start restores it). Call it only with the state directory locked
// (internal/statelock). st is updated to what was written.
func (st *MarkState) Open(dir string, boot [16]byte, loss *MarkLoss) (*MarkLog, error) {
	m := &MarkLog{
		snapPath: filepath.Join(dir, MarkSnapName), logPath: filepath.Join(dir, MarkLogName),
		v2: true, base: MarkHeaderSize,
	}
	if loss != nil {
		st.Recovering = true
		st.Floor = max(st.Floor, loss.Floor)
		for n := range st.Marks {
			st.Unvouched[n] = struct{}{}
		}
	}
	for n := range st.Unvouched {
		if _, ok := st.Marks[n]; !ok {
			delete(st.Unvouched, n)
		}
	}
	m.unvouched, m.recovering, m.floor = maps.Clone(st.Unvouched), st.Recovering, st.Floor
	f, err := os.OpenFile(m.logPath, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open mark log %s: %w", m.logPath, err)
	}
	m.f = f
	m.hdr = markHeader{gen: st.snapGen, open: true, boot: boot}
	if st.snapGen > 0 && st.logGen+1 == st.snapGen {
		// The log still follows the previous snapshot, whose records the
		// current one holds: reset it to the current generation first, so
		// that a crash below never leaves them two generations apart.
		if err := m.resetLog(); err != nil {
			f.Close()
			return nil, err
		}
	}
	m.hdr.gen = max(st.snapGen, st.logGen)
	if err := m.writeSnapshot(st.Marks); err != nil {
		f.Close()
		return nil, err
	}
	st.snapGen, st.logGen = m.hdr.gen, m.hdr.gen
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return m, nil
}

// compact2 is Compact in format 2. Called with mu held.
func (m *MarkLog) compact2(merged map[proto.NodeID]uint64) error {
	for n := range m.unvouched {
		if _, ok := merged[n]; !ok {
			delete(m.unvouched, n)
		}
	}
	return m.writeSnapshot(merged)
}

// writeSnapshot writes marks as the snapshot of the next generation, then
// empties the log under a header of that generation. A crash in between
// leaves the log one generation behind the snapshot, which holds its
// records: a reader accepts that. Called with mu held (or before use).
func (m *MarkLog) writeSnapshot(marks map[proto.NodeID]uint64) error {
	snap, err := encodeSnapshot2(&markSnapshot{gen: m.hdr.gen + 1, floor: m.floor, recovering: m.recovering, marks: marks, unvouched: m.unvouched})
	if err != nil {
		return fmt.Errorf("write mark snapshot %s: %w", m.snapPath, err)
	}
	if err := statefile.WriteAtomic(m.snapPath, snap, 0o600); err != nil {
		return fmt.Errorf("write mark snapshot %s: %w", m.snapPath, err)
	}
	m.hdr.gen++
	return m.resetLog()
}

// resetLog empties the log under a fresh header of the current
// generation and syncs it.
func (m *MarkLog) resetLog() error {
	if err := m.f.Truncate(0); err != nil {
		return fmt.Errorf("reset mark log %s: %w", m.logPath, err)
	}
	m.hdr.count, m.hdr.sum = 0, 0
	if err := m.writeHeader(); err != nil {
		return err
	}
	if _, err := m.f.Seek(MarkHeaderSize, io.SeekStart); err != nil {
		return fmt.Errorf("reset mark log %s: %w", m.logPath, err)
	}
	if err := m.f.Sync(); err != nil {
		return fmt.Errorf("sync mark log %s: %w", m.logPath, err)
	}
	m.size = 0
	return nil
}

package store

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/momgate/momgate/internal/statefile"
)

// journalDir makes a directory with a snapshot and a format 2 journal of
// n records, closed cleanly, and returns the paths and the records.
func journalDir(t *testing.T, n int) (jpath, spath string, want []JournalRecord) {
	t.Helper()
	dir := t.TempDir()
	jpath, spath = filepath.Join(dir, "state.journal"), filepath.Join(dir, "state.json")
	if err := os.WriteFile(spath, []byte("{\"format\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	js := readJournal(t, jpath, spath, false)
	wantJournalProblems(t, js)
	j, err := js.Open()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		r := jrec("node", string(rune('a'+i)), `{"n":1}`)
		if err := j.Append([]JournalRecord{r}); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return jpath, spath, want
}

func readJournal(t *testing.T, jpath, spath string, expect bool) *JournalState {
	t.Helper()
	js, err := ReadStateJournal(jpath, JournalOptions{Snapshot: spath, Expect: expect})
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func wantJournalProblems(t *testing.T, js *JournalState, want ...string) {
	t.Helper()
	var got []string
	for _, f := range js.Findings {
		got = append(got, f.File+" "+f.Problem.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("findings %v, want %v (%+v)", got, want, js.Findings)
	}
}

func TestStateJournalRoundTrip(t *testing.T) {
	jpath, spath, want := journalDir(t, 3)
	js := readJournal(t, jpath, spath, true)
	wantJournalProblems(t, js)
	if !reflect.DeepEqual(js.Records, want) {
		t.Fatalf("records %+v, want %+v", js.Records, want)
	}
}

// TestStateJournalUnacknowledgedLine: lines after the header's count were
// appended by a writer killed before it rewrote the header, so before the
// append was acknowledged: dropped without a finding, and cut by Open.
func TestStateJournalUnacknowledgedLine(t *testing.T) {
	jpath, spath, want := journalDir(t, 2)
	line, _ := AppendJournalLine(nil, jrec("node", "z", `{"n":9}`))
	appendBytes(t, jpath, append(line, line[:7]...))
	js := readJournal(t, jpath, spath, true)
	wantJournalProblems(t, js)
	if !reflect.DeepEqual(js.Records, want) {
		t.Fatalf("records %+v", js.Records)
	}
	j, err := js.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Append([]JournalRecord{jrec("node", "y", `{"n":8}`)}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	js = readJournal(t, jpath, spath, true)
	wantJournalProblems(t, js)
	if len(js.Records) != 3 || js.Records[2].Key != "y" {
		t.Fatalf("records after the cut: %+v", js.Records)
	}
}

func TestStateJournalDamage(t *testing.T) {
	cases := []struct {
		name   string
		damage func(t *testing.T, jpath, spath string)
		want   []string
	}{
		{"emptied", func(t *testing.T, j, _ string) { truncate(t, j, 0) }, []string{"state.journal truncated"}},
		{"cut to its header", func(t *testing.T, j, _ string) { truncate(t, j, int64(JournalHeaderSize)) }, []string{"state.journal truncated"}},
		{"last line lost", func(t *testing.T, j, _ string) {
			data, _ := os.ReadFile(j)
			cut := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
			truncate(t, j, int64(cut))
		}, []string{"state.journal truncated"}},
		{"cut mid-line", func(t *testing.T, j, _ string) { truncate(t, j, fileSize(t, j)-10) }, []string{"state.journal truncated"}},
		{"cut mid-file", func(t *testing.T, j, _ string) { truncate(t, j, int64(JournalHeaderSize)+30) }, []string{"state.journal truncated"}},
		{"tail zeroed", func(t *testing.T, j, _ string) { zeroTail(t, j, 20) }, []string{"state.journal damaged"}},
		{"header damaged", func(t *testing.T, j, _ string) { zeroAt(t, j, 20, 4) }, []string{"state.journal damaged"}},
		{"deleted", func(t *testing.T, j, _ string) { remove(t, j) }, []string{"state.journal missing"}},
		{"snapshot deleted", func(t *testing.T, _, s string) { remove(t, s) }, []string{"state.json missing"}},
		{"snapshot replaced", func(t *testing.T, _, s string) {
			if err := os.WriteFile(s, []byte("{\"format\":1,\"x\":2}\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, []string{"state.json inconsistent with its companion file"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			jpath, spath, _ := journalDir(t, 3)
			tc.damage(t, jpath, spath)
			wantJournalProblems(t, readJournal(t, jpath, spath, true), tc.want...)
		})
	}
}

// TestStateJournalFold: Fold writes the snapshot and empties the journal;
// killed after the snapshot and before the reset, the journal still
// vouches for the new snapshot and Open completes the fold; killed before
// the snapshot, the old one still matches.
func TestStateJournalFold(t *testing.T) {
	jpath, spath, want := journalDir(t, 2)
	js := readJournal(t, jpath, spath, true)
	j, err := js.Open()
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Reset(); !errors.Is(err, ErrUseFold) {
		t.Fatalf("Reset of a format 2 journal: %v", err)
	}
	next := []byte("{\"format\":1,\"folded\":2}\n")
	if err := j.Fold(spath, next, 0o600); err != nil {
		t.Fatal(err)
	}
	j.Close()
	js = readJournal(t, jpath, spath, true)
	wantJournalProblems(t, js)
	if len(js.Records) != 0 || js.hdr.gen != 1 {
		t.Fatalf("after fold: %d records, generation %d", len(js.Records), js.hdr.gen)
	}

	// Killed between the snapshot and the reset.
	jpath, spath, want = journalDir(t, 2)
	j, _ = readJournal(t, jpath, spath, true).Open()
	h := j.hdr
	h.pend, h.pending = crcOf(next), true
	if err := j.writeHeader(h); err != nil {
		t.Fatal(err)
	}
	if err := statefile.WriteAtomic(spath, next, 0o600); err != nil {
		t.Fatal(err)
	}
	j.Close()
	js = readJournal(t, jpath, spath, true)
	wantJournalProblems(t, js)
	if !reflect.DeepEqual(js.Records, want) { // already in the snapshot: replaying them is harmless
		t.Fatalf("records %+v", js.Records)
	}
	j, err = js.Open()
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	js = readJournal(t, jpath, spath, true)
	wantJournalProblems(t, js)
	if len(js.Records) != 0 || js.hdr.pending {
		t.Fatalf("interrupted fold not completed: %d records, pending %v", len(js.Records), js.hdr.pending)
	}
}

// TestStateJournalUpgrade: a format 1 journal is read, reported as
// upgraded, and rewritten in format 2 by Open with the same records.
func TestStateJournalUpgrade(t *testing.T) {
	dir := t.TempDir()
	jpath, spath := filepath.Join(dir, "state.journal"), filepath.Join(dir, "state.json")
	if err := os.WriteFile(spath, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	old, _, err := OpenJournal(jpath)
	if err != nil {
		t.Fatal(err)
	}
	want := []JournalRecord{jrec("node", "a", `{"n":1}`), jrec("token", "b", "")}
	if err := old.Append(want); err != nil {
		t.Fatal(err)
	}
	old.Close()
	js := readJournal(t, jpath, spath, false)
	wantJournalProblems(t, js, "state.journal old format")
	j, err := js.Open()
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	js = readJournal(t, jpath, spath, true)
	wantJournalProblems(t, js)
	if !reflect.DeepEqual(js.Records, want) {
		t.Fatalf("records after the upgrade: %+v", js.Records)
	}
}

// TestStateJournalUpgradeTorn: a format 1 journal with a torn final line
// cannot be told from one whose last acted-on line was damaged: a loss.
func TestStateJournalUpgradeTorn(t *testing.T) {
	dir := t.TempDir()
	jpath, spath := filepath.Join(dir, "state.journal"), filepath.Join(dir, "state.json")
	if err := os.WriteFile(spath, []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	line, _ := AppendJournalLine(nil, jrec("node", "a", `{"n":1}`))
	if err := os.WriteFile(jpath, append(line, line[:9]...), 0o600); err != nil {
		t.Fatal(err)
	}
	wantJournalProblems(t, readJournal(t, jpath, spath, false), "state.journal truncated")
}

func FuzzDecodeJournalHeader(f *testing.F) {
	f.Add(journalHeader{}.encode())
	f.Add(journalHeader{gen: 3, count: 1 << 40, sum: 0xdeadbeef, snap: 7, pend: 9, pending: true}.encode())
	f.Add([]byte(JournalMagic + " gen=0"))
	f.Add(bytes.ToUpper(journalHeader{gen: 10}.encode()))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeJournalHeader(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if again := h.encode(); !bytes.Equal(again, data[:JournalHeaderSize]) {
			t.Fatalf("accepted a non-canonical header:\n in %q\nout %q", data[:JournalHeaderSize], again)
		}
	})
}

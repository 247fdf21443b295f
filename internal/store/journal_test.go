package store

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func jrec(kind, key, value string) JournalRecord {
	if value == "" {
		return JournalRecord{Kind: kind, Key: key, Deleted: true}
	}
	return JournalRecord{Kind: kind, Key: key, Value: json.RawMessage(value)}
}

func TestJournalAppendReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.journal")
	j, recs, err := OpenJournal(path)
	if err != nil || len(recs) != 0 {
		t.Fatalf("open new: %v, %d records", err, len(recs))
	}
	want := []JournalRecord{jrec("node", "a", `{"n":1}`), jrec("node", "b", `{"n":2}`), jrec("node", "a", "")}
	if err := j.Append(want[:2]); err != nil {
		t.Fatal(err)
	}
	if err := j.Append(want[2:]); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal mode: %v %v", fi.Mode(), err)
	}
	j, got, err := OpenJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("reopened:\n got  %+v\n want %+v", got, want)
	}
	if err := j.Reset(); err != nil || j.Size() != 0 {
		t.Fatalf("reset: %v, size %d", err, j.Size())
	}
	if err := j.Append(want[:1]); err != nil {
		t.Fatal(err)
	}
	j.Close()
	_, got, err = OpenJournal(path)
	if err != nil || !reflect.DeepEqual(got, want[:1]) {
		t.Fatalf("after reset: %+v %v", got, err)
	}
}

// A crash mid-append leaves a torn last line: it is dropped on open and
// the next append starts on a clean line.
func TestJournalTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.journal")
	line, err := AppendJournalLine(nil, jrec("node", "a", `{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	second, _ := AppendJournalLine(nil, jrec("node", "b", `{"n":2}`))
	for cut := 0; cut < len(second); cut++ {
		data := append(append([]byte{}, line...), second[:cut]...)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		j, recs, err := OpenJournal(path)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if len(recs) != 1 || recs[0].Key != "a" {
			t.Fatalf("cut %d: records %+v", cut, recs)
		}
		if err := j.Append([]JournalRecord{jrec("node", "c", `{"n":3}`)}); err != nil {
			t.Fatal(err)
		}
		j.Close()
		_, recs, err = OpenJournal(path)
		if err != nil || len(recs) != 2 || recs[1].Key != "c" {
			t.Fatalf("cut %d: after append: %+v %v", cut, recs, err)
		}
	}
}

func TestJournalCorrupt(t *testing.T) {
	good, _ := AppendJournalLine(nil, jrec("node", "a", `{"n":1}`))
	flipped := append([]byte{}, good...)
	flipped[20] ^= 1
	cases := map[string][]byte{
		"bad checksum before last": append(append([]byte{}, flipped...), good...),
		"bad checksum last line":   flipped,
		"no checksum":              []byte(`{"kind":"node","key":"a","value":1}` + "\n"),
		"unknown field":            mustLine(t, `{"kind":"node","key":"a","value":1,"x":2}`),
		"value and deleted":        mustLine(t, `{"kind":"node","key":"a","value":1,"deleted":true}`),
		"neither value nor delete": mustLine(t, `{"kind":"node","key":"a"}`),
		"no key":                   mustLine(t, `{"kind":"node","value":1}`),
		"trailing json":            mustLine(t, `{"kind":"node","key":"a","value":1} {}`),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			_, _, err := DecodeJournal(data)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
}

// mustLine frames body with a correct checksum.
func mustLine(t *testing.T, body string) []byte {
	t.Helper()
	return []byte(hex8(crcOf([]byte(body))) + " " + body + "\n")
}

func hex8(v uint32) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b)
}

func TestJournalClosed(t *testing.T) {
	j, _, err := OpenJournal(filepath.Join(t.TempDir(), "j"))
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if err := j.Append([]JournalRecord{jrec("k", "a", "1")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// FuzzDecodeJournal: arbitrary bytes never panic; errors wrap ErrCorrupt;
// whatever decodes re-encodes to the same valid prefix.
func FuzzDecodeJournal(f *testing.F) {
	a, _ := AppendJournalLine(nil, jrec("node", "a", `{"n":1}`))
	b, _ := AppendJournalLine(nil, jrec("token", "b", ""))
	f.Add([]byte{})
	f.Add(a)
	f.Add(append(append([]byte{}, a...), b...))
	f.Add(append(append([]byte{}, a...), b[:10]...))
	f.Add([]byte("00000000 {}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, valid, err := DecodeJournal(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if valid < 0 || valid > len(data) {
			t.Fatalf("valid prefix %d of %d", valid, len(data))
		}
		again, _, err := DecodeJournal(data[:valid])
		if err != nil || len(again) != len(recs) {
			t.Fatalf("valid prefix does not decode alike: %v", err)
		}
	})
}

package store

import (
	"errors"
	"strings"
	"testing"
)

// A journal line whose checksum is right but whose body has data after
// the record is corrupt, including the stray "}" or "]" that a More-based
// check let through before strictjson.
func TestDecodeJournalRefusesTrailingData(t *testing.T) {
	const body = `{"kind":"node","key":"a","value":{"n":1}}`
	if recs, _, err := DecodeJournal(mustLine(t, body)); err != nil || len(recs) != 1 {
		t.Fatalf("valid line: %v %v", recs, err)
	}
	for _, tail := range []string{"}", "]", " {}", "x"} {
		_, _, err := DecodeJournal(mustLine(t, body+tail))
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "data after the JSON value") {
			t.Errorf("DecodeJournal(line + %q) = %v, want ErrCorrupt naming the trailing data", tail, err)
		}
	}
}

package server

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/momgate/momgate/internal/store"
)

// trailingTails are what a More-based check let through after a value
// (the stray "}" and "]") and what it did not.
var trailingTails = []string{"}", "]", " {}", "x"}

// decodeDenyList refuses anything after the deny list.
func TestDecodeDenyListRefusesTrailingData(t *testing.T) {
	const good = `{"format":1,"entries":[{"addr":"127.0.0.4"}]}`
	if _, err := decodeDenyList([]byte(good)); err != nil {
		t.Fatalf("valid deny list refused: %v", err)
	}
	for _, tail := range trailingTails {
		_, err := decodeDenyList([]byte(good + tail))
		if !errors.Is(err, errBadDenyList) || !strings.Contains(err.Error(), "data after the JSON value") {
			t.Errorf("decodeDenyList(list + %q) = %v, want errBadDenyList naming the trailing data", tail, err)
		}
	}
}

// replayJournal refuses a meta, node or token record value with anything
// after it.
func TestReplayJournalRefusesTrailingData(t *testing.T) {
	p := testPersisted(1)
	meta, err := metaOf(p)
	if err != nil {
		t.Fatal(err)
	}
	node, _ := json.Marshal(p.Nodes[0])
	token, _ := json.Marshal(p.Tokens[0])
	recs := []store.JournalRecord{
		{Kind: kindMeta, Key: "server", Value: meta},
		{Kind: kindNode, Key: p.Nodes[0].ID, Value: node},
		{Kind: kindToken, Key: hex.EncodeToString(p.Tokens[0].ID[:]), Value: token},
	}
	for _, r := range recs {
		if _, err := replayJournal(testPersisted(0), []store.JournalRecord{r}); err != nil {
			t.Fatalf("valid %s record refused: %v", r.Kind, err)
		}
		for _, tail := range trailingTails {
			bad := r
			bad.Value = append(json.RawMessage(string(r.Value)), tail...)
			_, err := replayJournal(testPersisted(0), []store.JournalRecord{bad})
			if err == nil || !strings.Contains(err.Error(), "data after the JSON value") {
				t.Errorf("%s record + %q: got %v, want the trailing data named", r.Kind, tail, err)
			}
		}
	}
}

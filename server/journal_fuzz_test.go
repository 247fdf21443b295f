package server

import (
	"encoding/json"
	"testing"

	"github.com/momgate/momgate/internal/store"
)

// FuzzReplayJournal: replaying one record of any kind, key and value over
// a snapshot never panics, and an accepted node record is keyed by its id.
// Seeds also live in testdata/fuzz/FuzzReplayJournal/.
func FuzzReplayJournal(f *testing.F) {
	p := testPersisted(1)
	meta, _ := metaOf(p)
	node, _ := json.Marshal(p.Nodes[0])
	f.Add(kindMeta, "server", meta)
	f.Add(kindNode, p.Nodes[0].ID, node)
	f.Add(kindNode, p.Nodes[0].ID, append(node, '}'))
	f.Add(kindToken, "00", []byte(`{}`))
	f.Fuzz(func(t *testing.T, kind, key string, value []byte) {
		rec := store.JournalRecord{Kind: kind, Key: key, Value: value}
		got, err := replayJournal(testPersisted(0), []store.JournalRecord{rec})
		if err != nil || kind != kindNode {
			return
		}
		if len(got.Nodes) != 1 || got.Nodes[0].ID != key {
			t.Fatalf("node record %q replayed to %+v", key, got.Nodes)
		}
	})
}

package server

import (
	"testing"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/rotation"
)

// FuzzReplayRotation: replaying rotation.journal records of any kind, key
// and value over a snapshot never panics, and a record it accepts leaves a
// record that encodes and strictly decodes to itself (what a fold writes
// as rotation.json). Seeds also live in testdata/fuzz/FuzzReplayRotation/.
func FuzzReplayRotation(f *testing.F) {
	f.Add(kindRotation, rotationRecordKey, []byte(`{"format":1,"phase":"idle","seq":0}`), false)
	f.Add(kindRotation, rotationRecordKey, []byte(`{"format":1,"phase":"idle","seq":0,"behind":["6ba7b810-9dad-11d1-80b4-00c04fd430c8"]}`), false)
	f.Add(kindBehind, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", []byte(`{}`), false)
	f.Add(kindBehind, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", []byte(nil), true)
	f.Add(kindBehind, "6BA7B810-9DAD-11D1-80B4-00C04FD430C8", []byte(`{}`), false)
	f.Add(kindBehind, "6ba7b810-9dad-11d1-80b4-00c04fd430c8", []byte(`{"x":1}`), false)
	f.Fuzz(func(t *testing.T, kind, key string, value []byte, deleted bool) {
		rec := store.JournalRecord{Kind: kind, Key: key, Value: value, Deleted: deleted}
		got, err := replayRotation(rotation.Record{}, []store.JournalRecord{rec})
		if err != nil {
			return
		}
		data, err := rotation.EncodeRecord(got)
		if err != nil {
			t.Fatalf("accepted %s %q to a record that does not encode: %v", kind, key, err)
		}
		back, err := rotation.DecodeRecord(data)
		if err != nil {
			t.Fatalf("accepted %s %q to a record that does not decode: %v", kind, key, err)
		}
		again, _ := rotation.EncodeRecord(back)
		if string(again) != string(data) {
			t.Fatalf("record does not round-trip:\n%s\n%s", data, again)
		}
		if kind == kindBehind && !deleted && (len(got.Behind) != 1) {
			t.Fatalf("behind record %q replayed to %v", key, got.Behind)
		}
	})
}

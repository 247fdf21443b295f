package replica

import (
	"testing"
	"time"

	"github.com/momgate/momgate/keys"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testRing(t testing.TB) *keys.Keyring {
	t.Helper()
	r := keys.NewKeyring()
	for i, st := range []keys.State{keys.StateActive, keys.StateNext} {
		k := &keys.Key{ID: keys.KeyID(0x0a1b2c3d + i), State: st, Created: t0}
		for j := range k.Secret {
			k.Secret[j] = byte(0x40 + i + j)
		}
		var err error
		if r, err = r.WithKey(k); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// sample is one valid entry and the name of its seed.
type sample struct {
	name string
	e    Entry
}

// samples are valid entries of the kinds of write a server makes: records
// put and deleted, of every kind, and whole files. The values are shaped
// like the server's records; the codec checks only that each is a JSON
// object (the server's state decodes each with its own decoder).
func samples(t testing.TB) []sample {
	t.Helper()
	ring, err := keys.EncodeKeyring(testRing(t))
	if err != nil {
		t.Fatal(err)
	}
	const node = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
	const token = "01020300000000000000000000000000"
	cmds := []struct {
		name string
		c    *StateRecords
	}{
		{"create_node", &StateRecords{Why: "create node n1", Records: []StateRecord{
			{Kind: RecordNode, Key: node, Value: []byte(`{"id":"` + node + `","name":"n1","mom":"10.0.0.11","port":15003}`)},
			{Kind: RecordToken, Key: token, Value: []byte(`{"id":"` + token + `","node":"n1","used":false}`)}}}},
		{"delete_node", &StateRecords{Why: "delete node n1", Records: []StateRecord{
			{Kind: RecordNode, Key: node, Deleted: true},
			{Kind: RecordToken, Key: token, Deleted: true},
			{Kind: RecordFile, Key: "deny.json", Value: []byte(`{"format":1,"entries":[{"addr":"10.0.0.11"}]}`)}}}},
		{"set_server", &StateRecords{Why: "set server", Records: []StateRecord{
			{Kind: RecordMeta, Key: "server", Value: []byte(`{"format":1,"attrs":{"mode":"ping"}}`)}}}},
		{"rotation_step", &StateRecords{Why: "rotation next-saved", Records: []StateRecord{
			{Kind: RecordFile, Key: "keyring.json", Value: ring},
			{Kind: RecordFile, Key: "rotation.json", Value: []byte(`{"phase":"distributing","seq":4}`)}}}},
		{"create_member", &StateRecords{Why: "create server s2", Records: []StateRecord{
			{Kind: RecordMember, Key: "s2", Value: []byte(`{"name":"s2","raft":"127.0.0.2:15005","control":"127.0.0.2:15004"}`)}}}},
		{"delete_member", &StateRecords{Records: []StateRecord{{Kind: RecordMember, Key: "s2", Deleted: true}}}},
	}
	out := make([]sample, len(cmds))
	for i, c := range cmds {
		out[i] = sample{name: "state_records_" + c.name, e: Entry{At: t0.Add(time.Duration(i) * time.Second), Cmd: c.c}}
	}
	return out
}

func mustEncode(t testing.TB, e Entry) []byte {
	t.Helper()
	b, err := Encode(e)
	if err != nil {
		t.Fatalf("encode %s: %v", e.Cmd.Op(), err)
	}
	return b
}

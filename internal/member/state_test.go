package member

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/strictjson"
)

// testState is the replicated state of the member tests: it applies
// replica.StateRecords as the server's state does (each record put or
// deleted by kind and key, in order, all or none), snapshots as one
// section and restores strictly. The server's state (server/replicated.go)
// imports this package, so the tests cannot use it.
//
// One rule is the test's own, so that the tests see a refusal decided by
// the state travel back to the proposer, alike on every member and after
// a failover: a token record marked used is refused when the state
// already holds that token used (a redemption at most once). The server
// takes that decision on its leader, before it proposes.
type testState struct {
	mu      sync.Mutex
	recs    map[recordKey]json.RawMessage
	applied uint64
}

type recordKey struct{ kind, key string }

func newTestState() *testState { return &testState{recs: map[recordKey]json.RawMessage{}} }

// tokenUsed reports whether a token record's value says it is used.
func tokenUsed(v json.RawMessage) bool {
	var t struct {
		Used bool `json:"used"`
	}
	return v != nil && json.Unmarshal(v, &t) == nil && t.Used
}

// Apply implements replica.StateMachine.
func (s *testState) Apply(index uint64, e replica.Entry) replica.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applied = index
	c, ok := e.Cmd.(*replica.StateRecords)
	if !ok {
		return replica.Result{Err: fmt.Errorf("%s: not a command of the test state", e.Cmd.Op())}
	}
	for _, r := range c.Records {
		k := recordKey{r.Kind, r.Key}
		if r.Kind == replica.RecordToken && !r.Deleted && tokenUsed(r.Value) && tokenUsed(s.recs[k]) {
			return replica.Result{Err: fmt.Errorf("%s: token %s: %w", c.Why, r.Key, keys.ErrTokenUsed)}
		}
	}
	for _, r := range c.Records {
		k := recordKey{r.Kind, r.Key}
		if r.Deleted {
			delete(s.recs, k)
		} else {
			s.recs[k] = bytes.Clone(r.Value)
		}
	}
	return replica.Result{Value: c.Why}
}

// Applied is the index of the last entry applied.
func (s *testState) Applied() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Node reports whether the state holds node name.
func (s *testState) Node(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.recs[recordKey{replica.RecordNode, name}]
	return ok
}

// Names returns every node name, sorted.
func (s *testState) Names() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for k := range s.recs {
		if k.kind == replica.RecordNode {
			out = append(out, k.key)
		}
	}
	slices.Sort(out)
	return out
}

const testSection = "records.json"

// snapshotRecord is one record in the snapshot section.
type snapshotRecord struct {
	Kind  string          `json:"kind"`
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type testSnapshot struct{ data []byte }

func (s testSnapshot) WriteTo(w io.Writer) (int64, error) {
	return replica.WriteSections(w, []replica.Section{{Name: testSection, Data: s.data}})
}
func (testSnapshot) Release() {}

// Snapshot implements replica.StateMachine: the records, sorted, as one
// section.
func (s *testState) Snapshot() (replica.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	recs := make([]snapshotRecord, 0, len(s.recs))
	for k, v := range s.recs {
		recs = append(recs, snapshotRecord{k.kind, k.key, v})
	}
	slices.SortFunc(recs, func(a, b snapshotRecord) int { return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Key, b.Key)) })
	data, err := json.Marshal(recs)
	if err != nil {
		return nil, fmt.Errorf("test snapshot: %w", err)
	}
	return testSnapshot{data}, nil
}

// Restore implements replica.StateMachine; it leaves the state as it was
// when the snapshot does not decode.
func (s *testState) Restore(r io.Reader) error {
	secs, err := replica.ReadSections(r)
	if err != nil {
		return err
	}
	if len(secs) != 1 || secs[0].Name != testSection {
		return fmt.Errorf("%w: want the one section %s", replica.ErrBadSnapshot, testSection)
	}
	var recs []snapshotRecord
	if err := strictjson.Decode(secs[0].Data, &recs); err != nil {
		return fmt.Errorf("%w: %s: %v", replica.ErrBadSnapshot, testSection, err)
	}
	fresh := map[recordKey]json.RawMessage{}
	for _, r := range recs {
		fresh[recordKey{r.Kind, r.Key}] = r.Value
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs = fresh
	return nil
}

var nodeSeq atomic.Uint32

// createNode is the write of a create node (the node and its unused
// token) and that of its enrollment (the token used, the node enrolled),
// as records.
func createNode(name string) (create, enroll *replica.StateRecords) {
	tok := fmt.Sprintf("%032x", nodeSeq.Add(1))
	create = &replica.StateRecords{Why: "create node " + name, Records: []replica.StateRecord{
		{Kind: replica.RecordNode, Key: name, Value: json.RawMessage(`{"name":"` + name + `"}`)},
		{Kind: replica.RecordToken, Key: tok, Value: json.RawMessage(`{"node":"` + name + `","used":false}`)}}}
	enroll = &replica.StateRecords{Why: "enroll " + name, Records: []replica.StateRecord{
		{Kind: replica.RecordToken, Key: tok, Value: json.RawMessage(`{"node":"` + name + `","used":true}`)},
		{Kind: replica.RecordNode, Key: name, Value: json.RawMessage(`{"name":"` + name + `","enrolled":true}`)}}}
	return create, enroll
}

// apply applies cmd to a bare state through the codec, as index 1, the
// way the consensus layer delivers it.
func apply(t *testing.T, sm replica.StateMachine, cmd replica.Command) {
	t.Helper()
	b, err := replica.Encode(replica.Entry{At: time.Now(), Cmd: cmd})
	if err != nil {
		t.Fatal(err)
	}
	e, err := replica.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if res := sm.Apply(1, e); res.Err != nil {
		t.Fatal(res.Err)
	}
}

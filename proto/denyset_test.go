package proto

import (
	"errors"
	"reflect"
	"testing"
)

func TestDenySetRoundTrip(t *testing.T) {
	var n NodeID
	n[0] = 0xa0
	a, _ := ParseAddr("127.0.0.3")
	for _, m := range []*DenySet{{}, {Entries: []NodeAddr{{Node: n, Addr: a}, {Addr: a}}}} {
		frame := Marshal(m)
		got, err := Unmarshal(frame)
		if err != nil {
			t.Fatal(err)
		}
		d, ok := got.(*DenySet)
		if !ok || !reflect.DeepEqual(d.Entries, m.Entries) || d.Type().String() != "DenySet" {
			t.Fatalf("round trip: %#v, want %#v", got, m)
		}
		if len(frame) > HeaderSize+2 {
			if _, err := Unmarshal(frame[:len(frame)-1]); err == nil {
				t.Fatal("truncated DenySet decoded")
			}
		}
	}
	// A count larger than the entries present is refused.
	frame := Marshal(&DenySet{Entries: []NodeAddr{{Addr: a}}})
	frame[HeaderSize+1] = 2
	if _, err := Unmarshal(frame); !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCountLimit) {
		t.Fatalf("count beyond the body: %v", err)
	}
}

// FuzzUnmarshalDenySet: a DenySet body of any bytes decodes without panic
// to entries that re-encode to the same frame, or to an error. Seeds also
// live in testdata/fuzz/FuzzUnmarshalDenySet/.
func FuzzUnmarshalDenySet(f *testing.F) {
	a, _ := ParseAddr("127.0.0.3")
	f.Add(Marshal(&DenySet{})[HeaderSize:])
	f.Add(Marshal(&DenySet{Entries: []NodeAddr{{Addr: a}, {Node: NodeID{1}}}})[HeaderSize:])
	f.Fuzz(func(t *testing.T, body []byte) {
		frame := AppendHeader(nil, Header{Version: V2, Type: TypeDenySet, Length: uint32(len(body))})
		frame = append(frame, body...)
		m, err := Unmarshal(frame)
		if err != nil {
			return
		}
		if again := Marshal(m); string(again) != string(frame) {
			t.Fatalf("re-encoding differs:\n%x\n%x", frame, again)
		}
	})
}

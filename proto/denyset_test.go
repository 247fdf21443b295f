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

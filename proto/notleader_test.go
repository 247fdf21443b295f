package proto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// The NotLeader vectors of docs/PROTOCOL.md section 4.11, byte for byte.
func TestNotLeaderVectors(t *testing.T) {
	for _, v := range []struct {
		name string
		msg  NotLeader
		hex  string
	}{
		{"leader s2 at 127.0.0.2:15001", NotLeader{Addr: mustAddr("127.0.0.2"), Port: 15001, Leader: "s2"},
			"4d47020600000016" + "00000000000000000000ffff7f000002" + "3a99" + "0002" + "7332"},
		{"no leader known", NotLeader{},
			"4d47020600000014" + "00000000000000000000000000000000" + "0000" + "0000"},
	} {
		want, err := hex.DecodeString(v.hex)
		if err != nil {
			t.Fatal(err)
		}
		if got := Marshal(&v.msg); !bytes.Equal(got, want) {
			t.Fatalf("%s: marshal\n got  %x\n want %x", v.name, got, want)
		}
		m, err := Unmarshal(want)
		if err != nil {
			t.Fatalf("%s: unmarshal: %v", v.name, err)
		}
		nl, ok := m.(*NotLeader)
		if !ok || *nl != v.msg {
			t.Fatalf("%s: decoded %#v", v.name, m)
		}
		if nl.Known() != (v.msg.Port != 0) {
			t.Fatalf("%s: Known() = %v", v.name, nl.Known())
		}
	}
}

// A NotLeader whose address and port disagree, a v1 NotLeader, and an
// over-long name are refused with their sentinels.
func TestNotLeaderRefusals(t *testing.T) {
	addrOnly := append(addrBytes("127.0.0.2"), 0, 0, 0, 0)
	portOnly := append(make([]byte, 16), 0x3a, 0x99, 0, 0)
	long := append(append(addrBytes("127.0.0.2"), 0x3a, 0x99, 0, 65), []byte(strings.Repeat("s", 65))...)
	for _, c := range []struct {
		name  string
		frame []byte
		want  error
	}{
		{"addr without port", frameOf(V2, TypeNotLeader, addrOnly), ErrBadValue},
		{"port without addr", frameOf(V2, TypeNotLeader, portOnly), ErrBadValue},
		{"v1", frameOf(V1, TypeNotLeader, make([]byte, 20)), ErrUnknownType},
		{"cut", frameOf(V2, TypeNotLeader, make([]byte, 19)), ErrTruncated},
		{"trailing", frameOf(V2, TypeNotLeader, make([]byte, 21)), ErrTrailing},
		{"name too long", frameOf(V2, TypeNotLeader, long), ErrFieldTooLong},
	} {
		if _, err := Unmarshal(c.frame); !errors.Is(err, c.want) {
			t.Errorf("%s: err %v, want %v", c.name, err, c.want)
		}
	}
}

func addrBytes(s string) []byte { a := mustAddr(s); return a[:] }

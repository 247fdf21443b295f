package proto

import (
	"encoding/hex"
	"strings"
	"testing"
)

// TestRecoveryVectors checks the frames of docs/PROTOCOL.md section 4.9
// (recovery attestation) byte for byte, and that they decode back.
func TestRecoveryVectors(t *testing.T) {
	n := NodeID{0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8}
	const stamp = 0x187afca767ca0001
	cases := []struct {
		msg  Message
		want string
	}{
		{&RecoveryLookup{ID: 0x01020304, Node: n}, "4d47 02 56 00000014 01020304 6ba7b8109dad11d180b400c04fd430c8"},
		{&FloorProbe{ID: 0x0a0b0c0d}, "4d47 02 2b 00000004 0a0b0c0d"},
		{&FloorStamp{ID: 0x0a0b0c0d, Stamp: stamp}, "4d47 02 57 0000000c 0a0b0c0d 187afca767ca0001"},
		{&FloorAnswer{ID: 0x01020304, Node: n, Status: FloorFresh, Floor: stamp}, "4d47 02 53 0000001d 01020304 6ba7b8109dad11d180b400c04fd430c8 02 187afca767ca0001"},
	}
	for _, tc := range cases {
		want, err := hex.DecodeString(strings.ReplaceAll(tc.want, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		got := Marshal(tc.msg)
		if string(got) != string(want) {
			t.Errorf("%s: %x, want %x", tc.msg.Type(), got, want)
		}
		back, err := Unmarshal(want)
		if err != nil || string(Marshal(back)) != string(want) {
			t.Errorf("%s: decode %v", tc.msg.Type(), err)
		}
	}
}

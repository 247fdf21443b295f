package pbsauth

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleRequests() []Request {
	id := HandshakeID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}
	return []Request{
		{Op: OpInitiate, Kind: KindService, Host: "pbssrv"},
		{Op: OpInitiate, Kind: KindUser, Host: "10.201.0.1", Encrypt: true},
		{Op: OpContinue, ID: id, Token: []byte("MP\x01\x02reply")},
		{Op: OpAccept, Kind: KindUser, Host: "10.201.0.11", Token: []byte("MP\x01\x01ping")},
		{Op: OpConfirm, ID: id, Token: []byte("MP\x01\x03vouch")},
		{Op: OpCheck, Gen: 0x0102030405060708, Node: "pbsn1", Host: "10.201.0.11"},
	}
}

func sampleResponses() map[Op]Response {
	id := HandshakeID{0: 9, 15: 1}
	return map[Op]Response{
		OpInitiate: {ID: id, Token: []byte("tok1")},
		OpContinue: {Token: []byte("tok3"), PeerName: "pbssrv"},
		OpAccept:   {ID: id, Token: []byte("tok2")},
		OpConfirm:  {Peer: PeerUser{UID: 5001, GID: 5002, User: "pbsuser", Group: "users", NodeName: "pbsn1"}},
	}
}

// sampleKeys are the keys of an encrypted Continue or Confirm answer.
func sampleKeys() *ConnKeys {
	var k ConnKeys
	for i := range k.Send {
		k.Send[i], k.Recv[i] = byte(i), byte(0x80+i)
	}
	return &k
}

// Keys end a Continue or Confirm answer only when the handshake was
// encrypted: an answer without them is the layout of plugins that do not
// encrypt.
func TestResponseKeysRoundTrip(t *testing.T) {
	for _, op := range []Op{OpContinue, OpConfirm} {
		s := sampleResponses()[op]
		plain := AppendResponse(nil, op, &s)
		s.Keys = sampleKeys()
		b := AppendResponse(nil, op, &s)
		if len(b) != len(plain)+64 || !bytes.Equal(b[LocalHeaderSize:len(plain)], plain[LocalHeaderSize:]) {
			t.Fatalf("%s: keys are not the last 64 bytes of the answer", op)
		}
		got, err := ReadResponse(bytes.NewReader(b), op)
		if err != nil || !reflect.DeepEqual(got, s) {
			t.Fatalf("%s: got %+v %v, want %+v", op, got, err, s)
		}
		cut := bytes.Clone(b[:len(b)-1])
		cut[7]--
		if _, err := ReadResponse(bytes.NewReader(cut), op); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: keys cut short: %v", op, err)
		}
	}
	// Initiate and Accept answers never carry keys.
	s := sampleResponses()[OpAccept]
	s.Keys = sampleKeys()
	if got, err := ReadResponse(bytes.NewReader(AppendResponse(nil, OpAccept, &s)), OpAccept); err != nil || got.Keys != nil {
		t.Fatalf("accept answer: %+v %v", got, err)
	}
}

func TestInitiateEncryptFlag(t *testing.T) {
	plain, _ := AppendRequest(nil, &Request{Op: OpInitiate, Kind: KindService, Host: "h"})
	enc, _ := AppendRequest(nil, &Request{Op: OpInitiate, Kind: KindService, Host: "h", Encrypt: true})
	if len(enc) != len(plain)+1 || enc[len(enc)-1] != 2 {
		t.Fatalf("encrypt flag: plain %x, encrypted %x", plain, enc)
	}
	bad := bytes.Clone(enc)
	bad[len(bad)-1] = 1
	if _, err := ReadRequest(bytes.NewReader(bad)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("flag 1 (auth): %v", err)
	}
}

func TestRequestRoundTrip(t *testing.T) {
	for _, q := range sampleRequests() {
		b, err := AppendRequest(nil, &q)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadRequest(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", q.Op, err)
		}
		if !reflect.DeepEqual(got, q) {
			t.Fatalf("%s: got %+v, want %+v", q.Op, got, q)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for op, s := range sampleResponses() {
		b := AppendResponse(nil, op, &s)
		got, err := ReadResponse(bytes.NewReader(b), op)
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if !reflect.DeepEqual(got, s) {
			t.Fatalf("%s: got %+v, want %+v", op, got, s)
		}
	}
	refused := Response{Status: StatusRefused, Reason: "revoked", Message: "node pbsn2 is denied"}
	got, err := ReadResponse(bytes.NewReader(AppendResponse(nil, OpAccept, &refused)), OpAccept)
	if err != nil || !reflect.DeepEqual(got, refused) {
		t.Fatalf("got %+v %v", got, err)
	}
}

func TestRequestRejects(t *testing.T) {
	good, _ := AppendRequest(nil, &Request{Op: OpInitiate, Kind: KindService, Host: "h"})
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := map[string][]byte{
		"short header": good[:5],
		"bad magic":    with(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":      with(func(b []byte) []byte { b[2] = 2; return b }),
		"unknown op":   with(func(b []byte) []byte { b[3] = 9; return b }),
		"oversize":     with(func(b []byte) []byte { b[4] = 1; return b }),
		"kind":         with(func(b []byte) []byte { b[8] = 7; return b }),
		"trailing":     with(func(b []byte) []byte { b[7]++; return append(b, 0) }),
		"truncated":    with(func(b []byte) []byte { b[7]--; return b[:len(b)-1] }),
		"nul in host":  with(func(b []byte) []byte { b[len(b)-1] = 0; return b }),
		"empty host":   {'M', 'L', 1, 1, 0, 0, 0, 3, 1, 0, 0},
	}
	for name, b := range cases {
		if _, err := ReadRequest(bytes.NewReader(b)); err == nil {
			t.Errorf("%s: accepted %x", name, b)
		} else if name != "short header" && name != "truncated" && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v is not ErrMalformed", name, err)
		}
	}
	if _, err := AppendRequest(nil, &Request{Op: OpInitiate, Host: strings.Repeat("h", MaxHostLen+1)}); err == nil {
		t.Error("a host over the limit was encoded")
	}
}

func TestResponseTextsAreCut(t *testing.T) {
	long := Response{Status: StatusRefused, Reason: strings.Repeat("r", 100), Message: strings.Repeat("é", MaxMessageLen) + "\x00"}
	got, err := ReadResponse(bytes.NewReader(AppendResponse(nil, OpAccept, &long)), OpAccept)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Reason) != MaxReasonLen || len(got.Message) > MaxMessageLen || !strings.HasPrefix(got.Message, "éé") {
		t.Fatalf("reason %d bytes, message %d bytes", len(got.Reason), len(got.Message))
	}
	if got := cut("a\x00b\xff", 10); got != "a b?" {
		t.Fatalf("cut: %q", got)
	}
}

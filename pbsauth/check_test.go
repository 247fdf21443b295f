package pbsauth

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// The Check vectors of docs/PROTOCOL.md section 7.3; keep both in step.
const (
	checkRequestHex = "4d4c0105" + "0000001a" +
		"0102030405060708" +
		"0005" + "70626e3131" +
		"0009" + "31302e302e302e3131"
	checkUnchangedHex = "4d4c0100" + "0000000d" +
		"0102030405060708" + "02" + "0000" + "0000"
	checkRevokedHex = "4d4c0100" + "00000029" +
		"0102030405060709" + "01" +
		"0007" + "7265766f6b6564" +
		"0015" + "6e6f64652070626e3131207761732064656e696564"
)

func TestCheckVectors(t *testing.T) {
	q := Request{Op: OpCheck, Gen: 0x0102030405060708, Node: "pbn11", Host: "10.0.0.11"}
	b, err := AppendRequest(nil, &q)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != checkRequestHex {
		t.Fatalf("request\n got %s\nwant %s", got, checkRequestHex)
	}
	back, err := ReadRequest(bytes.NewReader(b))
	if err != nil || !reflect.DeepEqual(back, q) {
		t.Fatalf("request back: %+v %v", back, err)
	}
	for _, c := range []struct {
		hex string
		s   Response
	}{
		{checkUnchangedHex, Response{Gen: 0x0102030405060708, Verdict: VerdictUnchanged}},
		{checkRevokedHex, Response{Gen: 0x0102030405060709, Verdict: VerdictRevoked, Reason: "revoked", Message: "node pbn11 was denied"}},
	} {
		b := AppendResponse(nil, OpCheck, &c.s)
		if got := hex.EncodeToString(b); got != c.hex {
			t.Fatalf("%s\n got %s\nwant %s", c.s.Verdict, got, c.hex)
		}
		back, err := ReadResponse(bytes.NewReader(b), OpCheck)
		if err != nil || !reflect.DeepEqual(back, c.s) {
			t.Fatalf("%s back: %+v %v", c.s.Verdict, back, err)
		}
	}
}

// Every way a Check frame can break its layout is malformed.
func TestCheckMalformed(t *testing.T) {
	frame := func(code uint8, body string) []byte {
		b, _ := hex.DecodeString(body)
		return append(appendLocalHeader(nil, code, len(b)), b...)
	}
	for name, b := range map[string][]byte{
		"empty node":     frame(5, "0000000000000001"+"0000"+"0001"+"31"),
		"empty address":  frame(5, "0000000000000001"+"0001"+"61"+"0000"),
		"short":          frame(5, "00000000000001"),
		"trailing":       frame(5, "0000000000000001"+"0001"+"61"+"0001"+"31"+"00"),
		"node too long":  frame(5, "0000000000000001"+"0041"+strings.Repeat("61", 65)+"0001"+"31"),
		"nul in address": frame(5, "0000000000000001"+"0001"+"61"+"0001"+"00"),
	} {
		if _, err := ReadRequest(bytes.NewReader(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("request %s: %v", name, err)
		}
	}
	for name, body := range map[string]string{
		"verdict 3":             "0000000000000001" + "03" + "0000" + "0000",
		"valid with reason":     "0000000000000001" + "00" + "0001" + "61" + "0000",
		"unchanged with text":   "0000000000000001" + "02" + "0000" + "0001" + "61",
		"revoked without label": "0000000000000001" + "01" + "0000" + "0001" + "61",
		"no texts":              "0000000000000001" + "00",
	} {
		b, _ := hex.DecodeString(body)
		if _, err := ParseResponse(OpCheck, StatusOK, b); !errors.Is(err, ErrMalformed) {
			t.Errorf("response %s: %v", name, err)
		}
	}
}

// checkDir is a Checker: node names at addresses, a deny set and its
// generation.
type checkDir struct {
	admitAll
	at     map[string]proto.Addr
	denied map[string]bool
	gen    uint64
	stills int // calls of Still
}

func (d *checkDir) Generation() uint64 { return d.gen }

func (d *checkDir) Still(name string, a proto.Addr) error {
	d.stills++
	at, ok := d.at[name]
	switch {
	case !ok:
		return ErrUnknownNode
	case at != a:
		return fmt.Errorf("%w: elsewhere", ping.ErrAddrMismatch)
	case d.denied[name]:
		return ping.ErrRevoked
	}
	return nil
}

// admitAll admits every node (the handshake is not what these tests are
// about).
type admitAll struct{}

func (admitAll) Admit(proto.NodeID, proto.Addr, uint32) (string, error) { return "", nil }

func TestEngineCheck(t *testing.T) {
	a11, a12 := addr("10.0.0.11"), addr("10.0.0.12")
	dir := &checkDir{at: map[string]proto.Addr{"pbsn1": a11}, denied: map[string]bool{}}
	e := newTestEngine(t, dir)
	r, err := e.Check(0, "pbsn1", a11)
	if err != nil || r.Verdict != VerdictValid || r.Gen == 0 {
		t.Fatalf("first: %+v %v", r, err)
	}
	g := r.Gen
	// Quiet: nothing is looked up, however many connections ask.
	for i := 0; i < 3; i++ {
		if r, err := e.Check(g, "pbsn1", a11); err != nil || r.Verdict != VerdictUnchanged || r.Gen != g {
			t.Fatalf("quiet: %+v %v", r, err)
		}
	}
	if dir.stills != 1 {
		t.Fatalf("Still called %d times, want 1", dir.stills)
	}
	if r, _ := e.Check(g, "pbsn1", a12); r.Verdict != VerdictUnchanged {
		t.Fatalf("the generation vouches for the caller's own earlier answers only: %+v", r)
	}
	dir.denied["pbsn1"], dir.gen = true, dir.gen+1
	if r, err := e.Check(g, "pbsn1", a11); err != nil || r.Verdict != VerdictRevoked || !errors.Is(r.Err, ping.ErrRevoked) || r.Gen == g {
		t.Fatalf("denied: %+v %v", r, err)
	}
	if r, _ := e.Check(0, "pbsn2", a11); r.Verdict != VerdictRevoked || Reason(r.Err) != "unknown_node" {
		t.Fatalf("unknown: %+v", r)
	}
	if r, _ := e.Check(0, "pbsn1", a12); r.Verdict != VerdictRevoked || Reason(r.Err) != "addr_mismatch" {
		t.Fatalf("elsewhere: %+v", r)
	}
	// Another engine (a restarted daemon) at the same count answers under
	// another generation.
	e2 := newTestEngine(t, dir)
	if r2, _ := e2.Check(0, "pbsn1", a11); r2.Gen == r.Gen {
		t.Fatalf("two engines share generation %d", r.Gen)
	}
	// A directory that cannot check: the request is refused, not answered.
	if _, err := newTestEngine(t, admitAll{}).Check(0, "pbsn1", a11); !errors.Is(err, ErrInternal) {
		t.Fatalf("plain directory: %v", err)
	}
}

// newTestEngine is an engine of the server host with directory dir.
func newTestEngine(t *testing.T, dir Directory) *Engine {
	t.Helper()
	return newHost(t, "pbssrv", "10.0.0.1", 1, newCluster(t, 1, 7), dir, &clock{}).engine
}

// The annotated dumps of docs/PROTOCOL.md section 7.3 are these vectors:
// each line's leading hex groups, joined, block by block.
func TestCheckVectorsInProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte("### 7.3 Test vectors"))
	if i < 0 {
		t.Fatal("PROTOCOL.md has no section 7.3")
	}
	var blocks []string
	var cur strings.Builder
	in := false
	for _, line := range strings.Split(string(doc[i:]), "\n") {
		if strings.HasPrefix(line, "```") {
			if in {
				blocks = append(blocks, cur.String())
				cur.Reset()
			}
			in = !in
			continue
		}
		if !in {
			continue
		}
		for _, f := range strings.Fields(line) {
			if _, err := hex.DecodeString(f); err != nil {
				break
			}
			cur.WriteString(f)
		}
	}
	want := []string{checkRequestHex, checkUnchangedHex, checkRevokedHex}
	if len(blocks) < len(want) {
		t.Fatalf("section 7.3 has %d dumps, want %d", len(blocks), len(want))
	}
	for k, w := range want {
		if blocks[k] != w {
			t.Errorf("dump %d of section 7.3\n got %s\nwant %s", k+1, blocks[k], w)
		}
	}
}

package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"sync/atomic"
	"testing"

	"github.com/momgate/momgate/proto"
)

// pairSeed makes every sessionPair's randomness its own.
var pairSeed atomic.Uint64

// sessionPair returns two sessions of protection p, from a real swap.
func sessionPair(t testing.TB, p Protection, lim Limits) (a, b *Session, clock *fakeClock) {
	t.Helper()
	pa, pb := newPair(t)
	seed := pairSeed.Add(1) << 24
	ca := Config{Channel: ChannelIM, Min: p, Rand: &countingRand{n: seed}, Limits: lim}
	cb := Config{Channel: ChannelIM, Min: p, Rand: &countingRand{n: seed + 1<<20}, Limits: lim}
	sa, sb := swap(t, pa, pb, ca, cb)
	if sa.Protection() != p || sb.Protection() != p {
		t.Fatalf("protections %s %s, want %s", sa.Protection(), sb.Protection(), p)
	}
	return sa, sb, pa.clock
}

// sealN seals n application records from s, each of its own frame.
func sealN(t testing.TB, s *Session, n int, clock *fakeClock) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	for i := range out {
		rec, err := s.SealFrame(nil, imFrame(40, byte(i)), clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		out[i] = rec
	}
	return out
}

func openAll(t *testing.T, s *Session, recs [][]byte, clock *fakeClock) {
	t.Helper()
	for i, rec := range recs {
		f, out, err := s.OpenRecord(rec, nil, clock.Now())
		if err != nil || f == nil || len(out) != 0 {
			t.Fatalf("record %d: frame %x, out %x, %v", i, f, out, err)
		}
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, p := range []Protection{Auth, Encrypt} {
		t.Run(p.String(), func(t *testing.T) {
			a, b, clock := sessionPair(t, p, Limits{})
			for i, n := range []int{proto.HeaderSize, 40, 300, 70000} {
				f := imFrame(n, byte(i))
				rec, err := a.SealFrame(nil, f, clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				if len(rec) != n+RecordOverhead {
					t.Fatalf("record of %d bytes for a %d-byte frame", len(rec), n)
				}
				if visible := bytes.Contains(rec, f); visible != (p == Auth) {
					t.Fatalf("%s: frame visible in the record: %v", p, visible)
				}
				got, _, err := b.OpenRecord(rec, nil, clock.Now())
				if err != nil || !bytes.Equal(got, f) {
					t.Fatalf("open: %v", err)
				}
				// And the other direction, under the other key.
				rec, err = b.SealFrame(nil, f, clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				if got, _, err = a.OpenRecord(rec, nil, clock.Now()); err != nil || !bytes.Equal(got, f) {
					t.Fatalf("open back: %v", err)
				}
			}
			if in := a.Info(clock.Now()); in.Sealed != 4 || in.Opened != 4 || in.Generation != 0 || in.Protection != p {
				t.Fatalf("info %+v", in)
			}
		})
	}
}

// TestRecordTampering: each kind of damage is refused with its reason,
// and the session stays refused afterwards (even for genuine records).
func TestRecordTampering(t *testing.T) {
	type tc struct {
		name string
		make func(recs [][]byte) []byte // the bad record, given 40 genuine ones; 20 were delivered
		want error
	}
	cases := []tc{
		{"payload bit flipped", func(r [][]byte) []byte { return flip(r[20], 12) }, ErrAuth},
		{"tag bit flipped", func(r [][]byte) []byte { return flip(r[20], len(r[20])-1) }, ErrAuth},
		{"header type changed", func(r [][]byte) []byte { return flip(r[20], 3) }, ErrAuth},
		{"header magic changed", func(r [][]byte) []byte { return flip(r[20], 0) }, ErrAuth},
		{"length grown past the cap", func(r [][]byte) []byte { c := bytes.Clone(r[20]); c[4] = 0xff; return c }, ErrSize},
		{"length shorter than the record", func(r [][]byte) []byte { c := bytes.Clone(r[20]); c[7]--; return c }, ErrAuth},
		{"replay of the last record", func(r [][]byte) []byte { return r[19] }, ErrReplay},
		{"replay of an older record", func(r [][]byte) []byte { return r[3] }, ErrReplay},
		{"one record dropped", func(r [][]byte) []byte { return r[21] }, ErrReplay},
		{"sixteen records dropped", func(r [][]byte) []byte { return r[36] }, ErrReplay},
		{"seventeen records dropped", func(r [][]byte) []byte { return r[37] }, ErrAuth},
		{"forged record", func(r [][]byte) []byte { return forged(len(r[20])) }, ErrAuth},
		{"truncated record", func(r [][]byte) []byte { return r[20][:len(r[20])-1] }, ErrAuth},
		{"too short for a frame", func(r [][]byte) []byte { return forged(MinRecordSize - 1) }, ErrAuth},
		{"replay of a record older than the window", nil, ErrAuth},
	}
	for _, p := range []Protection{Auth, Encrypt} {
		for _, c := range cases {
			t.Run(p.String()+"/"+c.name, func(t *testing.T) {
				a, b, clock := sessionPair(t, p, Limits{})
				recs := sealN(t, a, 40, clock)
				var bad []byte
				if c.make == nil {
					// Deliver 36 records: record 2 has left the 32-record window.
					openAll(t, b, recs[:36], clock)
					bad = recs[2]
				} else {
					openAll(t, b, recs[:20], clock)
					bad = c.make(recs)
				}
				_, _, err := b.OpenRecord(bad, nil, clock.Now())
				if !errors.Is(err, c.want) {
					t.Fatalf("got %v, want %v", err, c.want)
				}
				if _, _, again := b.OpenRecord(recs[20], nil, clock.Now()); !errors.Is(again, c.want) {
					t.Fatalf("after the failure a genuine record gives %v, want the same failure", again)
				}
				if b.Info(clock.Now()).Closed != Reason(c.want) {
					t.Fatalf("info closed %q", b.Info(clock.Now()).Closed)
				}
			})
		}
	}
}

// TestRecordReflected: a record sent back to its own sender fails (each
// direction has its own key).
func TestRecordReflected(t *testing.T) {
	a, _, clock := sessionPair(t, Encrypt, Limits{})
	rec := sealN(t, a, 1, clock)[0]
	if _, _, err := a.OpenRecord(rec, nil, clock.Now()); !errors.Is(err, ErrAuth) {
		t.Fatalf("reflected record: %v, want ErrAuth", err)
	}
}

// TestRecordOfAnotherSession: a record of one session is refused by
// another between the same peers.
func TestRecordOfAnotherSession(t *testing.T) {
	a1, _, clock := sessionPair(t, Encrypt, Limits{})
	_, b2, _ := sessionPair(t, Encrypt, Limits{})
	if _, _, err := b2.OpenRecord(sealN(t, a1, 1, clock)[0], nil, clock.Now()); !errors.Is(err, ErrAuth) {
		t.Fatalf("record of another session: %v, want ErrAuth", err)
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

func forged(n int) []byte {
	b := make([]byte, n)
	proto.Header{Version: proto.V2, Type: RecordType, Length: uint32(n - proto.HeaderSize)}.Put(b)
	for i := proto.HeaderSize; i < n; i++ {
		b[i] = byte(i * 7)
	}
	return b
}

// TestSealRefusals: what a session will not seal, and that refusing it
// leaves the session usable.
func TestSealRefusals(t *testing.T) {
	a, b, clock := sessionPair(t, Encrypt, Limits{MaxRecord: 4096})
	for name, f := range map[string][]byte{
		"no header":       {1, 2, 3},
		"length mismatch": append(imFrame(40, 0), 0),
		"bad magic":       flip(imFrame(40, 0), 0),
		"control type":    frameOf(RekeyType, make([]byte, 40)),
	} {
		if _, err := a.SealFrame(nil, f, clock.Now()); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
	if _, err := a.SealFrame(nil, imFrame(4096-RecordOverhead+1, 0), clock.Now()); !errors.Is(err, ErrSize) {
		t.Fatalf("frame past the cap: %v, want ErrSize", err)
	}
	rec, err := a.SealFrame(nil, imFrame(4096-RecordOverhead, 0), clock.Now())
	if err != nil {
		t.Fatalf("frame at the cap: %v", err)
	}
	if _, _, err := b.OpenRecord(rec, nil, clock.Now()); err != nil {
		t.Fatalf("session unusable after refusals: %v", err)
	}
}

// TestRecordCapOnReceive: a record over the receiver's cap is ErrSize.
func TestRecordCapOnReceive(t *testing.T) {
	a, _, clock := sessionPair(t, Encrypt, Limits{})
	_, b, _ := sessionPair(t, Encrypt, Limits{MaxRecord: 1024})
	rec, err := a.SealFrame(nil, imFrame(2000, 0), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.OpenRecord(rec, nil, clock.Now()); !errors.Is(err, ErrSize) {
		t.Fatalf("record over the cap: %v, want ErrSize", err)
	}
}

func TestParseRecordHeader(t *testing.T) {
	h := func(v proto.Version, typ proto.Type, n uint32) []byte {
		return proto.AppendHeader(nil, proto.Header{Version: v, Type: typ, Length: n})
	}
	for _, c := range []struct {
		name  string
		b     []byte
		limit int
		want  error
	}{
		{"smallest", h(proto.V2, RecordType, MinRecordSize-proto.HeaderSize), 0, nil},
		{"largest", h(proto.V2, RecordType, MaxRecordSize-proto.HeaderSize), 0, nil},
		{"one past the largest", h(proto.V2, RecordType, MaxRecordSize-proto.HeaderSize+1), 0, ErrSize},
		{"length 2^32-1", h(proto.V2, RecordType, 0xffffffff), 0, ErrSize},
		{"past a lower cap", h(proto.V2, RecordType, 100), 100, ErrSize},
		{"too short", h(proto.V2, RecordType, MinRecordSize-proto.HeaderSize-1), 0, ErrAuth},
		{"version 1", h(proto.V1, RecordType, 40), 0, ErrAuth},
		{"a plain frame", h(proto.V2, proto.TypeIMPoll, 40), 0, ErrAuth},
		{"short header", h(proto.V2, RecordType, 40)[:7], 0, ErrAuth},
	} {
		n, err := ParseRecordHeader(c.b, c.limit)
		if !errors.Is(err, c.want) || (err == nil && n != int(binary.BigEndian.Uint32(c.b[4:]))+proto.HeaderSize) {
			t.Errorf("%s: %d %v, want %v", c.name, n, err, c.want)
		}
	}
}

// limitedReader fails the test if more than max bytes are read.
type limitedReader struct {
	t   *testing.T
	r   io.Reader
	max int
}

func (l *limitedReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if l.max -= n; l.max < 0 {
		l.t.Fatalf("read past the header of an oversized record")
	}
	return n, err
}

func TestReadRecord(t *testing.T) {
	a, _, clock := sessionPair(t, Encrypt, Limits{})
	recs := sealN(t, a, 3, clock)
	stream := bytes.Join(recs, nil)
	r := bytes.NewReader(stream)
	var buf []byte
	for i := range recs {
		got, err := ReadRecord(r, buf, 0)
		if err != nil || !bytes.Equal(got, recs[i]) {
			t.Fatalf("record %d: %v", i, err)
		}
		buf = got
	}
	if _, err := ReadRecord(r, buf, 0); err != io.EOF {
		t.Fatalf("end of stream: %v, want io.EOF", err)
	}
	if _, err := ReadRecord(bytes.NewReader(stream[:len(recs[0])-1]), nil, 0); !errors.Is(err, ErrAuth) {
		t.Fatalf("record cut short: %v, want ErrAuth", err)
	}
	if _, err := ReadRecord(bytes.NewReader(stream[:5]), nil, 0); !errors.Is(err, ErrAuth) {
		t.Fatalf("header cut short: %v, want ErrAuth", err)
	}
	big := append(proto.AppendHeader(nil, proto.Header{Version: proto.V2, Type: RecordType, Length: 1 << 30}), make([]byte, 64)...)
	if _, err := ReadRecord(&limitedReader{t: t, r: bytes.NewReader(big), max: proto.HeaderSize}, nil, 0); !errors.Is(err, ErrSize) {
		t.Fatalf("oversized record: %v, want ErrSize", err)
	}
}

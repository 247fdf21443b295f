package proto

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

func TestParseHeader(t *testing.T) {
	ok := AppendHeader(nil, Header{Version: V1, Type: TypeClusterAddrs, Length: 12})
	h, err := ParseHeader(append(ok, 0xee)) // only the first 8 bytes count
	if err != nil || h != (Header{Version: V1, Type: TypeClusterAddrs, Length: 12}) {
		t.Fatalf("ParseHeader = %v, %v", h, err)
	}
	max := AppendHeader(nil, Header{Version: V2, Type: TypeDeny, Length: MaxFrameSize - HeaderSize})
	if _, err := ParseHeader(max); err != nil {
		t.Fatalf("largest frame refused: %v", err)
	}
	// The checks run in the order of PROTOCOL.md section 1: a header
	// that is wrong in several ways reports the first.
	order := []struct {
		name string
		b    []byte
		want error
	}{
		{"short and bad magic", []byte("XX\x09\x99"), ErrTruncated},
		{"bad magic before version", []byte("XX\x09\x99\xff\xff\xff\xff"), ErrBadMagic},
		{"version before size", []byte("MG\x09\x99\xff\xff\xff\xff"), ErrUnsupportedVersion},
		{"size before type", []byte("MG\x02\x99\xff\xff\xff\xff"), ErrOversize},
		{"type", []byte("MG\x02\x99\x00\x00\x00\x00"), ErrUnknownType},
	}
	for _, tc := range order {
		_, err := ParseHeader(tc.b)
		if err != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestParseHeaderDoesNotAllocate(t *testing.T) {
	frames := [][]byte{
		Marshal(&Ping{KeyID: 1}),
		[]byte("MG\x02\x99\x00\x00\x00\x00"),
		[]byte("MG\x02\x10\xff\xff\xff\xff"),
		[]byte("MG"),
	}
	for _, f := range frames {
		if n := testing.AllocsPerRun(100, func() { _, _ = ParseHeader(f) }); n != 0 {
			t.Errorf("ParseHeader(%x) allocates %v times", f, n)
		}
	}
}

func TestReadFrame(t *testing.T) {
	a := Marshal(&KeyActivate{Rotation: 1, KeyID: 2})
	b := Marshal(&Reject{Code: 3, Reason: "no"})
	var in bytes.Buffer
	in.Write(a)
	in.Write(b)

	buf := make([]byte, 0, 64)
	got, err := ReadFrame(&in, buf)
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("first frame: %x, %v", got, err)
	}
	if &got[0] != &buf[:1][0] {
		t.Errorf("a large enough buffer was not reused")
	}
	got, err = ReadFrame(&in, nil)
	if err != nil || !bytes.Equal(got, b) {
		t.Fatalf("second frame: %x, %v", got, err)
	}
	if _, err := ReadFrame(&in, nil); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestReadFrameRejects(t *testing.T) {
	ping := Marshal(&Ping{KeyID: 1})
	cases := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{"cut in header", ping[:5], MaxFrameSize, ErrTruncated},
		{"cut in body", ping[:len(ping)-1], MaxFrameSize, ErrTruncated},
		{"header only", ping[:HeaderSize], MaxFrameSize, ErrTruncated},
		{"bad magic", append([]byte("XY"), ping[2:]...), MaxFrameSize, ErrBadMagic},
		{"version", append([]byte("MG\x07"), ping[3:]...), MaxFrameSize, ErrUnsupportedVersion},
		{"unknown type", append([]byte("MG\x02\x77"), ping[4:]...), MaxFrameSize, ErrUnknownType},
		{"over MaxFrameSize", []byte("MG\x02\x10\x00\x10\x00\x00"), MaxFrameSize, ErrOversize},
		{"over the caller's limit", ping, len(ping) - 1, ErrOversize},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadFrameLimit(bytes.NewReader(tc.in), nil, tc.max)
			if got != nil {
				t.Fatalf("returned a frame: %x", got)
			}
			checkSentinel(t, err, tc.want)
		})
	}
	// Exactly at the caller's limit is fine.
	if _, err := ReadFrameLimit(bytes.NewReader(ping), nil, len(ping)); err != nil {
		t.Fatalf("frame of exactly the limit: %v", err)
	}
}

// TestReadFrameOversizeReadsNoBody: an oversize header is refused before
// any body byte is read (or a buffer allocated).
func TestReadFrameOversizeReadsNoBody(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header Header
		limit  int
	}{
		{"caller limit 4 KiB", Header{Version: V2, Type: TypeDeny, Length: 5000}, 4096},
		{"MaxFrameSize", Header{Version: V2, Type: TypeDeny, Length: MaxFrameSize}, MaxFrameSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var in bytes.Buffer
			in.Write(AppendHeader(nil, tc.header))
			in.Write(make([]byte, 5000))
			_, err := ReadFrameLimit(&in, nil, tc.limit)
			checkSentinel(t, err, ErrOversize)
			if in.Len() != 5000 {
				t.Fatalf("%d body bytes read before refusing", 5000-in.Len())
			}
		})
	}
	// And without allocating a buffer for the announced body: refusing a
	// header that announces 1 MiB costs a few small error values, not 1 MiB.
	hdr := AppendHeader(nil, Header{Version: V2, Type: TypeDeny, Length: MaxFrameSize - HeaderSize})
	r := bytes.NewReader(hdr)
	const runs = 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		r.Reset(hdr)
		if _, err := ReadFrameLimit(r, nil, 4096); !errors.Is(err, ErrOversize) {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if perRun := (after.TotalAlloc - before.TotalAlloc) / runs; perRun > 4096 {
		t.Fatalf("refusing an oversize frame allocated %d bytes", perRun)
	}
}

// errReader fails after giving its bytes.
type errReader struct {
	b   []byte
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func TestReadFramePassesIOErrors(t *testing.T) {
	boom := errors.New("connection reset")
	ping := Marshal(&Ping{KeyID: 1})
	for _, cut := range []int{0, 3, HeaderSize, HeaderSize + 5} {
		_, err := ReadFrame(&errReader{b: ping[:cut], err: boom}, nil)
		if !errors.Is(err, boom) {
			t.Errorf("cut at %d: got %v, want the reader's error", cut, err)
		}
	}
}

// countingWriter records each Write.
type countingWriter struct {
	writes [][]byte
	err    error
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, bytes.Clone(p))
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

func TestWriteFrame(t *testing.T) {
	for _, s := range sampleMessages() {
		var w countingWriter
		if err := WriteFrame(&w, s.msg); err != nil {
			t.Fatal(err)
		}
		if len(w.writes) != 1 || !bytes.Equal(w.writes[0], Marshal(s.msg)) {
			t.Fatalf("%s: %d writes, want one whole frame", s.name, len(w.writes))
		}
		got, err := ReadFrame(bytes.NewReader(w.writes[0]), nil)
		if err != nil {
			t.Fatalf("%s: read back: %v", s.name, err)
		}
		if _, err := Unmarshal(got); err != nil {
			t.Fatalf("%s: decode: %v", s.name, err)
		}
	}
	boom := errors.New("broken pipe")
	if err := WriteFrame(&countingWriter{err: boom}, &ModeMsg{Mode: ModePing}); !errors.Is(err, boom) {
		t.Fatalf("write error: %v", err)
	}
}

// WriteFrame refuses what the fixed-width length fields would truncate.
func TestWriteFrameRefusesUnencodable(t *testing.T) {
	cases := map[string]Message{
		"name too long":     &Welcome{Name: strings.Repeat("n", 300)},
		"job name too long": &IMJoin{Job: strings.Repeat("j", 65), Mother: "m"},
		"too many keys":     &Welcome{Name: "n1", Keys: make([]WrappedKey, 256)},
		"runs over a frame": &ClusterAddrs{Runs: make([]AddrRun, MaxFrameSize/8+1)},
	}
	for name, m := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteFrame(&buf, m); !errors.Is(err, ErrEncode) {
				t.Fatalf("WriteFrame: %v, want ErrEncode", err)
			}
			if buf.Len() != 0 {
				t.Fatalf("wrote %d bytes of an invalid frame", buf.Len())
			}
		})
	}
	var buf bytes.Buffer
	if err := WriteFrame(&buf, &Reject{Code: 1, Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
}

// TestReadFrameIntoBufferAllocatesNothing: a frame that fits the buffer
// is read, header and body, without an allocation; one that does not gets
// a buffer of its own, the header carried over.
func TestReadFrameIntoBufferAllocatesNothing(t *testing.T) {
	frame := Marshal(&KeyActivate{Rotation: 1, KeyID: 2})
	r := bytes.NewReader(frame)
	buf := make([]byte, 64)
	if n := testing.AllocsPerRun(100, func() {
		r.Reset(frame)
		if got, err := ReadFrameLimit(r, buf, 64); err != nil || !bytes.Equal(got, frame) {
			t.Fatalf("read %x, %v", got, err)
		}
	}); n != 0 {
		t.Fatalf("ReadFrameLimit allocates %v times with a buffer that fits", n)
	}
	small := make([]byte, HeaderSize)
	r.Reset(frame)
	got, err := ReadFrameLimit(r, small, 64)
	if err != nil || !bytes.Equal(got, frame) {
		t.Fatalf("frame larger than the buffer: %x, %v", got, err)
	}
}

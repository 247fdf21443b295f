package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/reasons"
)

// clock is an injectable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Date(2024, 5, 6, 7, 8, 9, 123456789, time.UTC)}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer is a bytes.Buffer safe to read while Records run.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

// parseLogfmt parses one logrus text line into its key/value pairs.
func parseLogfmt(t *testing.T, line string) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for s := line; s != ""; {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			t.Fatalf("bad logfmt at %q in %q", s, line)
		}
		key := s[:eq]
		s = s[eq+1:]
		var val string
		if strings.HasPrefix(s, `"`) {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				t.Fatalf("bad quoted value at %q in %q: %v", s, line, err)
			}
			val, _ = strconv.Unquote(q)
			s = s[len(q):]
		} else {
			end := strings.IndexByte(s, ' ')
			if end < 0 {
				end = len(s)
			}
			val, s = s[:end], s[end:]
		}
		out[key] = val
	}
	return out
}

func peerString(p netip.AddrPort) string {
	if p.Addr().Is4In6() {
		return netip.AddrPortFrom(p.Addr().Unmap(), p.Port()).String()
	}
	return p.String()
}

var entryFields = []string{"time", "channel", "outcome", "reason", "peer", "node", "key_id", "detail"}

func sampleEntries(now time.Time) []Entry {
	return []Entry{
		{
			Time:    now,
			Channel: ChannelControl,
			Outcome: Accepted,
			Peer:    netip.MustParseAddrPort("127.0.0.2:15001"),
			Node:    "n1",
			KeyID:   "7",
			Detail:  "ping v2",
		},
		{
			Time:    now.Add(time.Millisecond),
			Channel: ChannelIM,
			Outcome: Rejected,
			Reason:  "replay",
			Peer:    netip.MustParseAddrPort("[::ffff:127.0.0.3]:15003"),
			Node:    "n2",
			KeyID:   "8",
			Detail:  "ts 5 <= mark 9\nsecond line",
		},
	}
}

func TestTextLinesHaveEveryField(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Format: FormatText, Now: clk.Now})
	es := sampleEntries(clk.Now())
	for _, e := range es {
		l.Record(e)
	}
	got := lines(buf.String())
	if len(got) != len(es) {
		t.Fatalf("got %d lines, want %d:\n%s", len(got), len(es), buf.String())
	}
	for i, e := range es {
		kv := parseLogfmt(t, got[i])
		for _, f := range entryFields {
			if _, ok := kv[f]; !ok {
				t.Errorf("line %d lacks %s: %s", i, f, got[i])
			}
		}
		want := map[string]string{
			"time":    e.Time.Format(time.RFC3339Nano),
			"channel": e.Channel,
			"outcome": e.Outcome,
			"reason":  string(e.Reason),
			"peer":    peerString(e.Peer),
			"node":    e.Node,
			"key_id":  e.KeyID,
			"detail":  e.Detail,
		}
		for k, v := range want {
			if kv[k] != v {
				t.Errorf("line %d %s = %q, want %q", i, k, kv[k], v)
			}
		}
	}
	if kv := parseLogfmt(t, got[1]); kv["peer"] != "127.0.0.3:15003" {
		t.Errorf("IPv4-mapped peer logged as %q", kv["peer"])
	}
	if !strings.Contains(got[1], "level=warning") || !strings.Contains(got[0], "level=info") {
		t.Errorf("levels: %q / %q", got[0], got[1])
	}
}

func TestJSONLinesHaveEveryField(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Format: FormatJSON, Now: clk.Now})
	es := sampleEntries(clk.Now())
	for _, e := range es {
		l.Record(e)
	}
	got := lines(buf.String())
	if len(got) != len(es) {
		t.Fatalf("got %d lines, want %d", len(got), len(es))
	}
	for i, e := range es {
		var m map[string]any
		if err := json.Unmarshal([]byte(got[i]), &m); err != nil {
			t.Fatalf("line %d: %v: %s", i, err, got[i])
		}
		want := map[string]string{
			"time":    e.Time.Format(time.RFC3339Nano),
			"channel": e.Channel,
			"outcome": e.Outcome,
			"reason":  string(e.Reason),
			"peer":    peerString(e.Peer),
			"node":    e.Node,
			"key_id":  e.KeyID,
			"detail":  e.Detail,
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("line %d %s = %#v, want %q", i, k, m[k], v)
			}
		}
	}
}

func TestPeerName(t *testing.T) {
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Format: FormatJSON, Now: newClock().Now})
	l.Record(Entry{Channel: ChannelAdmin, Outcome: Rejected, Reason: "uid", PeerName: "uid=1000"})
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if m["peer"] != "uid=1000" {
		t.Fatalf("peer = %v", m["peer"])
	}
}

// TestFlood floods from one source and checks that the lines stay bounded,
// the aggregate is exact, another source still gets through and the
// counters are exact.
func TestFlood(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Format: FormatText, Now: clk.Now})
	const n = 10000
	other := Entry{Channel: ChannelIM, Outcome: Accepted, Peer: netip.MustParseAddrPort("127.0.0.10:999"), Node: "good"}
	for i := 0; i < n; i++ {
		reason := "replay"
		if i%2 == 1 {
			reason = "auth"
		}
		l.Record(Entry{
			Channel: ChannelIM, Outcome: Rejected, Reason: reasons.Reason(reason),
			Peer: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.9"), uint16(1024+i%5000)),
		})
		if i == n/2 {
			l.Record(other)
		}
	}
	l.Flush()
	l.Flush() // nothing pending: no second aggregate

	got := lines(buf.String())
	if want := DefaultPerSourceBurst + 2; len(got) != want {
		t.Fatalf("got %d lines, want %d", len(got), want)
	}
	var sawOther bool
	for _, ln := range got {
		if strings.Contains(ln, `node=good`) {
			sawOther = true
		}
	}
	if !sawOther {
		t.Error("the other source's entry was not written during the flood")
	}
	agg := parseLogfmt(t, got[len(got)-1])
	if agg["msg"] != "9980 more from 127.0.0.9 suppressed" {
		t.Errorf("aggregate msg = %q", agg["msg"])
	}
	if agg["peer"] != "127.0.0.9" || agg["suppressed"] != "9980" || agg["reasons"] != "auth:4990,replay:4990" {
		t.Errorf("aggregate fields = %v", agg)
	}

	c := l.Counters()
	if c.Accepted != 1 || c.Rejected["replay"] != n/2 || c.Rejected["auth"] != n/2 || len(c.Rejected) != 2 {
		t.Errorf("counters = %+v", c)
	}
	if c.Suppressed != n-DefaultPerSourceBurst || c.Lines != uint64(len(got)) || c.WriteErrors != 0 {
		t.Errorf("counters = %+v", c)
	}
}

// TestAggregateBeforeNextLine checks that a source allowed again first gets
// its aggregate, then its line.
func TestAggregateBeforeNextLine(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Format: FormatJSON, Now: clk.Now, PerSourceBurst: 1, PerSourceRate: 1})
	peer := netip.MustParseAddrPort("10.0.0.1:1")
	e := Entry{Channel: ChannelControl, Outcome: Rejected, Reason: "auth", Peer: peer}
	for i := 0; i < 4; i++ {
		l.Record(e)
	}
	clk.Advance(time.Second)
	e.Reason, e.Detail = "stale", "last"
	l.Record(e)
	got := lines(buf.String())
	if len(got) != 3 {
		t.Fatalf("got %d lines:\n%s", len(got), buf.String())
	}
	var agg, last map[string]any
	if err := json.Unmarshal([]byte(got[1]), &agg); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(got[2]), &last); err != nil {
		t.Fatal(err)
	}
	if agg["msg"] != "3 more from 10.0.0.1 suppressed" || agg["suppressed"] != float64(3) || agg["reasons"] != "auth:3" || agg["peer"] != "10.0.0.1" {
		t.Errorf("aggregate = %v", agg)
	}
	if last["detail"] != "last" {
		t.Errorf("last = %v", last)
	}
	l.Flush()
	if n := len(lines(buf.String())); n != 3 {
		t.Errorf("Flush wrote %d lines after the aggregate was emitted", n-3)
	}
}

func TestRefill(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Now: clk.Now}) // burst 20, 5/s
	e := Entry{Channel: ChannelIM, Outcome: Accepted, Peer: netip.MustParseAddrPort("127.0.0.5:1")}
	record := func(k int) uint64 {
		before := l.Counters().Lines
		for i := 0; i < k; i++ {
			l.Record(e)
		}
		return l.Counters().Lines - before
	}
	if n := record(30); n != 20 {
		t.Fatalf("burst wrote %d, want 20", n)
	}
	clk.Advance(time.Second)
	if n := record(10); n != 5+1 { // 5 tokens, plus the aggregate of 10
		t.Fatalf("after 1s wrote %d lines, want 6", n)
	}
	clk.Advance(200 * time.Millisecond)
	if n := record(3); n != 1+1 {
		t.Fatalf("after 200ms wrote %d lines, want 2", n)
	}
	clk.Advance(time.Hour) // refill is capped at the burst
	if n := record(30); n != 20+1 {
		t.Fatalf("after 1h wrote %d lines, want 21", n)
	}
	c := l.Counters()
	if c.Accepted != 73 || c.Suppressed != 73-20-5-1-20 {
		t.Errorf("counters = %+v", c)
	}
}

func TestClockBackwards(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Now: clk.Now, PerSourceBurst: 2, PerSourceRate: 1})
	e := Entry{Channel: ChannelIM, Outcome: Accepted, Peer: netip.MustParseAddrPort("127.0.0.5:1")}
	l.Record(e)
	l.Record(e)
	clk.Advance(-time.Hour)
	l.Record(e) // no tokens appear from a backward step
	if c := l.Counters(); c.Lines != 2 || c.Suppressed != 1 {
		t.Fatalf("counters = %+v", c)
	}
}

func TestMaxSources(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	const max = 100
	l := New(Config{Out: &buf, Format: FormatJSON, Now: clk.Now, MaxSources: max, PerSourceBurst: 1})
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 7)
	}
	keep := Entry{Channel: ChannelIM, Outcome: Accepted, Peer: netip.MustParseAddrPort("192.168.0.1:7")}
	l.Record(keep)
	const total = 1000
	for i := 0; i < total; i++ {
		e := Entry{Channel: ChannelIM, Outcome: Rejected, Reason: "auth", Peer: addr(i)}
		l.Record(e)
		l.Record(e) // suppressed: pending aggregate of 1
		l.Record(keep)
		if n := l.Sources(); n > max {
			t.Fatalf("%d sources tracked, max %d", n, max)
		}
	}
	if n := l.Sources(); n != max {
		t.Fatalf("%d sources tracked, want %d", n, max)
	}
	l.Flush()
	// Every suppressed entry is accounted for in exactly one aggregate,
	// whether written on eviction or on Flush.
	var aggSum float64
	var aggs int
	for _, ln := range lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatal(err)
		}
		if s, ok := m["suppressed"].(float64); ok {
			aggSum += s
			aggs++
		}
	}
	c := l.Counters()
	if uint64(aggSum) != c.Suppressed {
		t.Errorf("aggregates sum to %v, suppressed %d", aggSum, c.Suppressed)
	}
	// The frequently seen source was never evicted, so its bucket kept
	// running dry: it wrote 1 line and had the rest suppressed.
	if c.Suppressed != total+total {
		t.Errorf("suppressed = %d, want %d", c.Suppressed, 2*total)
	}
	if c.Accepted != total+1 || c.Rejected["auth"] != 2*total {
		t.Errorf("counters = %+v", c)
	}
	if c.Lines != uint64(len(lines(buf.String()))) {
		t.Errorf("Lines = %d, buffer has %d", c.Lines, len(lines(buf.String())))
	}
	if aggs != total+1 { // one per evicted or flushed source, plus keep's
		t.Errorf("%d aggregates, want %d", aggs, total+1)
	}
}

func TestReasonLabelsBounded(t *testing.T) {
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Now: newClock().Now, PerSourceBurst: 1})
	for i := 0; i < 3*maxReasonLabels; i++ {
		l.Record(Entry{Channel: ChannelIM, Outcome: Rejected, Reason: reasons.Reason(fmt.Sprintf("r%d", i)), Peer: netip.MustParseAddrPort("127.0.0.1:1")})
	}
	l.Record(Entry{Channel: ChannelIM, Outcome: Rejected, Peer: netip.MustParseAddrPort("127.0.0.1:1")})
	c := l.Counters()
	if len(c.Rejected) != maxReasonLabels+1 {
		t.Errorf("%d labels, want %d", len(c.Rejected), maxReasonLabels+1)
	}
	var sum uint64
	for _, v := range c.Rejected {
		sum += v
	}
	if sum != 3*maxReasonLabels+1 {
		t.Errorf("sum = %d", sum)
	}
	l.Flush()
	ls := lines(buf.String())
	agg := parseLogfmt(t, ls[len(ls)-1])
	// 5 named slots, the rest folded into other.
	if want := "other:" + strconv.Itoa(3*maxReasonLabels-(aggSlots-1)) + ",r1:1,r2:1,r3:1,r4:1,r5:1"; agg["reasons"] != want {
		t.Errorf("reasons = %q, want %q", agg["reasons"], want)
	}
}

func TestConcurrentRecord(t *testing.T) {
	clk := newClock()
	buf := &syncBuffer{}
	l := New(Config{Out: buf, Format: FormatJSON, Now: clk.Now, PerSourceBurst: 3, PerSourceRate: 2, MaxSources: 16})
	const workers, per = 8, 500
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				e := Entry{Channel: ChannelIM, Outcome: Rejected, Reason: "replay",
					Peer: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(w), byte(i % 24)}), 1)}
				if i%3 == 0 {
					e.Outcome, e.Reason = Accepted, ""
				}
				l.Record(e)
				switch i % 50 {
				case 0:
					l.Flush()
				case 1:
					_ = l.Counters()
				case 2:
					clk.Advance(100 * time.Millisecond)
				}
			}
		}(w)
	}
	wg.Wait()
	l.Flush()
	c := l.Counters()
	if got := c.Accepted + c.Rejected["replay"]; got != workers*per {
		t.Errorf("counted %d, want %d", got, workers*per)
	}
	var entries, aggSum uint64
	ls := lines(buf.String())
	for _, ln := range ls {
		var m map[string]any
		if err := json.Unmarshal([]byte(ln), &m); err != nil {
			t.Fatal(err)
		}
		if s, ok := m["suppressed"].(float64); ok {
			aggSum += uint64(s)
		} else {
			entries++
		}
	}
	if entries+c.Suppressed != workers*per || aggSum != c.Suppressed || c.Lines != uint64(len(ls)) {
		t.Errorf("entries %d + suppressed %d != %d, or aggregates %d, or lines %d != %d",
			entries, c.Suppressed, workers*per, aggSum, c.Lines, len(ls))
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func TestWriteErrorsCounted(t *testing.T) {
	l := New(Config{Out: failWriter{}, Now: newClock().Now})
	l.Record(Entry{Channel: ChannelIM, Outcome: Accepted, Peer: netip.MustParseAddrPort("127.0.0.1:1")})
	if c := l.Counters(); c.WriteErrors != 1 || c.Accepted != 1 {
		t.Fatalf("counters = %+v", c)
	}
}

func TestCheckFormat(t *testing.T) {
	for _, f := range []string{"", "text", "json"} {
		if err := CheckFormat(f); err != nil {
			t.Errorf("CheckFormat(%q) = %v", f, err)
		}
	}
	if err := CheckFormat("xml"); err == nil {
		t.Error("CheckFormat(xml) = nil")
	}
	defer func() {
		if recover() == nil {
			t.Error("New with a bad format did not panic")
		}
	}()
	New(Config{Out: &bytes.Buffer{}, Format: "xml"})
}

func TestRunFlushesOnCancel(t *testing.T) {
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Now: newClock().Now, PerSourceBurst: 1})
	e := Entry{Channel: ChannelIM, Outcome: Accepted, Peer: netip.MustParseAddrPort("127.0.0.1:1")}
	l.Record(e)
	l.Record(e)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l.Run(ctx, time.Hour)
	if !strings.Contains(buf.String(), "1 more from 127.0.0.1 suppressed") {
		t.Fatalf("no aggregate after Run returned:\n%s", buf.String())
	}
}

func BenchmarkRecordSuppressed(b *testing.B) {
	clk := newClock()
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Now: clk.Now, PerSourceBurst: 1})
	e := Entry{Channel: ChannelIM, Outcome: Rejected, Reason: "replay", Peer: netip.MustParseAddrPort("127.0.0.9:4000")}
	l.Record(e)
	buf.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Record(e)
	}
	b.StopTimer()
	if buf.Len() != 0 {
		b.Fatal("suppressed entries were written")
	}
}

func BenchmarkRecordWritten(b *testing.B) {
	t0 := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var n int64
	now := func() time.Time { n++; return t0.Add(time.Duration(n) * time.Second) } // always a token
	l := New(Config{Out: discard{}, Now: now})
	e := Entry{Channel: ChannelIM, Outcome: Rejected, Reason: "replay", Peer: netip.MustParseAddrPort("127.0.0.9:4000"),
		Node: "node0042", KeyID: "17", Detail: "ts 5 <= mark 9"}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		l.Record(e)
	}
	b.StopTimer()
	if c := l.Counters(); c.Suppressed != 0 {
		b.Fatalf("suppressed %d", c.Suppressed)
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// TestBinaryNodeAndKeyFormatted: ID and Key are written as NodeID (and
// Node, when it is empty) and KeyID would be, and the strings win when
// both are set.
func TestBinaryNodeAndKeyFormatted(t *testing.T) {
	clk := newClock()
	var buf bytes.Buffer
	l := New(Config{Out: &buf, Format: FormatJSON, Now: clk.Now})
	id := uuid.MustParse("6f1c0b0e-8a43-4c1d-9d2e-0a1b2c3d4e5f")
	peer := netip.MustParseAddrPort("127.0.0.9:4000")
	l.Record(Entry{Channel: ChannelIM, Outcome: Accepted, Peer: peer, ID: id, Key: keys.KeyID(0x0a0b0c0d)})
	l.Record(Entry{Channel: ChannelIM, Outcome: Accepted, Peer: peer, ID: id, Node: "n1", Key: 1, KeyID: "given"})
	got := lines(buf.String())
	if len(got) != 2 {
		t.Fatalf("got %d lines", len(got))
	}
	for i, want := range [][3]string{{id.String(), id.String(), "0a0b0c0d"}, {"n1", id.String(), "given"}} {
		var m map[string]any
		if err := json.Unmarshal([]byte(got[i]), &m); err != nil {
			t.Fatal(err)
		}
		if m["node"] != want[0] || m["node_id"] != want[1] || m["key_id"] != want[2] {
			t.Errorf("line %d: node %v node_id %v key_id %v, want %q %q %q", i, m["node"], m["node_id"], m["key_id"], want[0], want[1], want[2])
		}
	}
}

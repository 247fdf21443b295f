// Package audit is the admission audit log of the server and the MOM: one
// line for every attempted admission, accepted or rejected, with its reason
// (like HACMP's clcomd.log).
//
// Lines are rate-limited per source address with a token bucket, so a flood
// from one address can neither fill the disk nor starve the lines of other
// sources. What a bucket suppresses is summarised in one aggregated line
// ("N more from ADDR suppressed") when the source is next allowed a line or
// on Flush. The counters (Counters) are exact and never rate-limited.
package audit

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/reasons"
)

// Channels an admission is attempted on.
const (
	ChannelControl = "control" // MOM control connection to the server
	ChannelIM      = "im"      // inter-MOM connection
	ChannelEnroll  = "enroll"  // enrollment of a new node
	ChannelAdmin   = "admin"   // admin socket
)

// Outcomes of an admission.
const (
	Accepted = "accepted"
	Rejected = "rejected"
)

// Output formats.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// Defaults for Config.
const (
	DefaultPerSourceBurst = 20
	DefaultPerSourceRate  = 5.0 // lines per second
	DefaultMaxSources     = 65536
)

// Limits on the exact counters and on aggregated reasons.
const (
	// maxReasonLabels bounds the distinct reason labels counted in
	// Snapshot.Rejected; later labels are counted under "other".
	maxReasonLabels = 64
	// aggSlots bounds the distinct reasons kept per suppressed source; the
	// last slot collects the rest under "other".
	aggSlots = 6
)

// reasonOther is the label for reasons beyond the limits and for rejections
// without a reason.
const reasonOther = string(reasons.Other)

// Entry is one attempted admission.
type Entry struct {
	// Time of the attempt; zero means the Log's clock.
	Time time.Time
	// Channel is one of the Channel constants.
	Channel string
	// Outcome is Accepted or Rejected.
	Outcome string
	// Reason is the rejection's label, one of package reasons' registry;
	// "" when accepted.
	Reason reasons.Reason
	// Peer is the remote address, logged with IPv4-mapped addresses
	// unmapped; its IP (port ignored) selects the rate-limit bucket.
	Peer netip.AddrPort
	// PeerName labels a peer without an IP address (the admin socket's
	// "uid=0"); it is logged and bucketed when Peer is the zero value.
	PeerName string
	// Node is the node's name, if known (else its id).
	Node string
	// NodeID is the node's id (UUID), if known; logged as node_id only
	// when set.
	NodeID string
	// KeyID is the cluster key id the peer used, if any.
	KeyID string
	// ID and Key are the node id and the key id in binary, for the
	// admission paths: they are formatted only if the line is written (a
	// rate-limited source's entries are only counted), ID as NodeID (and
	// as Node, when Node is empty) and Key as KeyID, only where those are
	// empty. Zero is none.
	ID  uuid.UUID
	Key keys.KeyID
	// Detail is free text (an error message, a protocol version).
	Detail string
}

// Config configures a Log.
type Config struct {
	// Out receives the audit stream (a file opened O_APPEND 0600, or
	// stderr). Each line is one Write. Required.
	Out io.Writer
	// Format is FormatText (default when empty) or FormatJSON.
	Format string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PerSourceBurst is the number of lines a source may write at once;
	// <= 0 means DefaultPerSourceBurst.
	PerSourceBurst int
	// PerSourceRate is the sustained lines per second per source; <= 0
	// means DefaultPerSourceRate.
	PerSourceRate float64
	// MaxSources bounds the sources tracked; past it the least recently
	// seen source is evicted (its pending aggregate is written first).
	// <= 0 means DefaultMaxSources.
	MaxSources int
}

// CheckFormat reports whether format is a valid Config.Format, for flag
// validation before New.
func CheckFormat(format string) error {
	switch format {
	case "", FormatText, FormatJSON:
		return nil
	}
	return fmt.Errorf("audit log format %q: must be %q or %q", format, FormatText, FormatJSON)
}

// Snapshot is a copy of a Log's counters.
type Snapshot struct {
	// Accepted counts accepted admissions.
	Accepted uint64 `json:"accepted"`
	// Rejected counts rejected admissions by reason label.
	Rejected map[string]uint64 `json:"rejected"`
	// Suppressed counts entries not written because of rate limiting.
	Suppressed uint64 `json:"suppressed"`
	// Lines counts lines written, aggregates included.
	Lines uint64 `json:"lines"`
	// WriteErrors counts lines the output failed to take.
	WriteErrors uint64 `json:"write_errors"`
}

// Log is the audit log. It is safe for concurrent use.
type Log struct {
	lg     *logrus.Logger
	out    *countingWriter
	now    func() time.Time
	burst  float64
	rate   float64 // tokens per second
	maxSrc int

	mu         sync.Mutex
	accepted   uint64
	rejected   map[string]uint64
	suppressed uint64
	lines      uint64
	pending    int // sources with suppressed entries
	index      map[sourceKey]int32
	src        []source
	head, tail int32 // most and least recently seen, -1 when empty
}

type sourceKey struct {
	addr netip.Addr
	name string // only when addr is the zero Addr
}

// source is one rate-limit bucket, in an LRU list threaded through Log.src.
type source struct {
	key        sourceKey
	tokens     float64
	last       int64 // clock of the last refill, Unix ns
	prev, next int32
	agg        aggregate
}

// aggregate tallies what a source had suppressed.
type aggregate struct {
	n       uint64
	reasons [aggSlots]reasonCount
}

type reasonCount struct {
	label string
	n     uint64
}

// New returns a Log writing to cfg.Out. It panics if cfg.Format fails
// CheckFormat or cfg.Out is nil, which are programming errors.
func New(cfg Config) *Log {
	if err := CheckFormat(cfg.Format); err != nil {
		panic(err)
	}
	if cfg.Out == nil {
		panic("audit: Config.Out is nil")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PerSourceBurst <= 0 {
		cfg.PerSourceBurst = DefaultPerSourceBurst
	}
	if cfg.PerSourceRate <= 0 {
		cfg.PerSourceRate = DefaultPerSourceRate
	}
	if cfg.MaxSources <= 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	cw := &countingWriter{w: cfg.Out}
	lg := logrus.New()
	lg.Out = cw
	lg.Level = logrus.InfoLevel
	if cfg.Format == FormatJSON {
		lg.Formatter = &logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano, DisableHTMLEscape: true}
	} else {
		lg.Formatter = &logrus.TextFormatter{
			DisableColors:    true,
			FullTimestamp:    true,
			TimestampFormat:  time.RFC3339Nano,
			QuoteEmptyFields: true,
		}
	}
	return &Log{
		lg:       lg,
		out:      cw,
		now:      cfg.Now,
		burst:    float64(cfg.PerSourceBurst),
		rate:     cfg.PerSourceRate,
		maxSrc:   cfg.MaxSources,
		rejected: make(map[string]uint64),
		index:    make(map[sourceKey]int32),
		head:     -1,
		tail:     -1,
	}
}

// Record counts e and writes it if its source's bucket allows, preceded by
// the source's pending aggregate if it had suppressed entries.
func (l *Log) Record(e Entry) {
	now := l.now()
	if e.Time.IsZero() {
		e.Time = now
	}
	key := sourceKey{addr: e.Peer.Addr().Unmap()}
	if !key.addr.IsValid() {
		key.name = e.PeerName
	}
	ns := now.UnixNano()

	var evicted, agg aggregate
	var evictedKey sourceKey

	l.mu.Lock()
	if e.Outcome == Accepted {
		l.accepted++
	} else {
		l.countRejected(string(e.Reason))
	}
	i, ok := l.index[key]
	if ok {
		l.touch(i)
	} else {
		i, evictedKey, evicted = l.insert(key, ns)
	}
	s := &l.src[i]
	write := s.take(ns, l.rate, l.burst)
	if write {
		if s.agg.n > 0 {
			agg = s.agg
			s.agg = aggregate{}
			l.pending--
			l.lines++
		}
		l.lines++
	} else {
		if s.agg.n == 0 {
			l.pending++
		}
		s.agg.add(suppressedLabel(e))
		l.suppressed++
	}
	if evicted.n > 0 {
		l.lines++
	}
	l.mu.Unlock()

	if evicted.n > 0 {
		l.writeAggregate(evictedKey, &evicted, now)
	}
	if agg.n > 0 {
		l.writeAggregate(key, &agg, now)
	}
	if write {
		l.writeEntry(&e)
	}
}

// Flush writes the pending aggregate of every source that has suppressed
// entries, in address order. Call it periodically and at shutdown.
func (l *Log) Flush() {
	type pend struct {
		key sourceKey
		agg aggregate
	}
	l.mu.Lock()
	if l.pending == 0 {
		l.mu.Unlock()
		return
	}
	out := make([]pend, 0, l.pending)
	for i := range l.src {
		s := &l.src[i]
		if s.agg.n > 0 {
			out = append(out, pend{s.key, s.agg})
			s.agg = aggregate{}
		}
	}
	l.pending = 0
	l.lines += uint64(len(out))
	l.mu.Unlock()

	sort.Slice(out, func(a, b int) bool {
		ka, kb := out[a].key, out[b].key
		if c := ka.addr.Compare(kb.addr); c != 0 {
			return c < 0
		}
		return ka.name < kb.name
	})
	now := l.now()
	for i := range out {
		l.writeAggregate(out[i].key, &out[i].agg, now)
	}
}

// Run calls Flush every interval until ctx is done, then once more. A
// daemon runs it in its own goroutine.
func (l *Log) Run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	defer l.Flush()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			l.Flush()
		}
	}
}

// Counters returns a copy of the counters.
func (l *Log) Counters() Snapshot {
	l.mu.Lock()
	defer l.mu.Unlock()
	rej := make(map[string]uint64, len(l.rejected))
	for k, v := range l.rejected {
		rej[k] = v
	}
	return Snapshot{
		Accepted:    l.accepted,
		Rejected:    rej,
		Suppressed:  l.suppressed,
		Lines:       l.lines,
		WriteErrors: l.out.errors.Load(),
	}
}

// Sources returns the number of sources tracked.
func (l *Log) Sources() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.index)
}

func (l *Log) countRejected(reason string) {
	if reason == "" {
		reason = reasonOther
	}
	if _, ok := l.rejected[reason]; !ok && len(l.rejected) >= maxReasonLabels {
		reason = reasonOther
	}
	l.rejected[reason]++
}

// suppressedLabel is the label under which a suppressed entry is tallied.
func suppressedLabel(e Entry) string {
	if e.Outcome == Accepted {
		return Accepted
	}
	if e.Reason == "" {
		return reasonOther
	}
	return string(e.Reason)
}

// touch moves source i to the head of the LRU list.
func (l *Log) touch(i int32) {
	if l.head == i {
		return
	}
	l.unlink(i)
	l.pushFront(i)
}

func (l *Log) unlink(i int32) {
	s := &l.src[i]
	if s.prev >= 0 {
		l.src[s.prev].next = s.next
	} else {
		l.head = s.next
	}
	if s.next >= 0 {
		l.src[s.next].prev = s.prev
	} else {
		l.tail = s.prev
	}
	s.prev, s.next = -1, -1
}

func (l *Log) pushFront(i int32) {
	s := &l.src[i]
	s.prev, s.next = -1, l.head
	if l.head >= 0 {
		l.src[l.head].prev = i
	}
	l.head = i
	if l.tail < 0 {
		l.tail = i
	}
}

// insert adds a full bucket for key, evicting the least recently seen
// source if the table is full; it returns the evicted source's key and
// pending aggregate.
func (l *Log) insert(key sourceKey, ns int64) (int32, sourceKey, aggregate) {
	var evKey sourceKey
	var ev aggregate
	var i int32
	if len(l.src) < l.maxSrc {
		i = int32(len(l.src))
		l.src = append(l.src, source{})
	} else {
		i = l.tail
		l.unlink(i)
		old := &l.src[i]
		delete(l.index, old.key)
		if old.agg.n > 0 {
			evKey, ev = old.key, old.agg
			l.pending--
		}
	}
	l.src[i] = source{key: key, tokens: l.burst, last: ns, prev: -1, next: -1}
	l.index[key] = i
	l.pushFront(i)
	return i, evKey, ev
}

// take refills the bucket up to now and takes one token if there is one.
func (s *source) take(ns int64, rate, burst float64) bool {
	if d := ns - s.last; d > 0 {
		s.tokens += float64(d) * rate / 1e9
		if s.tokens > burst {
			s.tokens = burst
		}
		s.last = ns
	}
	if s.tokens >= 1 {
		s.tokens--
		return true
	}
	return false
}

func (a *aggregate) add(label string) {
	a.n++
	last := len(a.reasons) - 1
	for i := range a.reasons[:last] {
		r := &a.reasons[i]
		if r.label == label {
			r.n++
			return
		}
		if r.n == 0 {
			r.label, r.n = label, 1
			return
		}
	}
	a.reasons[last].label = reasonOther
	a.reasons[last].n++
}

// String renders the reasons as "replay:9000,auth:980", most frequent
// first.
func (a *aggregate) String() string {
	rs := make([]reasonCount, 0, len(a.reasons))
	for _, r := range a.reasons {
		if r.n == 0 {
			continue
		}
		merged := false
		for j := range rs {
			if rs[j].label == r.label { // "other" may appear twice
				rs[j].n += r.n
				merged = true
			}
		}
		if !merged {
			rs = append(rs, r)
		}
	}
	sort.Slice(rs, func(i, j int) bool {
		if rs[i].n != rs[j].n {
			return rs[i].n > rs[j].n
		}
		return rs[i].label < rs[j].label
	})
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(r.label)
		b.WriteByte(':')
		b.WriteString(strconv.FormatUint(r.n, 10))
	}
	return b.String()
}

func (k sourceKey) String() string {
	switch {
	case k.addr.IsValid():
		return k.addr.String()
	case k.name != "":
		return k.name
	}
	return "unknown"
}

func (l *Log) writeEntry(e *Entry) {
	peer := e.PeerName
	if e.Peer.IsValid() {
		peer = netip.AddrPortFrom(e.Peer.Addr().Unmap(), e.Peer.Port()).String()
	}
	level := logrus.InfoLevel
	if e.Outcome != Accepted {
		level = logrus.WarnLevel
	}
	node, nodeID, key := e.Node, e.NodeID, e.KeyID
	if nodeID == "" && e.ID != (uuid.UUID{}) {
		nodeID = e.ID.String()
	}
	if node == "" {
		node = nodeID
	}
	if key == "" && e.Key != 0 {
		key = e.Key.String()
	}
	entry := &logrus.Entry{
		Logger: l.lg,
		Time:   e.Time,
		Data: logrus.Fields{
			"channel": e.Channel,
			"outcome": e.Outcome,
			"reason":  e.Reason,
			"peer":    peer,
			"node":    node,
			"key_id":  key,
			"detail":  e.Detail,
		},
	}
	if nodeID != "" {
		entry.Data["node_id"] = nodeID
	}
	entry.Log(level, "admission "+e.Outcome)
}

func (l *Log) writeAggregate(key sourceKey, a *aggregate, now time.Time) {
	peer := key.String()
	entry := &logrus.Entry{
		Logger: l.lg,
		Time:   now,
		Data: logrus.Fields{
			"peer":       peer,
			"suppressed": a.n,
			"reasons":    a.String(),
		},
	}
	entry.Log(logrus.WarnLevel, strconv.FormatUint(a.n, 10)+" more from "+peer+" suppressed")
}

// countingWriter counts failed writes to the audit stream.
type countingWriter struct {
	w      io.Writer
	errors atomic.Uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	if err != nil {
		c.errors.Add(1)
	}
	return n, err
}

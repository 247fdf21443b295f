package daemon

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/momgate/momgate/internal/metrics"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// Link is an admitted connection's frame stream, the one way a daemon
// reads and writes frames once a connection is admitted: a session.Conn
// over the TCP connection, sealed (auth or encrypt) or not (protection
// none, v1, or a peer that does not speak sealed sessions), with a write
// deadline on every write and, for a sealed one, the rekey ticker that
// calls Tick at the session's NextDeadline, so that an idle session
// rekeys too (docs/PROTOCOL.md 6.6).
type Link struct {
	nc      net.Conn
	conn    *session.Conn
	sealed  bool
	limit   int // cap of an inner frame after it opened
	stats   *SessionStats
	channel string
	started time.Time

	// The rekey ticker: a timer whose function runs at the session's
	// next deadline (no goroutine in between), under tmu.
	tmu      sync.Mutex
	timer    *time.Timer
	stopped  bool // Close ran, or the ticker failed
	onFail   func(error)
	failing  sync.WaitGroup // a failed tick's onFail, which Close waits for
	once     sync.Once
	reported atomic.Bool // the session's failure was audited (Report)
}

// LinkConfig configures a Link.
type LinkConfig struct {
	// Channel is audit.ChannelControl or audit.ChannelIM, for the counters.
	Channel string
	// Limit caps a frame read, header included (sealed: after opening).
	Limit int
	// WriteTimeout bounds every write.
	WriteTimeout time.Duration
	// Stats counts the link's sealed frames; nil counts nothing.
	Stats *SessionStats
	// Reader, if set, is what the link reads from instead of the
	// connection: a buffer the connection's first frame was read
	// through, which may hold the bytes that followed it.
	Reader io.Reader
}

// NewLink runs s (nil: protection none) over c. The session's clock is the
// monotonic wall clock: key ages and rekey deadlines are durations.
func NewLink(c net.Conn, s *session.Session, cfg LinkConfig) *Link {
	w := &deadlineWriter{c: c, timeout: cfg.WriteTimeout}
	var r io.Reader = c
	if cfg.Reader != nil {
		r = cfg.Reader
	}
	l := &Link{nc: c, conn: session.NewConn(r, w, s, time.Now), sealed: s != nil, limit: cfg.Limit,
		stats: cfg.Stats, channel: cfg.Channel, started: time.Now()}
	l.conn.LimitPlain(cfg.Limit)
	if l.sealed && l.stats != nil {
		l.stats.open(cfg.Channel, s.Protection(), 1)
	}
	return l
}

// Start starts the rekey ticker of a sealed link (nothing for an unsealed
// one): at each NextDeadline it calls Tick, and on a failure (the keys
// expired before a rekey completed: the peer stopped answering) it closes
// the connection and calls onFail with the error, once. Close stops it.
// The ticker is a timer, not a goroutine: a connection that closes before
// its first deadline (two minutes) never runs it.
func (l *Link) Start(onFail func(error)) {
	if !l.sealed {
		return
	}
	l.tmu.Lock()
	defer l.tmu.Unlock()
	if l.stopped || l.timer != nil {
		return
	}
	l.onFail = onFail
	l.timer = time.AfterFunc(time.Until(l.conn.NextDeadline()), l.tick)
}

// tick is the ticker's timer function.
func (l *Link) tick() {
	l.tmu.Lock()
	if l.stopped {
		l.tmu.Unlock()
		return
	}
	err := l.conn.Tick()
	if err == nil {
		l.timer.Reset(time.Until(l.conn.NextDeadline()))
		l.tmu.Unlock()
		return
	}
	l.stopped = true
	l.failing.Add(1)
	l.tmu.Unlock()
	defer l.failing.Done()
	l.nc.Close()
	if l.onFail != nil {
		l.onFail(err)
	}
}

// ReadFrame returns the next frame of the peer (sealed: opened and
// verified), valid until the next ReadFrame. A frame over the limit is an
// error; a session error ends the session (the caller closes the link,
// audits and counts the reason, session.Reason).
func (l *Link) ReadFrame() ([]byte, error) {
	f, err := l.conn.ReadFrame()
	if err != nil {
		return nil, err
	}
	if l.limit > 0 && len(f) > l.limit {
		return nil, fmt.Errorf("frame of %d bytes, limit %d: %w", len(f), l.limit, proto.ErrOversize)
	}
	if l.sealed && l.stats != nil {
		l.stats.count(l.channel, false)
	}
	return f, nil
}

// WriteFrame seals (if sealed) and writes one whole frame.
func (l *Link) WriteFrame(f []byte) error {
	if err := l.conn.WriteFrame(f); err != nil {
		return err
	}
	if l.sealed && l.stats != nil {
		l.stats.count(l.channel, true)
	}
	return nil
}

// Send marshals m and writes it.
func (l *Link) Send(m proto.Message) error { return l.WriteFrame(proto.Marshal(m)) }

// Writer is the link as an io.ReadWriter whose every Write is one whole
// frame (what handshake.Respond writes); it does not read.
func (l *Link) Writer() io.ReadWriter { return frameWriter{l} }

type frameWriter struct{ l *Link }

func (w frameWriter) Read([]byte) (int, error) { return 0, errors.New("link writer does not read") }

func (w frameWriter) Write(p []byte) (int, error) {
	if err := w.l.WriteFrame(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Report reports whether err is the session failure to audit and count:
// a session error, the first one reported on this link (the reader and
// the ticker may both see the session end; it is audited once). A close
// by this daemon itself is no refusal.
func (l *Link) Report(err error) bool {
	if !session.IsSession(err) || errors.Is(err, net.ErrClosed) {
		return false
	}
	return l.reported.CompareAndSwap(false, true)
}

// Sealed reports whether a session protects the link.
func (l *Link) Sealed() bool { return l.sealed }

// Confirmed reports whether a sealed record of the peer has opened: the
// peer holds the session keys (the daemons mark a peer only then).
func (l *Link) Confirmed() bool { return l.conn.Confirmed() }

// Info is the session's state (protection none without one), with the key
// age of an unsealed link as the connection's age.
func (l *Link) Info() session.Info {
	in := l.conn.Info()
	if !l.sealed {
		in.KeyAge = time.Since(l.started)
	}
	return in
}

// Err is why the session ended (a session error or a write error), or nil.
func (l *Link) Err() error { return l.conn.Err() }

// NetConn is the TCP connection under the link (deadlines, addresses).
func (l *Link) NetConn() net.Conn { return l.nc }

// Close stops the ticker and closes the connection; it may be called more
// than once, from any goroutine.
func (l *Link) Close() {
	l.once.Do(func() {
		l.tmu.Lock() // waits for a tick in progress
		l.stopped = true
		if l.timer != nil {
			l.timer.Stop()
		}
		l.tmu.Unlock()
		l.nc.Close()
		if l.sealed && l.stats != nil {
			l.stats.open(l.channel, l.conn.Protection(), -1)
		}
	})
	l.failing.Wait()
}

// deadlineWriter sets a write deadline before every write, so that no
// writer (and no ticker behind it) blocks forever on a peer that stopped
// reading.
type deadlineWriter struct {
	c       net.Conn
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if w.timeout > 0 {
		if err := w.c.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
			return 0, err
		}
	}
	return w.c.Write(p)
}

// SessionStats counts sealed frames and open sealed sessions by channel,
// for the metrics (momgate_session_frames_total,
// momgate_sessions_open). Refused records are counted by reason with every
// other refusal, in the audit counters.
type SessionStats struct {
	mu    sync.Mutex
	opens map[openKey]*atomic.Int64
	frm   map[string]*atomic.Uint64
}

// openKey names a gauge of open sessions ("channel_protection" once
// shown): a struct, so that counting allocates no string.
type openKey struct {
	channel string
	prot    session.Protection
}

// NewSessionStats returns zeroed counters.
func NewSessionStats() *SessionStats {
	return &SessionStats{opens: map[openKey]*atomic.Int64{}, frm: map[string]*atomic.Uint64{}}
}

func (s *SessionStats) count(channel string, sealed bool) {
	dir := "opened"
	if sealed {
		dir = "sealed"
	}
	s.mu.Lock()
	c := s.frm[channel+"_"+dir]
	if c == nil {
		c = &atomic.Uint64{}
		s.frm[channel+"_"+dir] = c
	}
	s.mu.Unlock()
	c.Add(1)
}

func (s *SessionStats) open(channel string, p session.Protection, d int64) {
	key := openKey{channel, p}
	s.mu.Lock()
	c := s.opens[key]
	if c == nil {
		c = &atomic.Int64{}
		s.opens[key] = c
	}
	s.mu.Unlock()
	c.Add(d)
}

// Frames returns the sealed frames counted, by "CHANNEL_sealed" (sent)
// and "CHANNEL_opened" (received and verified).
func (s *SessionStats) Frames() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]float64{}
	for k, c := range s.frm {
		out[k] = float64(c.Load())
	}
	return out
}

// Open returns the sealed sessions open now, by "CHANNEL_PROTECTION".
func (s *SessionStats) Open() map[string]float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]float64{}
	for k, c := range s.opens {
		out[k.channel+"_"+k.prot.String()] = float64(c.Load())
	}
	return out
}

// Collectors are the sessions' metrics: sealed frames sent and received by
// channel, and sealed sessions open by channel and protection.
func (s *SessionStats) Collectors() []prometheus.Collector {
	return []prometheus.Collector{
		metrics.NewCounterFunc("session_frames_total", "Frames in sealed sessions: CHANNEL_sealed sent, CHANNEL_opened received and verified (refused records are counted in rejections_total by their session_* reason).", "frames", s.Frames),
		metrics.NewGaugeFunc("sessions_open", "Sealed sessions open now, by CHANNEL_PROTECTION.", "session", s.Open),
	}
}

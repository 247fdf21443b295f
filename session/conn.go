package session

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/momgate/momgate/proto"
)

// Conn runs a Session over a byte stream: ReadFrame returns the frames the
// peer sent, WriteFrame sends one, Tick keeps the keys fresh. With a nil
// Session (protection None) it passes whole proto frames through unsealed,
// so a daemon has one code path for every protection.
//
// One goroutine may read while others write and tick. Writes go out in the
// order they were sealed. A rekey message a read produces is written by the
// reader itself when no write is in progress, otherwise by the writer as
// soon as its write ends, so neither a reader nor a ticker ever waits on a
// blocked writer. Conn does not own the stream: the daemon closes it (and
// should once an error wraps one of the session sentinels), and sets the
// stream's write deadlines, so that a writer never blocks forever.
type Conn struct {
	r   io.Reader
	w   io.Writer
	now func() time.Time

	mu      sync.Mutex // guards s, pending, werr
	s       *Session
	pending []byte // sealed records not yet written, in order
	werr    error  // first write error: the stream is broken

	wmu     sync.Mutex // held while writing
	writing []byte     // the batch being written (wmu)

	rbuf       []byte // the reader's record buffer
	plainLimit int    // cap of a frame without a session (LimitPlain)
}

// LimitPlain caps the frames ReadFrame reads without a session (protection
// None) at n bytes, header included, checked before the body is read; the
// default is proto.MaxFrameSize. Sealed records keep the record cap.
func (c *Conn) LimitPlain(n int) { c.plainLimit = n }

// NewConn runs s over r and w with the clock now. s nil means protection
// None.
func NewConn(r io.Reader, w io.Writer, s *Session, now func() time.Time) *Conn {
	return &Conn{r: r, w: w, s: s, now: now}
}

// Protection returns the connection's protection.
func (c *Conn) Protection() Protection {
	if c.s == nil {
		return None
	}
	return c.s.Protection()
}

// ReadFrame returns the next frame the peer sent (header included), valid
// until the next ReadFrame. Session control records are handled on the way.
// Stream errors are returned as they are (io.EOF between records); a record
// that fails wraps ErrAuth, ErrReplay, ErrSize, ErrExpired or ErrProtocol,
// and the session is over.
func (c *Conn) ReadFrame() ([]byte, error) {
	if c.s == nil {
		limit := c.plainLimit
		if limit <= 0 {
			limit = proto.MaxFrameSize
		}
		f, err := proto.ReadFrameLimit(c.r, c.rbuf[:cap(c.rbuf)], limit)
		if err == nil {
			c.rbuf = f
		}
		return f, err
	}
	if cap(c.rbuf) > shrinkAbove {
		c.rbuf = nil // the last frame was large: do not keep its buffer
	}
	for {
		rec, err := ReadRecord(c.r, c.rbuf[:cap(c.rbuf)], c.s.Limit())
		if err != nil {
			c.mu.Lock()
			if _, ours := sessionReason(err); ours {
				c.s.fail(err)
			}
			// No frame this call: the last one may be erased now.
			c.s.WipeReceived()
			c.mu.Unlock()
			return nil, err
		}
		c.rbuf = rec
		var frame []byte
		err = c.queue(false, func(pending []byte, now time.Time) ([]byte, error) {
			var out []byte
			var err error
			frame, out, err = c.s.OpenRecord(rec, pending, now)
			return out, err
		})
		if err != nil {
			c.mu.Lock()
			c.s.WipeReceived() // the reader is the only user of the buffer
			c.mu.Unlock()
			return nil, err
		}
		if frame != nil {
			return frame, nil
		}
	}
}

// WriteFrame seals one whole frame and writes it, after any record queued
// before it.
func (c *Conn) WriteFrame(frame []byte) error {
	c.mu.Lock()
	if c.werr != nil {
		c.mu.Unlock()
		return c.werr
	}
	var err error
	if c.s == nil {
		if len(frame) > proto.MaxFrameSize {
			err = fmt.Errorf("write frame of %d bytes: %w", len(frame), proto.ErrOversize)
		} else {
			c.pending = append(c.pending, frame...)
		}
	} else {
		c.pending, err = c.s.SealFrame(c.pending, frame, c.now())
	}
	c.mu.Unlock()
	if err != nil {
		return err
	}
	return c.flush(true)
}

// Tick starts a rekey when one is due and reports ErrExpired when the keys
// are too old. Call it at NextDeadline at the latest.
func (c *Conn) Tick() error {
	if c.s == nil {
		return nil
	}
	// Not blocking on a writer: a writer stalled on a full socket must not
	// hold the ticker too; it writes the rekey record when its write ends.
	return c.queue(false, c.s.Tick)
}

// Confirmed reports whether a record of the peer has opened (key
// confirmation); a connection without a session never is.
func (c *Conn) Confirmed() bool {
	if c.s == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.Confirmed()
}

// Err returns why the session ended (a session error or the first write
// error), or nil while it runs.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s != nil && c.s.Err() != nil {
		return c.s.Err()
	}
	return c.werr
}

// queue runs a session step that may append records to the pending ones,
// then writes whatever it appended (block false: unless a writer is at it).
// A write error is returned if the step itself did not fail.
func (c *Conn) queue(block bool, step func(pending []byte, now time.Time) ([]byte, error)) error {
	c.mu.Lock()
	before := len(c.pending)
	out, err := step(c.pending, c.now())
	c.pending = out
	queued := len(out) > before
	c.mu.Unlock()
	if queued {
		if werr := c.flush(block); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

// NextDeadline is when Tick must next be called (zero without a session).
func (c *Conn) NextDeadline() time.Time {
	if c.s == nil {
		return time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.NextDeadline()
}

// Info reports the session's state (protection None without one).
func (c *Conn) Info() Info {
	if c.s == nil {
		return Info{Protection: None}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s.Info(c.now())
}

// flush writes the pending records. With block false it returns at once if
// another goroutine is writing: that writer writes them when its write ends.
// Whoever stops writing checks for records queued meanwhile, so none is left
// behind.
func (c *Conn) flush(block bool) error {
	for {
		if block {
			c.wmu.Lock()
		} else if !c.wmu.TryLock() {
			return nil
		}
		err := c.writePending()
		c.wmu.Unlock()
		if err != nil {
			return err
		}
		c.mu.Lock()
		left := len(c.pending) > 0 && c.werr == nil
		c.mu.Unlock()
		if !left {
			return nil
		}
		block = false
	}
}

// writePending writes batches until none is pending (wmu held).
func (c *Conn) writePending() error {
	for {
		c.mu.Lock()
		if c.werr != nil || len(c.pending) == 0 {
			err := c.werr
			c.mu.Unlock()
			return err
		}
		c.writing, c.pending = c.pending, c.writing[:0]
		c.mu.Unlock()
		if _, err := c.w.Write(c.writing); err != nil {
			c.mu.Lock()
			if c.werr == nil {
				c.werr = fmt.Errorf("write sealed records: %w", err)
			}
			err = c.werr
			c.mu.Unlock()
			return err
		}
	}
}

package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"regexp"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/strictjson"
)

// writeTimeout bounds the write of one response.
const writeTimeout = 30 * time.Second

var errLineTooLong = errors.New("line too long")

// Serve listens on the Unix socket at path (see Listen) and serves admin
// requests with h until ctx is cancelled; it then closes the listener and
// every connection, waits for their goroutines and returns nil. Handlers
// must return once their ctx is cancelled. log may be nil.
func Serve(ctx context.Context, path string, h Handler, log logrus.FieldLogger) error {
	ln, err := Listen(path)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, h, log)
}

// Listen creates the admin socket at path with mode 0600. A leftover
// socket file that nobody answers on is removed first; a live socket or
// a file that is not a socket is an error and is left alone. Closing the
// listener removes the socket file.
func Listen(path string) (*net.UnixListener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("admin socket %s: path is %d bytes, the limit is %d: use a shorter state directory", path, len(path), maxSocketPath)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	// The window between bind and chmod is covered by the SO_PEERCRED
	// check every connection goes through.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin socket %s: %w", path, err)
	}
	return ln, nil
}

// removeStale removes the socket file at path if no process accepts on it.
// CheckSocketPath reports what a daemon's start refuses at its admin
// socket path, changing nothing (`state check`): something there that is
// not a socket, or a socket a running process answers on.
func CheckSocketPath(path string) error {
	_, err := checkSocketPath(path)
	return err
}

// checkSocketPath is CheckSocketPath; stale reports a socket nobody
// answers on, which a start removes.
func checkSocketPath(path string) (stale bool, err error) {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("admin socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return false, fmt.Errorf("admin socket %s: exists and is not a socket (%s); refusing to remove it", path, fi.Mode().Type())
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return false, fmt.Errorf("admin socket %s: in use by a running process: is another daemon using this state directory?", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return false, fmt.Errorf("admin socket %s: probe existing socket: %w", path, err)
	}
	return true, nil
}

func removeStale(path string) error {
	stale, err := checkSocketPath(path)
	if err != nil || !stale {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("admin socket %s: remove stale socket: %w", path, err)
	}
	return nil
}

// ServeListener serves admin requests on ln with h, as Serve does; it
// closes ln when it returns. log may be nil.
func ServeListener(ctx context.Context, ln *net.UnixListener, h Handler, log logrus.FieldLogger) error {
	s := &server{h: h, log: log, peerCred: peerCred, euid: os.Geteuid(), idle: IdleTimeout}
	return s.serve(ctx, ln)
}

// server is one running admin socket. The function fields are seams for
// tests.
type server struct {
	h        Handler
	log      logrus.FieldLogger
	peerCred func(*net.UnixConn) (Peer, error)
	euid     int
	idle     time.Duration
	connDone func() // called after each connection is closed, if set
}

func (s *server) serve(ctx context.Context, ln *net.UnixListener) error {
	if s.log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		s.log = l
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		mu     sync.Mutex
		conns  = map[*net.UnixConn]struct{}{}
		closed bool
		wg     sync.WaitGroup
	)
	// The watcher closes the listener and every connection once ctx is
	// done, which unblocks Accept and all reads.
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		closed = true
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()

	var err error
	var backoff time.Duration
	for {
		c, aerr := ln.AcceptUnix()
		if aerr != nil {
			if ctx.Err() != nil {
				break
			}
			if errors.Is(aerr, net.ErrClosed) {
				err = fmt.Errorf("admin socket: %w", aerr)
				break
			}
			// Temporary failure such as EMFILE: back off, bounded.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.log.WithError(aerr).Warn("admin socket: accept failed; retrying")
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			continue
		}
		backoff = 0
		mu.Lock()
		if closed {
			mu.Unlock()
			c.Close()
			continue
		}
		conns[c] = struct{}{}
		wg.Add(1)
		mu.Unlock()
		go func() {
			defer wg.Done()
			s.handleConn(ctx, c)
			c.Close()
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
			if s.connDone != nil {
				s.connDone()
			}
		}()
	}
	cancel()
	<-watcherDone
	wg.Wait()
	return err
}

// allowed says whether a peer with uid may use a socket owned by euid.
func allowed(uid uint32, euid int) bool {
	return uid == 0 || int64(uid) == int64(euid)
}

func (s *server) handleConn(ctx context.Context, c *net.UnixConn) {
	peer, err := s.peerCred(c)
	if err != nil {
		s.log.WithError(err).Warn("admin connection refused: cannot verify peer")
		s.write(c, Response{Error: "cannot verify peer credentials", Code: CodeForbidden})
		return
	}
	log := s.log.WithFields(logrus.Fields{"peer_uid": peer.UID, "peer_pid": peer.PID})
	if !allowed(peer.UID, s.euid) {
		log.Warn("admin connection refused: peer uid not allowed")
		s.write(c, Response{
			Error: fmt.Sprintf("uid %d may not use this admin socket (allowed: uid %d and root)", peer.UID, s.euid),
			Code:  CodeForbidden,
		})
		return
	}
	ctx = context.WithValue(ctx, peerKey{}, peer)
	br := bufio.NewReaderSize(c, 4096)
	for ctx.Err() == nil {
		if err := c.SetReadDeadline(time.Now().Add(s.idle)); err != nil {
			return
		}
		line, err := readLine(br, MaxRequest)
		if errors.Is(err, errLineTooLong) {
			log.Warn("admin request refused: line too long")
			s.write(c, Response{Error: fmt.Sprintf("request line longer than %d bytes", MaxRequest), Code: CodeBadRequest})
			return
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				log.WithError(err).Debug("admin connection closed")
			}
			return
		}
		if !s.write(c, s.dispatch(ctx, log, line)) {
			return
		}
	}
}

// write sends one response line; it reports whether that succeeded.
func (s *server) write(c *net.UnixConn, r Response) bool {
	b, err := json.Marshal(r)
	if err != nil { // cannot happen: every field marshals
		s.log.WithError(err).Error("admin: encode response")
		return false
	}
	if err := c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return false
	}
	_, err = c.Write(append(b, '\n'))
	return err == nil
}

// dispatch decodes and executes one request line.
func (s *server) dispatch(ctx context.Context, log logrus.FieldLogger, line []byte) Response {
	req, err := decodeRequest(line)
	if err != nil {
		log.WithError(err).Info("admin request refused")
		return Response{Error: err.Error(), Code: CodeBadRequest}
	}
	log = log.WithField("op", req.Op)
	log.Debug("admin request")
	res, err := s.call(ctx, log, req)
	if err == nil && res != nil {
		var data []byte
		data, err = json.Marshal(res)
		if err != nil {
			err = fmt.Errorf("encode %s result: %w", req.Op, err)
		} else {
			return Response{OK: true, Data: data}
		}
	}
	if err == nil {
		return Response{OK: true}
	}
	code := CodeOf(err)
	if code == CodeInternal {
		log.WithError(err).Error("admin operation failed")
	} else {
		log.WithError(err).WithField("code", code).Info("admin operation refused")
	}
	return Response{Error: err.Error(), Code: code}
}

// call runs the handler, turning a panic into an internal error.
func (s *server) call(ctx context.Context, log logrus.FieldLogger, req Request) (res any, err error) {
	defer func() {
		if r := recover(); r != nil {
			log.WithFields(logrus.Fields{"panic": fmt.Sprint(r), "stack": string(debug.Stack())}).Error("admin handler panicked")
			res, err = nil, &Error{Code: CodeInternal, Msg: fmt.Sprintf("internal error in %s (see the daemon log)", req.Op)}
		}
	}()
	return s.h(ctx, req.Op, req.Args)
}

// readLine reads one '\n'-terminated line of at most max bytes (without
// the newline) and returns it without the newline or a trailing '\r'.
// A longer line yields errLineTooLong; EOF inside a line yields
// io.ErrUnexpectedEOF.
func readLine(br *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		n := len(buf) + len(frag)
		if err == nil {
			n-- // the newline
		}
		if n > max {
			return nil, errLineTooLong
		}
		buf = append(buf, frag...)
		switch {
		case err == nil:
			buf = buf[:len(buf)-1]
			if len(buf) > 0 && buf[len(buf)-1] == '\r' {
				buf = buf[:len(buf)-1]
			}
			return buf, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
	}
}

var opRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// decodeRequest parses one request line strictly: a single JSON object
// with a well-formed "op", optional "args", nothing else.
func decodeRequest(line []byte) (Request, error) {
	var req Request
	if err := strictjson.Decode(line, &req); err != nil {
		return Request{}, fmt.Errorf("malformed request: %w", err)
	}
	if req.Op == "" {
		return Request{}, errors.New("malformed request: missing \"op\"")
	}
	if !opRE.MatchString(req.Op) {
		return Request{}, fmt.Errorf("malformed request: invalid op %q", req.Op)
	}
	if string(req.Args) == "null" {
		req.Args = nil
	}
	return req, nil
}

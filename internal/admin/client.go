package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// ErrClientClosed is returned by Call after Close.
var ErrClientClosed = errors.New("admin client closed")

// Client is a connection to a daemon's admin socket. It is safe for
// concurrent use; calls are serialised. If the daemon closed an idle
// connection, the next Call reconnects transparently.
type Client struct {
	path   string
	daemon string // binary named in connection error messages

	mu     sync.Mutex
	conn   *net.UnixConn
	br     *bufio.Reader
	closed bool
}

// DialOption configures Dial.
type DialOption func(*Client)

// WithDaemon names the daemon binary owning the socket (default
// "momgate-server") in connection error messages.
func WithDaemon(binary string) DialOption {
	return func(c *Client) { c.daemon = binary }
}

// Dial connects to the admin socket at path. A missing socket, a stale
// one and a permission problem each get a message saying what to do.
func Dial(ctx context.Context, path string, opts ...DialOption) (*Client, error) {
	c := &Client{path: path, daemon: "momgate-server"}
	for _, o := range opts {
		o(c)
	}
	if err := c.connect(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// Path returns the socket path the client talks to.
func (c *Client) Path() string { return c.path }

func (c *Client) connect(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.path)
	if err != nil {
		return c.dialError(err)
	}
	c.conn = conn.(*net.UnixConn)
	c.br = bufio.NewReaderSize(conn, 64<<10)
	return nil
}

// dialError explains a failed connect in terms of what the user can do.
func (c *Client) dialError(err error) error {
	dir := filepath.Dir(c.path)
	role := "admin socket"
	if c.daemon == "momgate-server" {
		role = "server admin socket"
	}
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		return &dialError{fmt.Sprintf("no %s at %s: is %s running with --state-dir %s?", role, c.path, c.daemon, dir), err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &dialError{fmt.Sprintf("%s %s refuses connections (stale socket): is %s running with --state-dir %s?", role, c.path, c.daemon, dir), err}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		owner := ""
		if fi, serr := os.Stat(c.path); serr == nil {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				owner = fmt.Sprintf(" (owned by uid %d)", st.Uid)
			}
		}
		return &dialError{fmt.Sprintf("permission denied on %s %s%s: run as the user of %s or as root", role, c.path, owner, c.daemon), err}
	}
	return fmt.Errorf("connect to %s %s: %w", role, c.path, err)
}

// dialError is a connect failure with an actionable message; it wraps
// the system error for errors.Is.
type dialError struct {
	msg string
	err error
}

func (e *dialError) Error() string { return e.msg }
func (e *dialError) Unwrap() error { return e.err }

// Close closes the connection; later calls fail with ErrClientClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return c.drop()
}

func (c *Client) drop() error {
	if c.conn == nil {
		return nil
	}
	err := c.conn.Close()
	c.conn, c.br = nil, nil
	return err
}

// Call runs op with args (marshalled to JSON; nil for none) and decodes
// the result into out (nil to discard; a *json.RawMessage keeps it raw).
// A refusal by the daemon is returned as *Error.
func (c *Client) Call(ctx context.Context, op string, args, out any) error {
	req := Request{Op: op}
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return fmt.Errorf("admin %s: encode arguments: %w", op, err)
		}
		req.Args = b
	}
	line, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("admin %s: encode request: %w", op, err)
	}
	if len(line) > MaxRequest {
		return fmt.Errorf("admin %s: request is %d bytes, the limit is %d", op, len(line), MaxRequest)
	}
	line = append(line, '\n')

	c.mu.Lock()
	defer c.mu.Unlock()
	var resp Response
	for attempt := 0; ; attempt++ {
		if c.closed {
			return ErrClientClosed
		}
		if c.conn == nil {
			if err := c.connect(ctx); err != nil {
				return err
			}
		}
		resp, err = c.roundTrip(ctx, line)
		if err == nil {
			break
		}
		c.drop()
		if ctx.Err() != nil {
			return fmt.Errorf("admin %s: %w", op, ctx.Err())
		}
		// The daemon closes idle connections; a request that provably did
		// not reach it is resent once on a new connection.
		if attempt == 0 && errors.Is(err, errNotDelivered) {
			continue
		}
		return fmt.Errorf("admin %s on %s: %w", op, c.path, err)
	}
	if !resp.OK {
		code := resp.Code
		if code == "" {
			code = CodeInternal
		}
		return &Error{Code: code, Msg: resp.Error}
	}
	if out != nil && len(resp.Data) > 0 {
		if err := json.Unmarshal(resp.Data, out); err != nil {
			return fmt.Errorf("admin %s: decode result: %w", op, err)
		}
	}
	return nil
}

// errNotDelivered marks a failure that the daemon cannot have acted on.
var errNotDelivered = errors.New("request not delivered")

// roundTrip writes one request line and reads one response line, bounded
// by ctx.
func (c *Client) roundTrip(ctx context.Context, line []byte) (resp Response, err error) {
	conn := c.conn
	dl, _ := ctx.Deadline() // zero: no deadline
	if err := conn.SetDeadline(dl); err != nil {
		return Response{}, err
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		conn.SetDeadline(time.Unix(1, 0))
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired
			// The deadline is poisoned; the next call reconnects.
			c.drop()
		}
	}()

	if _, werr := conn.Write(line); werr != nil {
		// The daemon may have answered and closed (forbidden, too long).
		if r, rerr := c.readResponse(); rerr == nil {
			return r, nil
		}
		if isNotDelivered(werr) {
			return Response{}, fmt.Errorf("%w: %w", errNotDelivered, werr)
		}
		return Response{}, werr
	}
	r, rerr := c.readResponse()
	if rerr != nil && errors.Is(rerr, syscall.ECONNRESET) {
		// Linux reports ECONNRESET when the daemon closed with our
		// request unread.
		return Response{}, fmt.Errorf("%w: %w", errNotDelivered, rerr)
	}
	return r, rerr
}

func isNotDelivered(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

func (c *Client) readResponse() (Response, error) {
	b, err := readLine(c.br, MaxResponse)
	switch {
	case errors.Is(err, errLineTooLong):
		return Response{}, fmt.Errorf("response longer than %d bytes", MaxResponse)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return Response{}, fmt.Errorf("connection closed by %s: %w", c.daemon, err)
	case err != nil:
		return Response{}, err
	}
	var r Response
	if err := json.Unmarshal(b, &r); err != nil {
		return Response{}, fmt.Errorf("malformed response: %w", err)
	}
	return r, nil
}

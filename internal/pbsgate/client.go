package pbsgate

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/momgate/momgate/pbsauth"
)

// Ask sends one request to the daemon at path and reads its answer, as the
// plugin does (for tests, benchmarks and tools; the plugin is C).
func Ask(ctx context.Context, path string, q *pbsauth.Request) (pbsauth.Response, error) {
	c, err := Dial(ctx, path)
	if err != nil {
		return pbsauth.Response{}, err
	}
	defer c.Close()
	return c.Ask(ctx, q)
}

// Conn is a connection to a daemon's socket that carries several requests,
// one at a time, as the plugin keeps one per thread.
type Conn struct {
	path string
	c    net.Conn
}

// Dial connects to the daemon at path.
func Dial(ctx context.Context, path string) (*Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("pbs socket %s: %w", path, err)
	}
	return &Conn{path: path, c: c}, nil
}

// Ask sends q and reads its answer, within ctx's deadline or
// DefaultTimeout.
func (c *Conn) Ask(ctx context.Context, q *pbsauth.Request) (pbsauth.Response, error) {
	b, err := pbsauth.AppendRequest(nil, q)
	if err != nil {
		return pbsauth.Response{}, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.c.SetDeadline(dl)
	} else {
		_ = c.c.SetDeadline(time.Now().Add(DefaultTimeout))
	}
	if _, err := c.c.Write(b); err != nil {
		return pbsauth.Response{}, fmt.Errorf("pbs socket %s: send %s: %w", c.path, q.Op, err)
	}
	resp, err := pbsauth.ReadResponse(c.c, q.Op)
	if err != nil {
		return resp, fmt.Errorf("pbs socket %s: %s: %w", c.path, q.Op, err)
	}
	return resp, nil
}

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

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
	b, err := pbsauth.AppendRequest(nil, q)
	if err != nil {
		return pbsauth.Response{}, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return pbsauth.Response{}, fmt.Errorf("pbs socket %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(DefaultTimeout))
	}
	if _, err := c.Write(b); err != nil {
		return pbsauth.Response{}, fmt.Errorf("pbs socket %s: send %s: %w", path, q.Op, err)
	}
	resp, err := pbsauth.ReadResponse(c, q.Op)
	if err != nil {
		return resp, fmt.Errorf("pbs socket %s: %s: %w", path, q.Op, err)
	}
	return resp, nil
}

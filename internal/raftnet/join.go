package raftnet

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"

	"github.com/momgate/momgate/group"
)

// DialJoin opens a joiner's connection to a member at addr (from a join
// token), checking that the member's certificate chains to the CA whose
// fingerprint the token pins. It returns the connection and the group CA
// public key it saw. The joiner then sends its token secret inside it.
func DialJoin(ctx context.Context, addr string, pin [32]byte, now func() time.Time) (*tls.Conn, []byte, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dial member %s to join: %w", addr, err)
	}
	var caPub []byte
	tc := tls.Client(raw, group.JoinClientConfig(pin, now, &caPub))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, nil, fmt.Errorf("join handshake with %s: %w", addr, err)
	}
	return tc, caPub, nil
}

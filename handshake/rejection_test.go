package handshake

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

func TestReadFailureReason(t *testing.T) {
	frame := proto.Marshal(&proto.Reject{Code: 1, Reason: "some reason text"})
	read := func(b []byte) error {
		_, err := proto.ReadFrameLimit(bytes.NewReader(b), nil, PreAuthMaxFrame)
		return err
	}
	big := append([]byte(nil), frame[:proto.HeaderSize]...)
	big[4], big[5] = 0, 0x10 // 1 MiB body
	cases := []struct {
		name string
		err  error
		want reasons.Reason
	}{
		{"truncated header", read(frame[:5]), reasons.Malformed},
		{"truncated body", read(frame[:len(frame)-1]), reasons.Malformed},
		{"oversized", read(big), reasons.Malformed},
		{"bad magic", read([]byte("GET / HTTP/1.1\r\n")), reasons.Malformed},
		{"nothing sent", read(nil), reasons.Closed},
		{"deadline", fmt.Errorf("read hello: %w", os.ErrDeadlineExceeded), reasons.HandshakeTimeout},
		{"reset", fmt.Errorf("read: %w", net.ErrClosed), reasons.Handshake},
		{"other", errors.New("x"), reasons.Handshake},
	}
	for _, c := range cases {
		if got := ReadFailureReason(c.err); got != c.want {
			t.Errorf("%s (%v): %q, want %q", c.name, c.err, got, c.want)
		}
	}
	// A real socket deadline.
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	_ = a.SetReadDeadline(time.Now().Add(time.Millisecond))
	_, err := proto.ReadFrameLimit(a, nil, PreAuthMaxFrame)
	if got := ReadFailureReason(err); got != reasons.HandshakeTimeout {
		t.Fatalf("pipe deadline %v: %q", err, got)
	}
}

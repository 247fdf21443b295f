package replica

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/momgate/momgate/strictjson"
)

// Errors of Decode and Encode.
var (
	// ErrBadCommand means the bytes are not a valid command of a known
	// version (a retired operation code included): a bug or damage, never
	// something to skip.
	ErrBadCommand = errors.New("malformed replicated command")
	// ErrUnsupported means a version or an operation this build does not
	// know: a newer member wrote it. A member must stop applying rather
	// than skip it, or its state would fork from the group's.
	ErrUnsupported = errors.New("replicated command from a newer version")
)

// Version is the command format version this build writes and reads.
const Version = 1

// HeaderSize is the fixed part of an encoded command.
const HeaderSize = 14

// MaxCommandSize bounds an encoded command (a write that changes many
// records, or a whole keyring or deny list file, is the largest body).
const MaxCommandSize = 4 << 20

// Entry is one replicated command with the leader's time when it was
// proposed. A state machine that needs a time takes it from At, never from
// a clock, so that every member judges alike; the server's state needs
// none, since its leader decides every expiry before it proposes.
type Entry struct {
	At  time.Time
	Cmd Command
}

// Encode writes e:
//
//	version (1) | op (1) | at, Unix nanoseconds (8, big-endian) | CRC-32C of body (4) | body
//
// where body is the command as compact JSON. The checksum lets a member
// tell a log entry damaged on its disk (the log store checksums nothing)
// from a command: it halts on it rather than apply it. Encode refuses a
// command whose fields do not check.
func Encode(e Entry) ([]byte, error) {
	if e.Cmd == nil {
		return nil, fmt.Errorf("encode command: %w: no command", ErrBadCommand)
	}
	if e.At.IsZero() || e.At.UnixNano() <= 0 {
		return nil, fmt.Errorf("encode %s: %w: no time", e.Cmd.Op(), ErrBadCommand)
	}
	if err := e.Cmd.check(); err != nil {
		return nil, fmt.Errorf("encode %s: %w: %v", e.Cmd.Op(), ErrBadCommand, err)
	}
	body, err := json.Marshal(e.Cmd)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.Cmd.Op(), err)
	}
	out := make([]byte, HeaderSize, HeaderSize+len(body))
	out[0], out[1] = Version, byte(e.Cmd.Op())
	binary.BigEndian.PutUint64(out[2:], uint64(e.At.UnixNano()))
	binary.BigEndian.PutUint32(out[10:], crc32.Checksum(body, castagnoli))
	out = append(out, body...)
	if len(out) > MaxCommandSize {
		return nil, fmt.Errorf("encode %s: %w: %d bytes, at most %d", e.Cmd.Op(), ErrBadCommand, len(out), MaxCommandSize)
	}
	return out, nil
}

// Decode strictly reads an encoded command: known version and op (a
// retired op is ErrBadCommand, an op or version it does not know
// ErrUnsupported), a positive time, a matching checksum, a body that is
// exactly one JSON object with no unknown field, and fields that check.
func Decode(b []byte) (Entry, error) {
	if len(b) < HeaderSize {
		return Entry{}, fmt.Errorf("%w: %d bytes, header is %d", ErrBadCommand, len(b), HeaderSize)
	}
	if len(b) > MaxCommandSize {
		return Entry{}, fmt.Errorf("%w: %d bytes, at most %d", ErrBadCommand, len(b), MaxCommandSize)
	}
	if b[0] != Version {
		return Entry{}, fmt.Errorf("%w: format version %d, this build reads %d", ErrUnsupported, b[0], Version)
	}
	op := Op(b[1])
	if op.retired() {
		return Entry{}, fmt.Errorf("%w: operation %d is retired (a per-operation command no server proposed)", ErrBadCommand, b[1])
	}
	cmd := newCommand(op)
	if cmd == nil {
		return Entry{}, fmt.Errorf("%w: unknown operation %d", ErrUnsupported, b[1])
	}
	at := int64(binary.BigEndian.Uint64(b[2:]))
	if at <= 0 {
		return Entry{}, fmt.Errorf("%w: %s: time %d", ErrBadCommand, op, at)
	}
	if crc32.Checksum(b[HeaderSize:], castagnoli) != binary.BigEndian.Uint32(b[10:]) {
		return Entry{}, fmt.Errorf("%w: %s: checksum mismatch (damaged entry)", ErrBadCommand, op)
	}
	if err := strictjson.Decode(b[HeaderSize:], cmd); err != nil {
		return Entry{}, fmt.Errorf("%w: %s: %v", ErrBadCommand, op, err)
	}
	if err := cmd.check(); err != nil {
		return Entry{}, fmt.Errorf("%w: %s: %v", ErrBadCommand, op, err)
	}
	return Entry{At: time.Unix(0, at).UTC(), Cmd: cmd}, nil
}

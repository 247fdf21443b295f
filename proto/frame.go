package proto

import (
	"fmt"
	"io"
)

func newMessage(t Type) Message {
	switch t {
	case TypeServerHello:
		return &ServerHello{}
	case TypeEnroll:
		return &Enroll{}
	case TypeHello:
		return &Hello{}
	case TypeWelcome:
		return &Welcome{}
	case TypeReject:
		return &Reject{}
	case TypeNotLeader:
		return &NotLeader{}
	case TypePing:
		return &Ping{}
	case TypePingReply:
		return &PingReply{}
	case TypeSessionPing:
		return &SessionPing{}
	case TypeSessionReply:
		return &SessionReply{}
	case TypeKeyUpdate:
		return &KeyUpdate{}
	case TypeKeyAck:
		return &KeyAck{}
	case TypeKeyActivate:
		return &KeyActivate{}
	case TypeKeyRetire:
		return &KeyRetire{}
	case TypeDeny:
		return &Deny{}
	case TypeMode:
		return &ModeMsg{}
	case TypeNodeUpgraded:
		return &NodeUpgraded{}
	case TypeDenySet:
		return &DenySet{}
	case TypeDenyLift:
		return &DenyLift{}
	case TypeIMSecurity:
		return &IMSecurity{}
	case TypeSealedNodes:
		return &SealedNodes{}
	case TypeLegacyHello:
		return &LegacyHello{}
	case TypeClusterAddrs:
		return &ClusterAddrs{}
	case TypeIMJoin:
		return &IMJoin{}
	case TypeIMPoll:
		return &IMPoll{}
	case TypeIMReply:
		return &IMReply{}
	case TypeNodeLookup:
		return &NodeLookup{}
	case TypeNodeAddress:
		return &NodeAddress{}
	case TypeFloorLookup:
		return &FloorLookup{}
	case TypeFloorAnswer:
		return &FloorAnswer{}
	case TypeNameLookup:
		return &NameLookup{}
	case TypeNodeName:
		return &NodeName{}
	case TypeFloorProbe:
		return &FloorProbe{}
	case TypeRecoveryLookup:
		return &RecoveryLookup{}
	case TypeFloorStamp:
		return &FloorStamp{}
	}
	return nil
}

// AppendFrame appends m as a whole frame (header and body) to dst.
func AppendFrame(dst []byte, m Message) []byte {
	start := len(dst)
	dst = AppendHeader(dst, Header{Version: m.Version(), Type: m.Type()})
	dst = m.AppendBody(dst)
	Header{Version: m.Version(), Type: m.Type(), Length: uint32(len(dst) - start - HeaderSize)}.Put(dst[start:])
	return dst
}

// Marshal returns m as a whole frame.
func Marshal(m Message) []byte { return AppendFrame(nil, m) }

// Unmarshal decodes exactly one whole frame. It is strict: every check of
// docs/PROTOCOL.md section 1 applies and each failure wraps its own error.
func Unmarshal(frame []byte) (Message, error) {
	h, err := ParseHeader(frame)
	if err != nil {
		return nil, fmt.Errorf("decode frame: %w", err)
	}
	body := frame[HeaderSize:]
	switch {
	case len(body) < int(h.Length):
		return nil, fmt.Errorf("decode %s: body %d bytes, header says %d: %w", h.Type, len(body), h.Length, ErrTruncated)
	case len(body) > int(h.Length):
		return nil, fmt.Errorf("decode %s: %d bytes after the frame: %w", h.Type, len(body)-int(h.Length), ErrTrailing)
	}
	m := newMessage(h.Type)
	switch v := m.(type) {
	case *Reject:
		v.Ver = h.Version
	case *ModeMsg:
		v.Ver = h.Version
	case *IMJoin:
		v.Ver = h.Version
	case *IMPoll:
		v.Ver = h.Version
	case *IMReply:
		v.Ver = h.Version
	case *NodeLookup:
		v.Ver = h.Version
	case *NodeAddress:
		v.Ver = h.Version
	}
	r := &reader{b: body, typ: h.Type}
	m.decode(r)
	if err := r.end(); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadFrame reads one whole frame of at most MaxFrameSize bytes.
func ReadFrame(r io.Reader, buf []byte) ([]byte, error) {
	return ReadFrameLimit(r, buf, MaxFrameSize)
}

// ReadFrameLimit reads one whole frame of at most max bytes (header
// included). The header is checked before any body byte is read or any
// buffer for the body allocated; buf is reused when it is large enough,
// and the header is read into it when it holds a header, so that reading
// a frame that fits buf allocates nothing. It returns io.EOF for a
// connection closed before a frame began.
func ReadFrameLimit(r io.Reader, buf []byte, max int) ([]byte, error) {
	var hb []byte
	if cap(buf) >= HeaderSize {
		hb = buf[:HeaderSize]
	} else {
		hb = make([]byte, HeaderSize)
	}
	if _, err := io.ReadFull(r, hb); err != nil {
		if err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("read frame header: %w", ErrTruncated)
		}
		return nil, err
	}
	h, err := ParseHeader(hb)
	if err != nil {
		return nil, fmt.Errorf("read frame: %w", err)
	}
	total := HeaderSize + int(h.Length)
	if total > max {
		return nil, fmt.Errorf("read %s: %d bytes, limit %d: %w", h.Type, total, max, ErrOversize)
	}
	if cap(buf) < total {
		buf = make([]byte, total)
	}
	buf = buf[:total]
	copy(buf, hb) // a no-op when hb is buf's own start
	if _, err := io.ReadFull(r, buf[HeaderSize:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil, fmt.Errorf("read %s body: %w", h.Type, ErrTruncated)
		}
		return nil, err
	}
	return buf, nil
}

// WriteFrame writes m as one frame with a single Write.
//
// It refuses (ErrEncode) a message that its own peer would refuse: one over
// MaxFrameSize, or with a field or count past its limit, which the
// fixed-width length fields would otherwise silently truncate.
func WriteFrame(w io.Writer, m Message) error {
	frame, err := MarshalChecked(m)
	if err != nil {
		return err
	}
	_, err = w.Write(frame)
	return err
}

// MarshalChecked is Marshal that also checks the frame decodes as the
// receiver will decode it.
func MarshalChecked(m Message) ([]byte, error) {
	frame := Marshal(m)
	if len(frame) > MaxFrameSize {
		return nil, fmt.Errorf("%w: %s is %d bytes: %w", ErrEncode, m.Type(), len(frame), ErrOversize)
	}
	if _, err := Unmarshal(frame); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrEncode, m.Type(), err)
	}
	return frame, nil
}

package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// fill returns n bytes start, start+1, ...
func fill(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

func wrapped(id uint32, state uint8) WrappedKey {
	w := WrappedKey{KeyID: id, State: state}
	copy(w.Nonce[:], fill(24, 0x10))
	copy(w.Sealed[:], fill(WrappedSealedLen, 0x40))
	return w
}

func mustAddr(s string) Addr { return AddrFrom(netip.MustParseAddr(s)) }

// namedMessage is one sample of a message type for round trips and seeds.
type namedMessage struct {
	name string
	msg  Message
	body int // encoded body length, -1 to skip the check
}

// sampleMessages has at least one message of every type, with every field
// set to a non-zero value where the format allows it.
func sampleMessages() []namedMessage {
	var sh ServerHello
	copy(sh.ServerID[:], fill(16, 1))
	copy(sh.ServerKey[:], fill(32, 0x20))
	copy(sh.Challenge[:], fill(32, 0x60))
	sh.Mode, sh.Versions = ModeCompat, VersionBitV1|VersionBitV2

	var en Enroll
	copy(en.TokenID[:], fill(16, 0xa0))
	copy(en.NodeKey[:], fill(32, 0xb0))
	copy(en.Nonce[:], fill(24, 0xd0))
	en.Sealed = fill(EnrollProofSize+16, 3)

	var he Hello
	copy(he.NodeID[:], fill(16, 0x70))
	copy(he.Nonce[:], fill(24, 0x80))
	he.Sealed = fill(36+8+16, 5)

	var wl Welcome
	copy(wl.NodeID[:], fill(16, 0x70))
	wl.Name, wl.Mode = "node-01", ModePing
	wl.Keys = []WrappedKey{wrapped(0x0a1b2c3d, 2), wrapped(7, 1), wrapped(0xffffffff, 3)}

	var ws WelcomeSession
	copy(ws.Nonce[:], fill(24, 0x30))
	copy(ws.Sealed[:], fill(WelcomeSessionSealedLen, 0x31))

	var ping Ping
	ping.KeyID = 0x0a1b2c3d
	copy(ping.Nonce[:], fill(24, 0x40))
	copy(ping.Sealed[:], fill(PingSealedLen, 0x90))
	var reply PingReply
	reply.KeyID = 0x0a1b2c3d
	copy(reply.Nonce[:], fill(24, 0x40))
	copy(reply.Sealed[:], fill(ReplySealedLen, 0x90))
	var sping SessionPing
	sping.KeyID = 0x0a1b2c3d
	copy(sping.Nonce[:], fill(24, 0x41))
	copy(sping.Sealed[:], fill(SessionPingSealedLen, 0x91))
	var sreply SessionReply
	sreply.KeyID = 0x0a1b2c3d
	copy(sreply.Nonce[:], fill(24, 0x41))
	copy(sreply.Sealed[:], fill(SessionReplySealedLen, 0x91))

	var n1, n2 NodeID
	copy(n1[:], fill(16, 0x11))
	copy(n2[:], fill(16, 0x22))
	entries := []NodeAddr{{n1, mustAddr("127.0.0.2")}, {n2, mustAddr("fd00::1")}}

	return []namedMessage{
		{"server_hello", &sh, 112},
		{"enroll", &en, 16 + 32 + 24 + 2 + len(en.Sealed)},
		{"enroll_empty_sealed", &Enroll{}, 16 + 32 + 24 + 2},
		{"hello", &he, 16 + 24 + 2 + len(he.Sealed)},
		{"welcome", &wl, 16 + 2 + 7 + 1 + 1 + 3*WrappedKeySize},
		{"welcome_no_keys", &Welcome{Name: "n", Mode: ModeLegacy}, 16 + 2 + 1 + 1 + 1},
		{"welcome_session", &Welcome{Name: "n", Mode: ModePing, Keys: wl.Keys[:1], Session: &ws}, 16 + 2 + 1 + 1 + 1 + WrappedKeySize + WelcomeSessionSize},
		{"im_security", &IMSecurity{Protection: 2}, 1},
		{"sealed_nodes", &SealedNodes{Op: UpgradedReplace, Entries: entries}, 1 + 2 + 2*32},
		{"sealed_nodes_remove", &SealedNodes{Op: UpgradedRemove, Entries: entries[1:]}, 1 + 2 + 32},
		{"reject_v2", &Reject{Code: 7, Reason: "replay"}, 2 + 2 + 6},
		{"reject_v1", &Reject{Ver: V1, Code: 17, Reason: "legacy refused"}, 2 + 2 + 14},
		{"not_leader", &NotLeader{Addr: mustAddr("127.0.0.2"), Port: 15001, Leader: "s2"}, 16 + 2 + 2 + 2},
		{"not_leader_unknown", &NotLeader{}, 16 + 2 + 2},
		{"ping", &ping, 4 + 24 + PingSealedLen},
		{"ping_reply", &reply, 4 + 24 + ReplySealedLen},
		{"session_ping", &sping, 4 + 24 + SessionPingSealedLen},
		{"session_reply", &sreply, 4 + 24 + SessionReplySealedLen},
		{"key_update", &KeyUpdate{Rotation: 1 << 40, Key: wrapped(9, 1)}, 8 + WrappedKeySize},
		{"key_ack", &KeyAck{Rotation: 3, KeyID: 9, Status: 1}, 13},
		{"key_activate", &KeyActivate{Rotation: 3, KeyID: 9}, 12},
		{"key_retire", &KeyRetire{Rotation: 4, KeyID: 8}, 12},
		{"deny", &Deny{Entries: entries}, 2 + 2*32},
		{"deny_empty", &Deny{}, 2},
		{"deny_set", &DenySet{Entries: entries[:1]}, 2 + 32},
		{"deny_lift", &DenyLift{Entries: entries[1:]}, 2 + 32},
		{"deny_lift_empty", &DenyLift{}, 2},
		{"mode_v2", &ModeMsg{Mode: ModePing}, 1},
		{"mode_v1", &ModeMsg{Ver: V1, Mode: ModeLegacy}, 1},
		{"node_upgraded", &NodeUpgraded{Op: UpgradedAdd, Entries: entries[:1]}, 1 + 2 + 32},
		{"node_upgraded_replace_empty", &NodeUpgraded{Op: UpgradedReplace}, 1 + 2},
		{"legacy_hello", &LegacyHello{Name: "legacy-mom", IMPort: 15003, Versions: VersionBitV1 | VersionBitV2}, 2 + 10 + 2 + 1},
		{"node_lookup_v1", &NodeLookup{Ver: V1, ID: 7, Name: "node-02"}, 4 + 2 + 7},
		{"node_address_v2", &NodeAddress{ID: 7, Name: "node-02", Status: LookupFound, Addr: mustAddr("10.0.0.2"), Port: 15003}, 4 + 2 + 7 + 1 + 16 + 2},
		{"floor_lookup", &FloorLookup{ID: 9, Node: n1}, 4 + 16},
		{"floor_answer", &FloorAnswer{ID: 9, Node: n1, Status: FloorAttested, Floor: 1764000000000000000}, 4 + 16 + 1 + 8},
		{"floor_answer_unknown", &FloorAnswer{ID: 10, Node: n2, Status: FloorUnknown}, 4 + 16 + 1 + 8},
		{"floor_answer_fresh", &FloorAnswer{ID: 11, Node: n1, Status: FloorFresh, Floor: 1764000000000000001}, 4 + 16 + 1 + 8},
		{"recovery_lookup", &RecoveryLookup{ID: 12, Node: n1}, 4 + 16},
		{"floor_probe", &FloorProbe{ID: 0x01020304}, 4},
		{"floor_stamp", &FloorStamp{ID: 0x01020304, Stamp: 1764000000000000001}, 4 + 8},
		{"name_lookup", &NameLookup{ID: 11, Node: n1}, 4 + 16},
		{"node_name", &NodeName{ID: 11, Node: n1, Status: NameFound, Name: "cn01"}, 4 + 16 + 1 + 2 + 4},
		{"node_name_deleted", &NodeName{ID: 12, Node: n2, Status: NameDeleted, Name: "cn03"}, 4 + 16 + 1 + 2 + 4},
		{"node_name_unknown", &NodeName{ID: 13, Node: n2, Status: NameUnknown}, 4 + 16 + 1 + 2},
		{"cluster_addrs", &ClusterAddrs{Runs: RunsFromAddrs(addrs("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.9"))}, 4 + 2*8},
		{"cluster_addrs_empty", &ClusterAddrs{}, 4},
		{"im_join_v1", &IMJoin{Ver: V1, Job: "42.server", Mother: "node-01"}, 2 + 9 + 2 + 7},
		{"im_join_v2", &IMJoin{Job: "43.server", Mother: "node-02"}, 2 + 9 + 2 + 7},
		{"im_poll", &IMPoll{Job: "42.server", Seq: 1<<63 + 5}, 2 + 9 + 8},
		{"im_reply", &IMReply{Ver: V1, Job: "42.server", Seq: 6, Status: IMRefused}, 2 + 9 + 8 + 1},
	}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// TestSamplesCoverEveryType keeps sampleMessages (and so the round trip
// test and the fuzz seeds) in step with the type table.
func TestSamplesCoverEveryType(t *testing.T) {
	seen := map[Type]bool{}
	for _, s := range sampleMessages() {
		seen[s.msg.Type()] = true
	}
	for i := range typeTable {
		typ := Type(i)
		if typeTable[i].name == "" {
			if newMessage(typ) != nil {
				t.Errorf("%s has a decoder but no type table entry", typ)
			}
			continue
		}
		if !seen[typ] {
			t.Errorf("no sample message of type %s", typ)
		}
		if m := newMessage(typ); m == nil || m.Type() != typ {
			t.Errorf("newMessage(%s) = %T", typ, m)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, s := range sampleMessages() {
		t.Run(s.name, func(t *testing.T) {
			frame := Marshal(s.msg)
			h, err := ParseHeader(frame)
			if err != nil {
				t.Fatalf("header: %v", err)
			}
			if h.Version != s.msg.Version() || h.Type != s.msg.Type() || int(h.Length) != len(frame)-HeaderSize {
				t.Fatalf("header %v for %d-byte frame of %T v%d", h, len(frame), s.msg, s.msg.Version())
			}
			if s.body >= 0 && int(h.Length) != s.body {
				t.Fatalf("body is %d bytes, PROTOCOL.md layout gives %d", h.Length, s.body)
			}
			got, err := Unmarshal(frame)
			if err != nil {
				t.Fatalf("unmarshal: %v", err)
			}
			if !reflect.DeepEqual(normalise(got), normalise(s.msg)) {
				t.Fatalf("round trip:\n got  %#v\n want %#v", got, s.msg)
			}
			if again := Marshal(got); !bytes.Equal(again, frame) {
				t.Fatalf("re-marshal differs:\n got  %x\n want %x", again, frame)
			}
			// AppendFrame appends: a prefix is kept and the header is
			// written at the right offset.
			withPrefix := AppendFrame([]byte("xyz"), s.msg)
			if !bytes.Equal(withPrefix[:3], []byte("xyz")) || !bytes.Equal(withPrefix[3:], frame) {
				t.Fatalf("AppendFrame with a prefix: %x", withPrefix)
			}
		})
	}
}

// normalise makes a message comparable after a round trip: the versioned
// types record the frame version explicitly once decoded, and empty
// byte strings decode as nil.
func normalise(m Message) Message {
	switch v := m.(type) {
	case *Reject:
		c := *v
		c.Ver = c.Version()
		return &c
	case *ModeMsg:
		c := *v
		c.Ver = c.Version()
		return &c
	case *IMJoin:
		c := *v
		c.Ver = c.Version()
		return &c
	case *IMPoll:
		c := *v
		c.Ver = c.Version()
		return &c
	case *IMReply:
		c := *v
		c.Ver = c.Version()
		return &c
	case *NodeLookup:
		c := *v
		c.Ver = c.Version()
		return &c
	case *NodeAddress:
		c := *v
		c.Ver = c.Version()
		return &c
	case *Enroll:
		c := *v
		if len(c.Sealed) == 0 {
			c.Sealed = nil
		}
		return &c
	case *Hello:
		c := *v
		if len(c.Sealed) == 0 {
			c.Sealed = nil
		}
		return &c
	}
	return m
}

// frameOf builds a frame with a correct header around body.
func frameOf(v Version, typ Type, body []byte) []byte {
	return append(AppendHeader(nil, Header{Version: v, Type: typ, Length: uint32(len(body))}), body...)
}

// sentinels is every decoding error; each failure wraps exactly one.
var sentinels = []error{ErrTruncated, ErrBadMagic, ErrUnsupportedVersion, ErrOversize,
	ErrUnknownType, ErrTrailing, ErrCountLimit, ErrFieldTooLong, ErrBadValue}

func checkSentinel(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v", err, want)
	}
	for _, s := range sentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("error %v wraps %v as well as %v", err, s, want)
		}
	}
}

// body returns the body of a sample message.
func body(m Message) []byte { return m.AppendBody(nil) }

func TestUnmarshalRejects(t *testing.T) {
	samples := map[string]Message{}
	for _, s := range sampleMessages() {
		samples[s.name] = s.msg
	}
	sample := func(name string) Message {
		m, ok := samples[name]
		if !ok {
			t.Fatalf("no sample %q", name)
		}
		return m
	}
	ping := Marshal(sample("ping"))
	bigHeader := func(n uint32) []byte {
		return AppendHeader(nil, Header{Version: V2, Type: TypeDeny, Length: n})
	}
	// mutate returns a copy of the sample's body with f applied.
	mutate := func(name string, f func(b []byte) []byte) []byte {
		return f(bytes.Clone(body(sample(name))))
	}
	welcomeName := func(n int) []byte {
		b := append(make([]byte, 16), 0, byte(n))
		b = append(b, strings.Repeat("n", n)...)
		return append(b, byte(ModePing), 0)
	}
	str := func(s string) []byte { return appendStr(nil, s) }

	cases := []struct {
		name  string
		frame []byte
		want  error
	}{
		// 1. header
		{"empty", nil, ErrTruncated},
		{"short header", ping[:HeaderSize-1], ErrTruncated},
		{"bad magic", append([]byte("GM"), ping[2:]...), ErrBadMagic},
		{"bad magic second byte", append([]byte{0x4d, 0x48}, ping[2:]...), ErrBadMagic},
		{"version 0", frameOf(0, TypePing, body(sample("ping"))), ErrUnsupportedVersion},
		{"version 3", frameOf(3, TypePing, body(sample("ping"))), ErrUnsupportedVersion},
		{"version 255", frameOf(255, TypeReject, nil), ErrUnsupportedVersion},
		{"oversize by one", bigHeader(MaxFrameSize - HeaderSize + 1), ErrOversize},
		{"oversize max uint32", bigHeader(0xffffffff), ErrOversize},
		{"unknown type 0", frameOf(V2, 0, nil), ErrUnknownType},
		{"unknown type 0x99", frameOf(V2, 0x99, nil), ErrUnknownType},
		{"unknown type 0xff", frameOf(V1, 0xff, nil), ErrUnknownType},
		{"v1-only type in v2", frameOf(V2, TypeClusterAddrs, body(sample("cluster_addrs"))), ErrUnknownType},
		{"legacy hello in v2", frameOf(V2, TypeLegacyHello, body(sample("legacy_hello"))), ErrUnknownType},
		{"ping in v1", frameOf(V1, TypePing, body(sample("ping"))), ErrUnknownType},
		{"welcome in v1", frameOf(V1, TypeWelcome, body(sample("welcome"))), ErrUnknownType},
		// 2. frame length against the bytes given
		{"body shorter than header length", ping[:len(ping)-1], ErrTruncated},
		{"header only", ping[:HeaderSize], ErrTruncated},
		{"bytes after the frame", append(bytes.Clone(ping), 0), ErrTrailing},
		{"second frame appended", append(bytes.Clone(ping), ping...), ErrTrailing},
		// 3. body against the type's layout
		{"ping body short", frameOf(V2, TypePing, body(sample("ping"))[:10]), ErrTruncated},
		{"ping body long", frameOf(V2, TypePing, append(body(sample("ping")), 0)), ErrTrailing},
		{"ping reply with ping body", frameOf(V2, TypePingReply, body(sample("ping"))), ErrTruncated},
		{"server hello short", frameOf(V2, TypeServerHello, body(sample("server_hello"))[:111]), ErrTruncated},
		{"server hello empty", frameOf(V2, TypeServerHello, nil), ErrTruncated},
		{"key ack short", frameOf(V2, TypeKeyAck, body(sample("key_ack"))[:12]), ErrTruncated},
		{"key ack long", frameOf(V2, TypeKeyAck, append(body(sample("key_ack")), 1)), ErrTrailing},
		{"mode empty", frameOf(V2, TypeMode, nil), ErrTruncated},
		{"mode long", frameOf(V1, TypeMode, []byte{1, 1}), ErrTrailing},
		{"reject string past body", frameOf(V2, TypeReject, []byte{0, 1, 0, 5, 'a', 'b'}), ErrTruncated},
		{"reject no string length", frameOf(V2, TypeReject, []byte{0, 1, 0}), ErrTruncated},
		{"enroll sealed past body", frameOf(V2, TypeEnroll, mutate("enroll", func(b []byte) []byte { return b[:len(b)-1] })), ErrTruncated},
		{"welcome keys past body", frameOf(V2, TypeWelcome, mutate("welcome", func(b []byte) []byte { return b[:len(b)-WrappedKeySize] })), ErrTruncated},
		{"welcome key cut", frameOf(V2, TypeWelcome, mutate("welcome", func(b []byte) []byte { return b[:len(b)-1] })), ErrTruncated},
		{"deny entries past body", frameOf(V2, TypeDeny, []byte{0, 3}), ErrTruncated},
		{"deny trailing", frameOf(V2, TypeDeny, append(body(sample("deny")), 9)), ErrTrailing},
		{"deny lift entries past body", frameOf(V2, TypeDenyLift, []byte{0, 2}), ErrTruncated},
		{"deny lift entry cut", frameOf(V2, TypeDenyLift, mutate("deny_lift", func(b []byte) []byte { return b[:len(b)-1] })), ErrTruncated},
		{"deny lift trailing", frameOf(V2, TypeDenyLift, append(body(sample("deny_lift")), 0)), ErrTrailing},
		{"deny lift in v1", frameOf(V1, TypeDenyLift, body(sample("deny_lift"))), ErrUnknownType},
		{"cluster addrs runs past body", frameOf(V1, TypeClusterAddrs, []byte{0, 0, 0, 2, 10, 0, 0, 1, 0, 0, 0, 1}), ErrTruncated},
		{"im poll short", frameOf(V1, TypeIMPoll, append(str("j"), 0, 0, 0)), ErrTruncated},
		{"im reply trailing", frameOf(V2, TypeIMReply, append(body(sample("im_reply")), 0)), ErrTrailing},
		// 4. counts
		{"welcome 9 keys", frameOf(V2, TypeWelcome, mutate("welcome_no_keys", func(b []byte) []byte {
			b[len(b)-1] = MaxWrappedKeys + 1
			return b
		})), ErrCountLimit},
		{"welcome 255 keys", frameOf(V2, TypeWelcome, mutate("welcome_no_keys", func(b []byte) []byte {
			b[len(b)-1] = 255
			return b
		})), ErrCountLimit},
		{"cluster addrs count over limit", frameOf(V1, TypeClusterAddrs, binary.BigEndian.AppendUint32(nil, MaxClusterRuns+1)), ErrCountLimit},
		{"cluster addrs count max uint32", frameOf(V1, TypeClusterAddrs, []byte{0xff, 0xff, 0xff, 0xff}), ErrCountLimit},
		// 5. string lengths
		{"welcome name 65", frameOf(V2, TypeWelcome, welcomeName(MaxNameLen+1)), ErrFieldTooLong},
		{"reject reason 1025", frameOf(V2, TypeReject, append([]byte{0, 1}, str(strings.Repeat("r", MaxReasonLen+1))...)), ErrFieldTooLong},
		{"reject length 65535 over short body", frameOf(V2, TypeReject, []byte{0, 1, 0xff, 0xff}), ErrFieldTooLong},
		{"enroll sealed 513", frameOf(V2, TypeEnroll, append(make([]byte, 72), appendBytes16(nil, make([]byte, MaxSealedLen+1))...)), ErrFieldTooLong},
		{"hello sealed 513", frameOf(V2, TypeHello, append(make([]byte, 40), appendBytes16(nil, make([]byte, MaxSealedLen+1))...)), ErrFieldTooLong},
		{"legacy hello name 65", frameOf(V1, TypeLegacyHello, append(str(strings.Repeat("x", 65)), 0, 1)), ErrFieldTooLong},
		{"im join job 65", frameOf(V1, TypeIMJoin, append(str(strings.Repeat("j", 65)), str("m")...)), ErrFieldTooLong},
		{"im join mother 65", frameOf(V2, TypeIMJoin, append(str("j"), str(strings.Repeat("m", 65))...)), ErrFieldTooLong},
		{"im poll job 65", frameOf(V2, TypeIMPoll, append(str(strings.Repeat("j", 65)), make([]byte, 8)...)), ErrFieldTooLong},
		{"im reply job 65", frameOf(V2, TypeIMReply, append(str(strings.Repeat("j", 65)), make([]byte, 9)...)), ErrFieldTooLong},
		// 6. enumerated values
		{"server hello mode 0", frameOf(V2, TypeServerHello, mutate("server_hello", func(b []byte) []byte { b[80] = 0; return b })), ErrBadValue},
		{"server hello mode 4", frameOf(V2, TypeServerHello, mutate("server_hello", func(b []byte) []byte { b[80] = 4; return b })), ErrBadValue},
		{"server hello reserved", frameOf(V2, TypeServerHello, mutate("server_hello", func(b []byte) []byte { b[111] = 1; return b })), ErrBadValue},
		{"welcome mode 9", frameOf(V2, TypeWelcome, mutate("welcome_no_keys", func(b []byte) []byte { b[len(b)-2] = 9; return b })), ErrBadValue},
		{"welcome key id 0", frameOf(V2, TypeWelcome, mutate("welcome", func(b []byte) []byte {
			copy(b[16+2+7+2:], []byte{0, 0, 0, 0})
			return b
		})), ErrBadValue},
		{"welcome key state 0", frameOf(V2, TypeWelcome, mutate("welcome", func(b []byte) []byte { b[16+2+7+2+4] = 0; return b })), ErrBadValue},
		{"key update state 4", frameOf(V2, TypeKeyUpdate, mutate("key_update", func(b []byte) []byte { b[12] = 4; return b })), ErrBadValue},
		{"key update id 0", frameOf(V2, TypeKeyUpdate, mutate("key_update", func(b []byte) []byte { copy(b[8:], []byte{0, 0, 0, 0}); return b })), ErrBadValue},
		{"key ack status 2", frameOf(V2, TypeKeyAck, mutate("key_ack", func(b []byte) []byte { b[12] = 2; return b })), ErrBadValue},
		{"mode 0", frameOf(V2, TypeMode, []byte{0}), ErrBadValue},
		{"mode 4 in v1", frameOf(V1, TypeMode, []byte{4}), ErrBadValue},
		{"im reply status 3", frameOf(V2, TypeIMReply, mutate("im_reply", func(b []byte) []byte { b[len(b)-1] = 3; return b })), ErrBadValue},
		{"cluster addrs run length 0", frameOf(V1, TypeClusterAddrs, []byte{0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0}), ErrBadValue},
		{"cluster addrs run past 255.255.255.255", frameOf(V1, TypeClusterAddrs, []byte{0, 0, 0, 1, 255, 255, 255, 255, 0, 0, 0, 2}), ErrBadValue},
		{"cluster addrs run of 2^32-1 from 0.0.0.2", frameOf(V1, TypeClusterAddrs, []byte{0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff}), ErrBadValue},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Unmarshal(tc.frame)
			if m != nil {
				t.Fatalf("decoded %#v from a bad frame", m)
			}
			checkSentinel(t, err, tc.want)
		})
	}
}

// TestFirstErrorWins: a body with several faults reports the first field's.
func TestFirstErrorWins(t *testing.T) {
	// Mode 0 (bad value) and then a short body (truncated): the mode comes first.
	sh := body(&ServerHello{Mode: ModePing})
	sh[80] = 0
	_, err := Unmarshal(frameOf(V2, TypeServerHello, sh[:100]))
	checkSentinel(t, err, ErrBadValue)
	// Over-long name before a bad mode.
	b := append(make([]byte, 16), appendStr(nil, strings.Repeat("n", 65))...)
	_, err = Unmarshal(frameOf(V2, TypeWelcome, append(b, 0, 0)))
	checkSentinel(t, err, ErrFieldTooLong)
}

// TestAcceptedEdges: the largest values each limit allows decode.
func TestAcceptedEdges(t *testing.T) {
	keys := make([]WrappedKey, MaxWrappedKeys)
	for i := range keys {
		keys[i] = wrapped(uint32(i+1), uint8(i%3+1))
	}
	edge := []Message{
		&Welcome{Name: strings.Repeat("n", MaxNameLen), Mode: ModeLegacy, Keys: keys},
		&Reject{Code: 0xffff, Reason: strings.Repeat("r", MaxReasonLen)},
		&Enroll{Sealed: make([]byte, MaxSealedLen)},
		&Hello{Sealed: make([]byte, MaxSealedLen)},
		&IMJoin{Job: strings.Repeat("j", MaxNameLen), Mother: strings.Repeat("m", MaxNameLen)},
		&KeyAck{Status: 0},
		&IMReply{Status: IMOK},
		&ClusterAddrs{Runs: []AddrRun{{First: [4]byte{255, 255, 255, 255}, Count: 1}, {First: [4]byte{0, 0, 0, 0}, Count: 0xffffffff}}},
	}
	for _, m := range edge {
		got, err := Unmarshal(Marshal(m))
		if err != nil {
			t.Errorf("%T at its limit: %v", m, err)
			continue
		}
		if !reflect.DeepEqual(normalise(got), normalise(m)) {
			t.Errorf("%T at its limit: round trip changed it", m)
		}
	}
}

// TestRejectReasonTruncated: an over-long reason is cut to the limit when
// encoded, so a Reject always decodes.
func TestRejectReasonTruncated(t *testing.T) {
	m, err := Unmarshal(Marshal(&Reject{Code: 1, Reason: strings.Repeat("x", MaxReasonLen+100)}))
	if err != nil {
		t.Fatal(err)
	}
	if r := m.(*Reject); len(r.Reason) != MaxReasonLen {
		t.Fatalf("reason is %d bytes, want %d", len(r.Reason), MaxReasonLen)
	}
}

func TestDecodedSlicesDoNotAliasFrame(t *testing.T) {
	frame := Marshal(&Enroll{Sealed: []byte("sealed proof")})
	m, err := Unmarshal(frame)
	if err != nil {
		t.Fatal(err)
	}
	for i := range frame {
		frame[i] = 0
	}
	if got := string(m.(*Enroll).Sealed); got != "sealed proof" {
		t.Fatalf("decoded Sealed changed with the frame buffer: %q", got)
	}
}

func TestTypeModeAddrStrings(t *testing.T) {
	if got := TypePing.String(); got != "Ping" {
		t.Errorf("TypePing.String() = %q", got)
	}
	if got := Type(0x99).String(); got != "Type(0x99)" {
		t.Errorf("Type(0x99).String() = %q", got)
	}
	for _, m := range []Mode{ModeLegacy, ModeCompat, ModePing} {
		if !m.Valid() {
			t.Errorf("%v not valid", m)
		}
		got, err := ParseMode(strings.ToUpper(m.String()))
		if err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", strings.ToUpper(m.String()), got, err)
		}
	}
	if Mode(0).Valid() || Mode(4).Valid() || Mode(4).String() != "Mode(4)" {
		t.Errorf("Mode(0)/Mode(4) handled wrongly")
	}
	if _, err := ParseMode("pong"); !errors.Is(err, ErrBadValue) {
		t.Errorf("ParseMode(pong) = %v, want ErrBadValue", err)
	}
	a, err := ParseAddr("127.0.0.2")
	if err != nil || a.String() != "127.0.0.2" || a != mustAddr("::ffff:127.0.0.2") || !a.Netip().Is4() {
		t.Errorf("ParseAddr(127.0.0.2) = %v (%x), %v", a, a[:], err)
	}
	if _, err := ParseAddr("127.0.0.256"); err == nil {
		t.Errorf("ParseAddr accepted 127.0.0.256")
	}
	h := Header{Version: V2, Type: TypePing, Length: 116}
	if got := h.String(); got != "v2 Ping (116 bytes)" {
		t.Errorf("Header.String() = %q", got)
	}
	var b [HeaderSize]byte
	h.Put(b[:])
	if got, err := ParseHeader(b[:]); err != nil || got != h {
		t.Errorf("Put/ParseHeader = %v, %v", got, err)
	}
}

package proto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"reflect"
	"testing"

	"github.com/momgate/momgate/tools/fuzzcorpus"
)

// The seed corpora are checked in under testdata/fuzz/<Target>/ and kept in
// step with the seed functions below by TestSeedCorpus.

// exactlyOneSentinel fails unless err wraps exactly one decoding error.
func exactlyOneSentinel(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, s := range sentinels {
		if errors.Is(err, s) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("error %q wraps %d decoding sentinels, want 1", err, n)
	}
}

func headerSeeds() []fuzzcorpus.Seed {
	ping := Marshal(&Ping{KeyID: 1})
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("ping", ping[:HeaderSize]),
		fuzzcorpus.Bytes("cluster_addrs_v1", AppendHeader(nil, Header{Version: V1, Type: TypeClusterAddrs, Length: 20})),
		fuzzcorpus.Bytes("largest", AppendHeader(nil, Header{Version: V2, Type: TypeDeny, Length: MaxFrameSize - HeaderSize})),
		fuzzcorpus.Bytes("oversize", AppendHeader(nil, Header{Version: V2, Type: TypeDeny, Length: MaxFrameSize - HeaderSize + 1})),
		fuzzcorpus.Bytes("bad_magic", []byte("GM\x02\x10\x00\x00\x00\x74")),
		fuzzcorpus.Bytes("version_3", []byte("MG\x03\x10\x00\x00\x00\x74")),
		fuzzcorpus.Bytes("unknown_type", []byte("MG\x02\x99\x00\x00\x00\x00")),
		fuzzcorpus.Bytes("v1_only_type_in_v2", []byte("MG\x02\x31\x00\x00\x00\x04")),
		fuzzcorpus.Bytes("short", []byte("MG\x02\x10\x00")),
	}
}

func FuzzParseHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if err != nil {
			exactlyOneSentinel(t, err)
			return
		}
		if !bytes.Equal(AppendHeader(nil, h), b[:HeaderSize]) {
			t.Fatalf("header %v does not re-encode to %x", h, b[:HeaderSize])
		}
		if int(h.Length)+HeaderSize > MaxFrameSize || !h.Type.validIn(h.Version) || newMessage(h.Type) == nil {
			t.Fatalf("accepted header %v", h)
		}
	})
}

func unmarshalSeeds() []fuzzcorpus.Seed {
	var seeds []fuzzcorpus.Seed
	for _, s := range sampleMessages() {
		seeds = append(seeds, fuzzcorpus.Bytes(s.name, Marshal(s.msg)))
	}
	ping := Marshal(&Ping{KeyID: 1})
	welcome := Marshal(&Welcome{Name: "n", Mode: ModePing, Keys: []WrappedKey{wrapped(1, 2)}})
	welcomeSession := Marshal(&Welcome{Name: "n", Mode: ModePing, Keys: []WrappedKey{wrapped(1, 2)}, Session: &WelcomeSession{}})
	badKeyCount := bytes.Clone(welcome)
	badKeyCount[HeaderSize+16+2+1+1] = MaxWrappedKeys + 1
	return append(seeds,
		fuzzcorpus.Bytes("truncated_ping", ping[:len(ping)-1]),
		fuzzcorpus.Bytes("trailing_ping", append(bytes.Clone(ping), 0)),
		fuzzcorpus.Bytes("oversize_header", AppendHeader(nil, Header{Version: V2, Type: TypeDeny, Length: 0xffffffff})),
		fuzzcorpus.Bytes("bad_magic", append([]byte("GM"), ping[2:]...)),
		fuzzcorpus.Bytes("unknown_type", frameOf(V2, 0x99, nil)),
		fuzzcorpus.Bytes("welcome_key_count_9", badKeyCount),
		fuzzcorpus.Bytes("welcome_key_cut", welcome[:len(welcome)-1]),
		fuzzcorpus.Bytes("reject_reason_too_long", frameOf(V2, TypeReject, []byte{0, 1, 0x04, 0x01})),
		fuzzcorpus.Bytes("mode_0", frameOf(V2, TypeMode, []byte{0})),
		fuzzcorpus.Bytes("cluster_addrs_count_over_limit", frameOf(V1, TypeClusterAddrs, binary.BigEndian.AppendUint32(nil, MaxClusterRuns+1))),
		fuzzcorpus.Bytes("floor_answer_status_3", floorAnswerBody(3, 0)),
		fuzzcorpus.Bytes("floor_answer_fresh_zero", floorAnswerBody(FloorFresh, 0)),
		fuzzcorpus.Bytes("recovery_lookup_v1", frameOf(V1, TypeRecoveryLookup, make([]byte, 20))),
		fuzzcorpus.Bytes("recovery_lookup_cut", frameOf(V2, TypeRecoveryLookup, make([]byte, 19))),
		fuzzcorpus.Bytes("floor_probe_trailing", frameOf(V2, TypeFloorProbe, make([]byte, 5))),
		fuzzcorpus.Bytes("floor_stamp_zero", frameOf(V2, TypeFloorStamp, []byte{0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0})),
		fuzzcorpus.Bytes("floor_answer_unknown_with_floor", floorAnswerBody(FloorUnknown, 5)),
		fuzzcorpus.Bytes("floor_lookup_v1", frameOf(V1, TypeFloorLookup, make([]byte, 20))),
		fuzzcorpus.Bytes("floor_lookup_cut", frameOf(V2, TypeFloorLookup, make([]byte, 19))),
		fuzzcorpus.Bytes("welcome_session_cut", welcomeSession[:len(welcomeSession)-1]),
		fuzzcorpus.Bytes("welcome_session_trailing", append(bytes.Clone(welcomeSession), 0)),
		fuzzcorpus.Bytes("im_security_3", frameOf(V2, TypeIMSecurity, []byte{3})),
		fuzzcorpus.Bytes("im_security_v1", frameOf(V1, TypeIMSecurity, []byte{1})),
		fuzzcorpus.Bytes("sealed_nodes_op_0", frameOf(V2, TypeSealedNodes, []byte{0, 0, 0})),
		fuzzcorpus.Bytes("node_name_status_3", nodeNameBody(3, "cn01")),
		fuzzcorpus.Bytes("node_name_unknown_with_name", nodeNameBody(NameUnknown, "cn01")),
		fuzzcorpus.Bytes("node_name_found_without_name", nodeNameBody(NameFound, "")),
		fuzzcorpus.Bytes("name_lookup_v1", frameOf(V1, TypeNameLookup, make([]byte, 20))),
		fuzzcorpus.Bytes("not_leader_port_without_addr", frameOf(V2, TypeNotLeader, append(make([]byte, 16), 0x3a, 0x99, 0, 0))),
		fuzzcorpus.Bytes("not_leader_addr_without_port", frameOf(V2, TypeNotLeader, append(append(make([]byte, 10), 0xff, 0xff, 127, 0, 0, 2), 0, 0, 0, 0))),
		fuzzcorpus.Bytes("not_leader_v1", frameOf(V1, TypeNotLeader, make([]byte, 20))),
		fuzzcorpus.Bytes("not_leader_cut", frameOf(V2, TypeNotLeader, make([]byte, 19))),
	)
}

// nodeNameBody is a NodeName frame with the given status and name, which
// Marshal would not produce when they disagree.
func nodeNameBody(status uint8, name string) []byte {
	b := make([]byte, 20, 23+len(name))
	b = append(b, status)
	return frameOf(V2, TypeNodeName, appendStr(b, name))
}

// floorAnswerBody is a FloorAnswer frame with the given status and floor,
// which Marshal would not produce when they disagree.
func floorAnswerBody(status uint8, floor uint64) []byte {
	b := make([]byte, 20, 29)
	b = append(b, status)
	return frameOf(V2, TypeFloorAnswer, binary.BigEndian.AppendUint64(b, floor))
}

// FuzzUnmarshal: no input panics; an error wraps exactly one sentinel; an
// accepted frame is canonical (re-marshals to the same bytes) and decodes
// again to an equal message.
func FuzzUnmarshal(f *testing.F) {
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Unmarshal(frame)
		if err != nil {
			if m != nil {
				t.Fatalf("message %#v returned with error %v", m, err)
			}
			exactlyOneSentinel(t, err)
			return
		}
		again := Marshal(m)
		if !bytes.Equal(again, frame) {
			t.Fatalf("accepted a non-canonical frame:\n in  %x\n out %x", frame, again)
		}
		m2, err := Unmarshal(again)
		if err != nil {
			t.Fatalf("re-marshalled %T does not decode: %v", m, err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the message:\n %#v\n %#v", m, m2)
		}
	})
}

func readFrameSeeds() []fuzzcorpus.Seed {
	a := Marshal(&KeyActivate{Rotation: 1, KeyID: 2})
	b := Marshal(&Reject{Code: 3, Reason: "no"})
	two := append(bytes.Clone(a), b...)
	oversize := append(AppendHeader(nil, Header{Version: V2, Type: TypeDeny, Length: 5000}), make([]byte, 64)...)
	return []fuzzcorpus.Seed{
		{Name: "one_frame", Args: []any{a, uint16(0)}},
		{Name: "two_frames", Args: []any{two, uint16(0)}},
		{Name: "two_frames_second_cut", Args: []any{two[:len(two)-2], uint16(0)}},
		{Name: "limit_4k", Args: []any{Marshal(&ModeMsg{Mode: ModePing}), uint16(4096)}},
		{Name: "over_limit", Args: []any{oversize, uint16(4096)}},
		{Name: "cut_header", Args: []any{a[:5], uint16(0)}},
		{Name: "empty", Args: []any{[]byte{}, uint16(0)}},
		{Name: "bad_magic_after_frame", Args: []any{append(bytes.Clone(a), "XXXXXXXX"...), uint16(0)}},
	}
}

// FuzzReadFrame reads frames from a stream until an error: each frame is
// the next bytes of the stream and within the limit (limit 0 means
// MaxFrameSize); the stream ends in io.EOF exactly at a frame boundary.
func FuzzReadFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		max := int(limit)
		if max == 0 {
			max = MaxFrameSize
		}
		r := bytes.NewReader(data)
		var buf []byte
		off := 0
		for i := 0; i <= len(data)/HeaderSize; i++ {
			frame, err := ReadFrameLimit(r, buf, max)
			if err == io.EOF {
				if off != len(data) {
					t.Fatalf("io.EOF at offset %d of %d", off, len(data))
				}
				return
			}
			if err != nil {
				exactlyOneSentinel(t, err)
				return
			}
			if len(frame) > max || !bytes.Equal(frame, data[off:off+len(frame)]) {
				t.Fatalf("frame %x is not the stream's next %d bytes (limit %d)", frame, len(frame), max)
			}
			h, err := ParseHeader(frame)
			if err != nil || int(h.Length)+HeaderSize != len(frame) {
				t.Fatalf("frame %x: header %v, %v", frame, h, err)
			}
			_, _ = Unmarshal(frame)
			off += len(frame)
			buf = frame
		}
		t.Fatalf("more frames than the stream can hold")
	})
}

func clusterAddrsSeeds() []fuzzcorpus.Seed {
	bodyOf := func(runs ...AddrRun) []byte { return (&ClusterAddrs{Runs: runs}).AppendBody(nil) }
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("empty", bodyOf()),
		fuzzcorpus.Bytes("contiguous", bodyOf(RunsFromAddrs(rangeAddrs("10.0.0.1", 64, 1))...)),
		fuzzcorpus.Bytes("fragmented", bodyOf(RunsFromAddrs(rangeAddrs("10.0.0.1", 8, 2))...)),
		fuzzcorpus.Bytes("across_slash24", bodyOf(RunsFromAddrs(rangeAddrs("10.0.0.250", 12, 1))...)),
		fuzzcorpus.Bytes("top_of_space", bodyOf(run("255.255.255.250", 6))),
		fuzzcorpus.Bytes("whole_space", bodyOf(AddrRun{Count: 0xffffffff})),
		fuzzcorpus.Bytes("unsorted", bodyOf(run("10.0.0.9", 1), run("10.0.0.1", 2))),
		fuzzcorpus.Bytes("overlapping", bodyOf(run("10.0.0.1", 5), run("10.0.0.3", 5))),
		fuzzcorpus.Bytes("run_length_0", bodyOf(run("10.0.0.1", 0))),
		fuzzcorpus.Bytes("run_overflows", bodyOf(run("255.255.255.255", 2))),
		fuzzcorpus.Bytes("count_over_limit", binary.BigEndian.AppendUint32(nil, MaxClusterRuns+1)),
		fuzzcorpus.Bytes("count_past_body", binary.BigEndian.AppendUint32(nil, 3)),
	}
}

// FuzzClusterAddrs decodes a ClusterAddrs body: accepted runs are valid,
// and Contains agrees with Expand on every listed address.
func FuzzClusterAddrs(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := Unmarshal(frameOf(V1, TypeClusterAddrs, body))
		if err != nil {
			exactlyOneSentinel(t, err)
			return
		}
		ca := m.(*ClusterAddrs)
		for _, r := range ca.Runs {
			if r.Count == 0 || uint64(r.first())+uint64(r.Count) > 1<<32 {
				t.Fatalf("accepted run %v", r)
			}
		}
		for _, a := range ca.Expand(256) {
			if !ca.Contains(a) {
				t.Fatalf("Contains(%v) = false for an address of the runs %v", a, ca.Runs)
			}
		}
		if !reflect.DeepEqual(ca.AppendBody(nil), body) {
			t.Fatalf("accepted a non-canonical body")
		}
	})
}

func enrollProofSeeds() []fuzzcorpus.Seed {
	b := sampleEnrollProof().Marshal()
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("valid", b),
		fuzzcorpus.Bytes("zero", make([]byte, EnrollProofSize)),
		fuzzcorpus.Bytes("short", b[:EnrollProofSize-1]),
		fuzzcorpus.Bytes("long", append(bytes.Clone(b), 0)),
	}
}

func FuzzEnrollProof(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeEnrollProof(b)
		if err != nil {
			exactlyOneSentinel(t, err)
			return
		}
		if !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("proof %+v does not re-encode to %x", p, b)
		}
	})
}

func helloProofSeeds() []fuzzcorpus.Seed {
	full := sampleHelloProof(MaxHeldKeys).Marshal()
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("no_keys", sampleHelloProof(0).Marshal()),
		fuzzcorpus.Bytes("two_keys", sampleHelloProof(2).Marshal()),
		fuzzcorpus.Bytes("max_keys", full),
		fuzzcorpus.Bytes("nine_keys", sampleHelloProof(MaxHeldKeys+1).Marshal()),
		fuzzcorpus.Bytes("key_cut", full[:len(full)-1]),
		fuzzcorpus.Bytes("trailing", append(bytes.Clone(full), 0)),
	}
}

func FuzzHelloProof(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeHelloProof(b)
		if err != nil {
			exactlyOneSentinel(t, err)
			return
		}
		if len(p.KeyIDs) > MaxHeldKeys || !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("proof %+v does not re-encode to %x", p, b)
		}
	})
}

func welcomeSessionProofSeeds() []fuzzcorpus.Seed {
	p := &WelcomeSessionProof{Flags: WelcomeSealed, IMSecurity: 2}
	copy(p.Challenge[:], fill(32, 0x60))
	b := p.Marshal()
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("valid", b),
		fuzzcorpus.Bytes("zero", make([]byte, WelcomeSessionProofSize)),
		fuzzcorpus.Bytes("short", b[:len(b)-1]),
		fuzzcorpus.Bytes("long", append(bytes.Clone(b), 0)),
		fuzzcorpus.Bytes("floor_probe_flag", append(bytes.Clone(b[:32]), 0x03, 1)),
		fuzzcorpus.Bytes("unknown_flag", append(bytes.Clone(b[:32]), 0x04, 1)),
		fuzzcorpus.Bytes("im_security_3", append(bytes.Clone(b[:32]), 0x01, 3)),
	}
}

// FuzzWelcomeSessionProof: the plaintext of the Welcome's session trailer
// decodes strictly and canonically.
func FuzzWelcomeSessionProof(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodeWelcomeSessionProof(b)
		if err != nil {
			exactlyOneSentinel(t, err)
			return
		}
		if p.IMSecurity > MaxProtection || p.Flags&^(WelcomeSealed|WelcomeFloorProbe) != 0 || !bytes.Equal(p.Marshal(), b) {
			t.Fatalf("proof %+v does not re-encode to %x", p, b)
		}
	})
}

// TestSeedCorpus checks the checked-in seed corpora against the seed
// functions; MOMGATE_UPDATE_CORPUS=1 rewrites them.
func TestSeedCorpus(t *testing.T) {
	fuzzcorpus.Check(t, "FuzzParseHeader", headerSeeds())
	fuzzcorpus.Check(t, "FuzzUnmarshal", unmarshalSeeds())
	fuzzcorpus.Check(t, "FuzzReadFrame", readFrameSeeds())
	fuzzcorpus.Check(t, "FuzzClusterAddrs", clusterAddrsSeeds())
	fuzzcorpus.Check(t, "FuzzEnrollProof", enrollProofSeeds())
	fuzzcorpus.Check(t, "FuzzHelloProof", helloProofSeeds())
	fuzzcorpus.Check(t, "FuzzWelcomeSessionProof", welcomeSessionProofSeeds())
}

package ping

import (
	"bytes"
	"testing"
)

// FuzzOpen: no input crashes Open or Verify, and nothing but a frame sealed
// under a held key is ever admitted.
func FuzzOpen(f *testing.F) {
	keys := newTestKeys(f, 7)
	clock := &fakeClock{t: epoch}
	a := newEndpoint(f, keys, "127.0.0.2", 2, clock)
	recv := addr("127.0.0.3")
	ping, rnd, _ := a.sealer.Ping(nil, a.addr, recv)
	reply, _ := a.sealer.Reply(nil, a.addr, recv, rnd)
	sealed := bytes.Clone(ping)
	f.Add(bytes.Clone(ping))
	f.Add(reply)
	f.Add(ping[:FrameSize-1])
	f.Add([]byte{})
	f.Add([]byte("MG\x02\x10\x00\x00\x00\x74"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		orig := bytes.Clone(frame)
		v := &Verifier{Keys: keys, Guard: NewGuard(GuardConfig{Freshness: 0}, nil), Now: clock.Now}
		var res Result
		err := v.VerifyPing(bytes.Clone(orig), a.addr, recv, &res)
		if err == nil && !bytes.Equal(orig, sealed) {
			// Only a frame the fuzzer cannot forge passes: the seed itself.
			t.Fatalf("admitted a frame that is not the sealed seed: %x", orig)
		}
		_ = v.VerifyReply(bytes.Clone(orig), a.addr, recv, &rnd, &res)
		_, _ = KeyIDOf(orig)
	})
}

package session

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// The end-to-end tests run a session swap and sealed traffic between two
// net.Pipe ends through a proxy that can drop, replay, damage and inject
// frames, as an on-path attacker would.

// mutation decides what the proxy forwards in place of the i-th frame of a
// direction (0 is the first frame: the SessionPing or SessionReply).
type mutation func(i int, frame []byte) [][]byte

func forward(_ int, f []byte) [][]byte { return [][]byte{f} }

// link is A <-> proxy <-> B over two pipes.
type link struct {
	a, b net.Conn
	wg   sync.WaitGroup
}

func newLink(t *testing.T, ab, ba mutation) *link {
	t.Helper()
	a, pa := net.Pipe()
	pb, b := net.Pipe()
	l := &link{a: a, b: b}
	l.wg.Add(2)
	go l.relay(pa, pb, ab)
	go l.relay(pb, pa, ba)
	deadline := time.Now().Add(10 * time.Second) // a bug fails the test, it does not hang it
	for _, c := range []net.Conn{a, b, pa, pb} {
		if err := c.SetDeadline(deadline); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, c := range []net.Conn{a, b, pa, pb} {
			c.Close()
		}
		l.wg.Wait()
	})
	return l
}

// relay copies whole frames (the 8-byte header says their length, records
// included) from src to dst through mut, queueing so that neither end waits
// on the other. When src fails it closes dst once the queue is written, as
// a TCP proxy passes a close on.
func (l *link) relay(src, dst net.Conn, mut mutation) {
	defer l.wg.Done()
	q := make(chan []byte, 4096)
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		defer dst.Close()
		for f := range q {
			if _, err := dst.Write(f); err != nil {
				for range q {
				}
				return
			}
		}
	}()
	defer close(q)
	for i := 0; ; i++ {
		var hdr [proto.HeaderSize]byte
		if _, err := io.ReadFull(src, hdr[:]); err != nil {
			return
		}
		n := int(uint32(hdr[4])<<24 | uint32(hdr[5])<<16 | uint32(hdr[6])<<8 | uint32(hdr[7]))
		if n > MaxRecordSize {
			return
		}
		f := make([]byte, proto.HeaderSize+n)
		copy(f, hdr[:])
		if _, err := io.ReadFull(src, f[proto.HeaderSize:]); err != nil {
			return
		}
		for _, out := range mut(i, f) {
			q <- out
		}
	}
}

// peersApart is newPair with a clock each, so a test ages one side's keys.
func peersApart(t *testing.T) (a, b *peer) {
	t.Helper()
	keys := newTestKeys(t, 7, testClusterKey)
	return newPeer(t, keys, "127.0.0.2", 2, &fakeClock{t: epoch}), newPeer(t, keys, "127.0.0.3", 3, &fakeClock{t: epoch})
}

// pipeSwap runs the session swap over the link: A initiates, B responds.
func pipeSwap(t *testing.T, l *link, pa, pb *peer, p Protection) (*Conn, *Conn) {
	t.Helper()
	type result struct {
		s   *Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		frame, err := proto.ReadFrameLimit(l.b, nil, 4096)
		if err != nil {
			done <- result{err: err}
			return
		}
		var res ping.Result
		out, s, err := Respond(nil, frame, pb.sealer, pb.verif, pa.addr, pb.addr, imConfig(p, 2<<40), pb.clock.Now(), &res)
		if err == nil {
			_, err = l.b.Write(out)
		}
		done <- result{s, err}
	}()
	in, frame := sessionPing(t, pa, pb, imConfig(p, 1))
	if _, err := l.a.Write(frame); err != nil {
		t.Fatal(err)
	}
	reply, err := proto.ReadFrameLimit(l.a, nil, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var res ping.Result
	sa, err := in.Finish(reply, pa.verif, pb.addr, pa.addr, pa.clock.Now(), &res)
	if err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	return NewConn(l.a, l.a, sa, pa.clock.Now), NewConn(l.b, l.b, r.s, pb.clock.Now)
}

// echoServer answers every frame B reads with the same frame, and reports
// what it read and why it stopped.
type echoServer struct {
	mu   sync.Mutex
	got  [][]byte
	done chan error
}

func startEcho(t *testing.T, c *Conn) *echoServer {
	e := &echoServer{done: make(chan error, 1)}
	go func() {
		for {
			f, err := c.ReadFrame()
			if err == nil {
				e.mu.Lock()
				e.got = append(e.got, bytes.Clone(f))
				e.mu.Unlock()
				err = c.WriteFrame(f)
			}
			if err != nil {
				e.done <- err
				return
			}
		}
	}()
	return e
}

func (e *echoServer) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-e.done:
		return err
	case <-time.After(time.Minute):
		t.Fatal("echo server did not stop")
		return nil
	}
}

func (e *echoServer) frames() [][]byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.got
}

// roundTrip writes frame i and reads its echo.
func roundTrip(t *testing.T, c *Conn, i int) {
	t.Helper()
	f := imFrame(64+i%300, byte(i))
	if err := c.WriteFrame(f); err != nil {
		t.Fatalf("write %d: %v", i, err)
	}
	got, err := c.ReadFrame()
	if err != nil {
		t.Fatalf("read echo %d: %v", i, err)
	}
	if !bytes.Equal(got, f) {
		t.Fatalf("echo %d differs", i)
	}
}

// TestEndToEndRekeyMidStream: traffic both ways across a rekey started by
// each side in turn and by both at once; no frame is lost and the
// connection stays up.
func TestEndToEndRekeyMidStream(t *testing.T) {
	for _, p := range []Protection{Auth, Encrypt} {
		t.Run(p.String(), func(t *testing.T) {
			pa, pb := peersApart(t)
			l := newLink(t, forward, forward)
			ca, cb := pipeSwap(t, l, pa, pb, p)
			echo := startEcho(t, cb)
			i := 0
			for ; i < 10; i++ {
				roundTrip(t, ca, i)
			}
			// A's keys age: A starts the rekey, B answers.
			pa.clock.Add(DefaultRekeyAfterTime)
			if err := ca.Tick(); err != nil {
				t.Fatal(err)
			}
			for ; i < 20; i++ {
				roundTrip(t, ca, i)
			}
			if in := ca.Info(); in.Generation != 1 || in.Rekeys != 1 || in.Rekeying {
				t.Fatalf("A after its rekey: %+v", in)
			}
			// B's keys age: B starts the next one (from its own goroutine's
			// point of view a tick, while its reader runs).
			pb.clock.Add(DefaultRekeyAfterTime + time.Second)
			if err := cb.Tick(); err != nil {
				t.Fatal(err)
			}
			for ; i < 30; i++ {
				roundTrip(t, ca, i)
			}
			// Both at once: B's Rekey is on its way before A starts its own.
			pa.clock.Add(DefaultRekeyAfterTime + 2*time.Second)
			pb.clock.Add(DefaultRekeyAfterTime + 2*time.Second)
			if err := cb.Tick(); err != nil {
				t.Fatal(err)
			}
			if err := ca.Tick(); err != nil {
				t.Fatal(err)
			}
			for ; i < 40; i++ {
				roundTrip(t, ca, i)
			}
			ia, ib := ca.Info(), cb.Info()
			if ia.Generation != 3 || ib.Generation != 3 || ia.Rekeys != 3 || ib.Rekeys != 3 {
				t.Fatalf("after three rekeys: A %+v, B %+v", ia, ib)
			}
			if ia.Sealed != 40 || ia.Opened != 40 || ib.Opened != 40 || ib.Sealed != 40 {
				t.Fatalf("frames counted: A %+v, B %+v", ia, ib)
			}
			l.a.Close()
			if err := echo.wait(t); !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrClosedPipe) {
				t.Fatalf("echo server ended with %v", err)
			}
		})
	}
}

// TestEndToEndTampering: each on-path attack on A's frames is refused by
// B with its reason, B delivers nothing from the attack point on, and
// nothing an injected frame carries reaches B's frames.
func TestEndToEndTampering(t *testing.T) {
	denySet := proto.Marshal(&proto.DenySet{})
	mode := proto.Marshal(&proto.ModeMsg{Mode: proto.ModeLegacy})
	var prev []byte
	at := func(k int, f func(frame []byte) [][]byte) mutation {
		return func(i int, frame []byte) [][]byte {
			defer func() { prev = frame }()
			if i != k {
				return [][]byte{frame}
			}
			return f(frame)
		}
	}
	const k = 4 // the SessionPing is frame 0: records 1, 2 and 3 pass
	cases := []struct {
		name string
		mut  mutation
		want error
	}{
		{"bit flipped", at(k, func(f []byte) [][]byte { return [][]byte{flip(f, 20)} }), ErrAuth},
		{"earlier record replayed", at(k, func(f []byte) [][]byte { return [][]byte{prev, f} }), ErrReplay},
		{"record dropped", at(k, func(f []byte) [][]byte { return nil }), ErrReplay},
		{"forged record injected", at(k, func(f []byte) [][]byte { return [][]byte{forged(len(f)), f} }), ErrAuth},
		{"plain DenySet injected", at(k, func(f []byte) [][]byte { return [][]byte{denySet, f} }), ErrAuth},
		{"plain Mode injected", at(k, func(f []byte) [][]byte { return [][]byte{mode, f} }), ErrAuth},
		{"record sealed as Mode", at(k, func(f []byte) [][]byte { return [][]byte{sealedLookalike(f, mode)} }), ErrAuth},
		{"oversized header injected", at(k, func(f []byte) [][]byte {
			return [][]byte{proto.AppendHeader(nil, proto.Header{Version: proto.V2, Type: RecordType, Length: 1 << 30})}
		}), ErrSize},
	}
	for _, p := range []Protection{Auth, Encrypt} {
		for _, c := range cases {
			t.Run(p.String()+"/"+c.name, func(t *testing.T) {
				pa, pb := peersApart(t)
				l := newLink(t, c.mut, forward)
				ca, cb := pipeSwap(t, l, pa, pb, p)
				echo := startEcho(t, cb)
				sent := make([][]byte, 6)
				for i := range sent {
					sent[i] = imFrame(80, byte(0x10*i))
					if err := ca.WriteFrame(sent[i]); err != nil {
						t.Fatal(err)
					}
				}
				err := echo.wait(t)
				if !errors.Is(err, c.want) {
					t.Fatalf("B stopped with %v (%s), want %v", err, Reason(err), c.want)
				}
				got := echo.frames()
				if len(got) != k-1 {
					t.Fatalf("B delivered %d frames, want the %d before the attack", len(got), k-1)
				}
				for i, f := range got {
					if !bytes.Equal(f, sent[i]) {
						t.Fatalf("frame %d delivered is not the one sent", i)
					}
				}
				if in := cb.Info(); in.Closed != Reason(c.want) {
					t.Fatalf("B's info says %q", in.Closed)
				}
			})
		}
	}
}

// sealedLookalike is a record of f's length whose payload is a plain frame
// (what an attacker who cannot seal would try): it cannot authenticate.
func sealedLookalike(f, inner []byte) []byte {
	rec := bytes.Clone(f[:proto.HeaderSize])
	proto.Header{Version: proto.V2, Type: RecordType, Length: uint32(len(inner) + TagSize)}.Put(rec)
	return append(append(rec, inner...), make([]byte, TagSize)...)
}

// TestEndToEndIdleExpiry: a side whose peer never answers its rekey (the
// peer does not read) closes at the reject age with session_expired.
func TestEndToEndIdleExpiry(t *testing.T) {
	pa, pb := peersApart(t)
	l := newLink(t, forward, forward)
	ca, _ := pipeSwap(t, l, pa, pb, Encrypt)
	pa.clock.Add(DefaultRekeyAfterTime)
	if err := ca.Tick(); err != nil {
		t.Fatal(err)
	}
	if !ca.NextDeadline().Equal(epoch.Add(DefaultRejectAfterTime)) {
		t.Fatalf("deadline %v", ca.NextDeadline())
	}
	pa.clock.Add(DefaultRejectAfterTime - DefaultRekeyAfterTime)
	if err := ca.Tick(); !errors.Is(err, ErrExpired) {
		t.Fatalf("tick at the reject age: %v, want ErrExpired", err)
	}
	if err := ca.WriteFrame(imFrame(40, 0)); !errors.Is(err, ErrExpired) {
		t.Fatalf("write after expiry: %v", err)
	}
}

// TestConnNone: without a session, Conn passes frames through unsealed.
func TestConnNone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ca, cb := NewConn(a, a, nil, time.Now), NewConn(b, b, nil, time.Now)
	if ca.Protection() != None || ca.Info().Protection != None || !ca.NextDeadline().IsZero() || ca.Tick() != nil {
		t.Fatal("a Conn without a session is not None")
	}
	f := proto.Marshal(&proto.IMPoll{Job: "j", Seq: 3})
	errc := make(chan error, 1)
	go func() { errc <- ca.WriteFrame(f) }()
	got, err := cb.ReadFrame()
	if err != nil || !bytes.Equal(got, f) {
		t.Fatalf("read %x %v", got, err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFrame(make([]byte, proto.MaxFrameSize+1)); !errors.Is(err, proto.ErrOversize) {
		t.Fatalf("oversized plain frame: %v", err)
	}
}

// TestConnConcurrentWriters: several goroutines write while A's reader
// handles the rekey one of them starts; every frame arrives once, in each
// writer's order, and the rekey completes on both sides.
func TestConnConcurrentWriters(t *testing.T) {
	pa, pb := peersApart(t)
	l := newLink(t, forward, forward)
	ca, cb := pipeSwap(t, l, pa, pb, Encrypt)
	const writers, each = 4, 50
	var writing sync.WaitGroup
	errs := make(chan error, writers+1)
	for w := 0; w < writers; w++ {
		writing.Add(1)
		go func() {
			defer writing.Done()
			for i := 0; i < each; i++ {
				if err := ca.WriteFrame(frameOf(proto.TypeIMPoll, []byte(fmt.Sprintf("w%d-%03d", w, i)))); err != nil {
					errs <- err
					return
				}
				if i == each/2 && w == 0 {
					pa.clock.Add(DefaultRekeyAfterTime)
					if err := ca.Tick(); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	// A's reader takes B's answer to the rekey; it reports the first
	// application frame B sends, which B sends after its answer.
	fromB := make(chan error, 1)
	go func() {
		_, err := ca.ReadFrame()
		fromB <- err
	}()
	last := map[int]int{}
	for n := 0; n < writers*each; n++ {
		f, err := cb.ReadFrame()
		if err != nil {
			t.Fatalf("frame %d: %v", n, err)
		}
		var w, i int
		if _, err := fmt.Sscanf(string(f[proto.HeaderSize:]), "w%d-%03d", &w, &i); err != nil {
			t.Fatalf("frame %q: %v", f[proto.HeaderSize:], err)
		}
		if prev, ok := last[w]; (ok && i != prev+1) || (!ok && i != 0) {
			t.Fatalf("writer %d: frame %d after %d", w, i, prev)
		}
		last[w] = i
	}
	writing.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := cb.WriteFrame(imFrame(40, 0)); err != nil {
		t.Fatal(err)
	}
	if err := <-fromB; err != nil {
		t.Fatal(err)
	}
	// A has its new keys both ways; its Switch went before this frame.
	if err := ca.WriteFrame(imFrame(40, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.ReadFrame(); err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]Info{"A": ca.Info(), "B": cb.Info()} {
		if in.Generation != 1 || in.Rekeying || in.Rekeys != 1 {
			t.Fatalf("%s after the rekey: %+v", name, in)
		}
	}
}

package session

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
)

// Tests of the fixes of the security review of the session core
// (docs/PROTOCOL.md section 6 states each rule).

// TestFrameSurvivesConcurrentFailure: a frame ReadFrame returned stays
// intact when another goroutine's Tick ends the session while the reader
// still uses it (review item 2).
func TestFrameSurvivesConcurrentFailure(t *testing.T) {
	a, b, clock := sessionPair(t, Encrypt, Limits{})
	var wire bytes.Buffer
	ca := NewConn(&wire, &wire, a, clock.Now)
	cb := NewConn(&wire, io.Discard, b, clock.Now)
	f := imFrame(300, 7)
	if err := ca.WriteFrame(f); err != nil {
		t.Fatal(err)
	}
	got, err := cb.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	clock.Add(DefaultRejectAfterTime)
	if err := cb.Tick(); !errors.Is(err, ErrExpired) {
		t.Fatalf("tick past the reject limit: %v", err)
	}
	if !bytes.Equal(got, f) {
		t.Fatal("the frame the reader holds was erased by the failing tick")
	}
	if _, err := cb.ReadFrame(); !errors.Is(err, ErrExpired) && !errors.Is(err, io.EOF) {
		t.Fatalf("read after failure: %v", err)
	}
	if b.rx.plain != nil && !bytes.Equal(b.rx.plain[:cap(b.rx.plain)], make([]byte, cap(b.rx.plain))) {
		t.Fatal("the reader's next call left decrypted bytes behind")
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.entered <- struct{}{}
	<-w.release
	return len(p), nil
}

// TestTickDoesNotWaitOnStalledWriter: a writer stuck on a full socket does
// not hold the ticker (review item 3); the rekey record it queued goes out
// when the write ends.
func TestTickDoesNotWaitOnStalledWriter(t *testing.T) {
	a, _, clock := sessionPair(t, Auth, Limits{})
	w := &blockingWriter{entered: make(chan struct{}, 4), release: make(chan struct{})}
	c := NewConn(bytes.NewReader(nil), w, a, clock.Now)
	wrote := make(chan error, 1)
	go func() { wrote <- c.WriteFrame(imFrame(40, 1)) }()
	<-w.entered // the writer is stuck inside Write
	clock.Add(DefaultRekeyAfterTime)
	ticked := make(chan error, 1)
	go func() { ticked <- c.Tick() }()
	select {
	case err := <-ticked:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second): // a deadline for a hang, not a timing threshold
		t.Fatal("Tick waited on the stalled writer")
	}
	close(w.release)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	if !a.m.Rekeying() {
		t.Fatal("the tick started no rekey")
	}
}

// timeoutAfter returns its bytes, then a deadline error.
type timeoutAfter struct{ b []byte }

func (r *timeoutAfter) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, os.ErrDeadlineExceeded
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

// TestTimeoutMidRecordFailsSession: a read that stops inside a record, by
// a deadline as well as a close, ends the session (review item 9); one
// between records does not.
func TestTimeoutMidRecordFailsSession(t *testing.T) {
	a, b, clock := sessionPair(t, Auth, Limits{})
	rec, err := a.SealFrame(nil, imFrame(64, 1), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	between := NewConn(&timeoutAfter{}, io.Discard, b, clock.Now)
	if _, err := between.ReadFrame(); !errors.Is(err, os.ErrDeadlineExceeded) || b.Err() != nil {
		t.Fatalf("timeout between records: %v, session %v", err, b.Err())
	}
	for _, cut := range []int{3, proto.HeaderSize + 5} {
		_, b, clock := sessionPair(t, Auth, Limits{})
		c := NewConn(&timeoutAfter{b: rec[:cut]}, io.Discard, b, clock.Now)
		_, err := c.ReadFrame()
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, ErrAuth) || !errors.Is(b.Err(), ErrAuth) {
			t.Fatalf("timeout after %d bytes: %v, session %v", cut, err, b.Err())
		}
	}
}

// TestExpectNode: a control swap that names another node than the
// handshake proved is refused before anything is sealed (review item 7).
func TestExpectNode(t *testing.T) {
	hs := [][]byte{[]byte("sh"), []byte("h"), []byte("w")}
	a, b := newPair(t)
	bm, bs := controlBindings(t, hs, hs)
	ca := Config{Channel: ChannelControl, Rand: &countingRand{n: 1}, Binding: bm, ExpectNode: b.node}
	cb := Config{Channel: ChannelControl, Rand: &countingRand{n: 2 << 40}, Binding: bs, ExpectNode: nodeOf(9)}
	_, frame := sessionPing(t, a, b, ca)
	var res ping.Result
	out, s, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr, cb, b.clock.Now(), &res)
	if !errors.Is(err, ErrNode) || out != nil || s != nil {
		t.Fatalf("responder expecting another node: %v", err)
	}
	if code, ok := RejectCode(err); !ok || code != proto.RejectAuth {
		t.Fatalf("reject code %d %v", code, ok)
	}
	if bs.Static != [KeySize]byte{} {
		t.Fatal("the binding's static secret outlived the failed swap")
	}
	// The initiator's side: a reply from another node than the server.
	a, b = newPair(t)
	bm, bs = controlBindings(t, hs, hs)
	in, frame := sessionPing(t, a, b, Config{Channel: ChannelControl, Rand: &countingRand{n: 1}, Binding: bm, ExpectNode: nodeOf(9)})
	reply, _, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr,
		Config{Channel: ChannelControl, Rand: &countingRand{n: 2 << 40}, Binding: bs, ExpectNode: a.node}, b.clock.Now(), &res)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Finish(reply, a.verif, b.addr, a.addr, a.clock.Now(), &res); !errors.Is(err, ErrNode) {
		t.Fatalf("initiator expecting another node: %v", err)
	}
	if bm.Static != [KeySize]byte{} {
		t.Fatal("the initiator's static secret outlived the swap")
	}
}

// TestSecretsErased: after a swap the shares are gone from the frames
// decrypted in place and from the initiator, and the binding's static
// secret is zero (review item 4).
func TestSecretsErased(t *testing.T) {
	hs := [][]byte{[]byte("sh"), []byte("h"), []byte("w")}
	a, b := newPair(t)
	bm, bs := controlBindings(t, hs, hs)
	in, frame := sessionPing(t, a, b, Config{Channel: ChannelControl, Rand: &countingRand{n: 1}, Binding: bm, ExpectNode: b.node})
	share := in.offer.Share
	var res ping.Result
	reply, sb, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr,
		Config{Channel: ChannelControl, Rand: &countingRand{n: 2 << 40}, Binding: bs, ExpectNode: a.node}, b.clock.Now(), &res)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(frame, share[:]) {
		t.Fatal("the initiator's share is left in the responder's frame buffer")
	}
	sa, err := in.Finish(reply, a.verif, b.addr, a.addr, a.clock.Now(), &res)
	if err != nil {
		t.Fatal(err)
	}
	plain := reply[proto.HeaderSize+4+ping.NonceSize : len(reply)-TagSize]
	if !bytes.Equal(plain, make([]byte, len(plain))) {
		t.Fatal("the reply's plaintext is left in the initiator's buffer")
	}
	if in.offer.Share != [32]byte{} || bm.Static != [KeySize]byte{} || bs.Static != [KeySize]byte{} {
		t.Fatal("a share or a static secret outlived the swap")
	}
	exchange(t, sa, sb, a.clock)
}

// TestConfirmed: a session is confirmed only once a record of the peer
// has opened (review item 7: peers are marked only then).
func TestConfirmed(t *testing.T) {
	a, b, clock := sessionPair(t, Auth, Limits{})
	if a.Confirmed() || b.Confirmed() {
		t.Fatal("confirmed before any record")
	}
	rec, err := a.SealFrame(nil, imFrame(40, 1), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.OpenRecord(flip(rec, 20), nil, clock.Now()); err == nil || b.Confirmed() {
		t.Fatal("a damaged record confirmed the session")
	}
	_, b, clock = sessionPair(t, Auth, Limits{}) // another session: other keys
	if _, _, err := b.OpenRecord(rec, nil, clock.Now()); err == nil || b.Confirmed() {
		t.Fatal("another session's record confirmed the session")
	}
}

// TestInitiatorOneSwap: an initiator seals one ping and finishes once.
func TestInitiatorOneSwap(t *testing.T) {
	a, b := newPair(t)
	in, frame := sessionPing(t, a, b, imConfig(Auth, 1))
	if _, err := in.AppendPing(nil, a.sealer, a.addr, b.addr); err == nil {
		t.Fatal("a second ping sealed")
	}
	var res ping.Result
	reply, _, err := Respond(nil, frame, b.sealer, b.verif, a.addr, b.addr, imConfig(Auth, 2<<40), b.clock.Now(), &res)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := in.Finish(reply, a.verif, b.addr, a.addr, a.clock.Now(), &res); err != nil {
		t.Fatal(err)
	}
	if _, err := in.AppendPing(nil, a.sealer, a.addr, b.addr); err == nil {
		t.Fatal("a ping sealed after Finish")
	}
}

// TestAnswerNoneWithShare: an answer that chooses none carries no share.
func TestAnswerNoneWithShare(t *testing.T) {
	var ext Ext
	a := Answer{Channel: ChannelIM, Offered: OfferMask(None), Chosen: None, Share: [32]byte{1}}
	a.Encode(&ext)
	if _, err := DecodeAnswer(&ext); !errors.Is(err, ErrOffer) {
		t.Fatalf("none with a share: %v", err)
	}
}

// TestReplayDiagnosisChecksTheWholeRecord: a forgery that copies an
// earlier record's tag and length but not its bytes is not a replay.
func TestReplayDiagnosisChecksTheWholeRecord(t *testing.T) {
	a, b, clock := sessionPair(t, Encrypt, Limits{})
	rec, err := a.SealFrame(nil, imFrame(64, 1), clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.OpenRecord(bytes.Clone(rec), nil, clock.Now()); err != nil {
		t.Fatal(err)
	}
	fake := flip(rec, proto.HeaderSize+3) // same tag and length, other bytes
	if _, _, err := b.OpenRecord(fake, nil, clock.Now()); !errors.Is(err, ErrAuth) {
		t.Fatalf("forgery with a copied tag: %v, want ErrAuth", err)
	}
}

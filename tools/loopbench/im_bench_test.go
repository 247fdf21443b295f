package loopbench

import (
	"crypto/rand"
	"net"
	"testing"
	"time"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// BenchmarkIMRequestResponse is the IM request/response rate on one
// loopback TCP connection under each protection, for 256-byte and 64 KiB
// frames (goal of issue 12: auth and encrypt >= 0.85x none at 256 B): the
// mother's side writes a request frame and reads the answer, the sister's
// reads it and writes an answer of the same size, both through the
// daemons' own link (internal/daemon.Link: session.Conn, write deadlines,
// the rekey ticker). The session keys come from a fixed secret: the swap
// is not what this measures (momgate-bench measures it through a real
// MOM). Run with `make bench`; the lead records figures on a quiet machine.
func BenchmarkIMRequestResponse(b *testing.B) {
	for _, p := range []session.Protection{session.None, session.Auth, session.Encrypt} {
		for _, sz := range []struct {
			name string
			n    int
		}{{"256B", 256}, {"64KiB", 64 << 10}} {
			b.Run(p.String()+"/"+sz.name, func(b *testing.B) {
				mother, sister := linkPair(b, p)
				f := frameOfSize(sz.n)
				done := make(chan struct{})
				go func() { // the sister: answer every request with a frame of its size
					defer close(done)
					for {
						got, err := sister.ReadFrame()
						if err != nil {
							return
						}
						if err := sister.WriteFrame(got); err != nil {
							return
						}
					}
				}()
				b.SetBytes(int64(2 * sz.n))
				b.ReportAllocs()
				for b.Loop() {
					if err := mother.WriteFrame(f); err != nil {
						b.Fatal(err)
					}
					if _, err := mother.ReadFrame(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				mother.Close()
				sister.Close()
				<-done
			})
		}
	}
}

// linkPair is a loopback TCP connection (127.0.86.1) with a link at each
// end, sealed with p from one shared secret (nil sessions for none).
func linkPair(b *testing.B, p session.Protection) (mother, sister *daemon.Link) {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.86.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	mc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	sc, ok := <-accepted
	if !ok {
		b.Fatal("accept failed")
	}
	var ms, ss *session.Session
	if p != session.None {
		var s0 [session.KeySize]byte
		if _, err := rand.Read(s0[:]); err != nil {
			b.Fatal(err)
		}
		s1 := s0
		if ms, err = session.NewSession(session.RoleInitiator, p, &s0, time.Now(), session.Limits{}, rand.Reader); err != nil {
			b.Fatal(err)
		}
		if ss, err = session.NewSession(session.RoleResponder, p, &s1, time.Now(), session.Limits{}, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
	cfg := daemon.LinkConfig{Channel: audit.ChannelIM, Limit: 1 << 20, WriteTimeout: 10 * time.Second}
	mother, sister = daemon.NewLink(mc, ms, cfg), daemon.NewLink(sc, ss, cfg)
	mother.Start(nil)
	sister.Start(nil)
	return mother, sister
}

// frameOfSize is an IMPoll-typed frame of n bytes in all (the session
// layer does not decode it; the sister echoes it).
func frameOfSize(n int) []byte {
	f := proto.AppendHeader(nil, proto.Header{Version: proto.V2, Type: proto.TypeIMPoll, Length: uint32(n - proto.HeaderSize)})
	return append(f, make([]byte, n-proto.HeaderSize)...)
}

package integration

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// tamperProxy is an on-path attacker between two real daemons on
// loopback. A PING names IP addresses, not ports, and each side checks
// the other's against the TCP connection, so the proxy is transparent to
// every check by construction: it listens on the real peer's own IP at
// another port (the client is configured to dial that port: --server, or
// a node's registered Port), and dials the real peer from the client's
// own IP. Both daemons see exactly the addresses they would without it;
// no check is weakened. It relays whole frames (the 8-byte header gives
// the length of frames and sealed records alike), so an armed attack can
// flip a bit in, replace, drop, replay or inject one.
type tamperProxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu      sync.Mutex
	attacks map[tamperDir]*tamperAttack
	conns   int

	// closed receives one event per relayed connection that ended, with
	// the side that ended it first.
	closed chan tamperDir
}

// tamperDir is a direction of the relay.
type tamperDir int

const (
	toTarget   tamperDir = iota // client (the dialer) to the real peer
	fromTarget                  // the real peer to the client
)

func (d tamperDir) String() string {
	if d == toTarget {
		return "to target"
	}
	return "from target"
}

// tamperAttack changes one frame of a direction: the next frame of type
// typ (session.RecordType for a sealed record). do returns the frames to
// forward in its place (none: dropped) and may answer the sender itself
// with back; past holds the frames of that type relayed before on the
// connection, oldest first.
type tamperAttack struct {
	typ   proto.Type
	do    func(frame []byte, past [][]byte, back func([]byte)) [][]byte
	fired chan struct{}
}

// newTamperProxy listens on ip (the target's IP) at a free port and relays
// to target until the test ends.
func newTamperProxy(t *testing.T, ip, target string) *tamperProxy {
	t.Helper()
	ln, err := net.Listen("tcp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tamperProxy{t: t, ln: ln, target: target, attacks: map[tamperDir]*tamperAttack{}, closed: make(chan tamperDir, 64)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.relay(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	return p
}

// port is the proxy's port.
func (p *tamperProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// addr is the proxy's address.
func (p *tamperProxy) addr() string { return p.ln.Addr().String() }

// arm sets the attack on the next frame of type typ in direction d and
// returns a channel closed once it has been carried out.
func (p *tamperProxy) arm(d tamperDir, typ proto.Type, do func(frame []byte, past [][]byte, back func([]byte)) [][]byte) <-chan struct{} {
	a := &tamperAttack{typ: typ, do: do, fired: make(chan struct{})}
	p.mu.Lock()
	p.attacks[d] = a
	p.mu.Unlock()
	return a.fired
}

// take returns the armed attack of d on frames of type typ, once.
func (p *tamperProxy) take(d tamperDir, typ proto.Type) *tamperAttack {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.attacks[d]
	if a == nil || a.typ != typ {
		return nil
	}
	delete(p.attacks, d)
	return a
}

// relay serves one client connection: dial the target from the client's
// IP, then copy frames both ways through the armed attacks.
func (p *tamperProxy) relay(client net.Conn) {
	defer client.Close()
	host, _, _ := net.SplitHostPort(client.RemoteAddr().String())
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(host)}}
	server, err := d.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	p.mu.Lock()
	p.conns++
	p.mu.Unlock()
	var wmu [2]sync.Mutex // one writer at a time on each end
	write := func(to net.Conn, m *sync.Mutex, b []byte) {
		m.Lock()
		defer m.Unlock()
		_, _ = to.Write(b)
	}
	ended := make(chan tamperDir, 2)
	pipe := func(dir tamperDir, from, to net.Conn, toMu, backMu *sync.Mutex) {
		past := map[proto.Type][][]byte{} // by type: a replay copies a frame of its kind
		defer func() { ended <- dir }()
		for {
			var hdr [proto.HeaderSize]byte
			if _, err := io.ReadFull(from, hdr[:]); err != nil {
				return
			}
			n := binary.BigEndian.Uint32(hdr[4:])
			if n > session.MaxRecordSize {
				return
			}
			f := make([]byte, proto.HeaderSize+int(n))
			copy(f, hdr[:])
			if _, err := io.ReadFull(from, f[proto.HeaderSize:]); err != nil {
				return
			}
			typ := proto.Type(f[3])
			out := [][]byte{f}
			if a := p.take(dir, typ); a != nil {
				out = a.do(f, past[typ], func(b []byte) { write(from, backMu, b) })
				close(a.fired)
			}
			past[typ] = append(past[typ], f)
			if len(past[typ]) > 16 {
				past[typ] = past[typ][1:]
			}
			for _, o := range out {
				write(to, toMu, o)
			}
		}
	}
	go pipe(toTarget, client, server, &wmu[1], &wmu[0])
	go pipe(fromTarget, server, client, &wmu[0], &wmu[1])
	first := <-ended
	// A direction ended: its reader's peer closed (or failed); the other
	// side sees the close as a TCP proxy would pass it on.
	client.Close()
	server.Close()
	<-ended
	// The direction that ended first names who closed: fromTarget means
	// the target closed its end.
	select {
	case p.closed <- first:
	default:
	}
}

// Attacks.

// flipBit flips one bit of the frame's payload.
func flipBit(f []byte, _ [][]byte, _ func([]byte)) [][]byte {
	c := bytes.Clone(f)
	c[len(c)/2] ^= 0x10
	return [][]byte{c}
}

// dropFrame drops the frame.
func dropFrame([]byte, [][]byte, func([]byte)) [][]byte { return nil }

// replayPrevious forwards the frame, then a copy of the one before it.
func replayPrevious(f []byte, past [][]byte, _ func([]byte)) [][]byte {
	if len(past) == 0 {
		return [][]byte{f, bytes.Clone(f)}
	}
	return [][]byte{f, bytes.Clone(past[len(past)-1])}
}

// injectBefore forwards forged, then the frame: an attacker's frame spliced
// into the stream.
func injectBefore(forged []byte) func([]byte, [][]byte, func([]byte)) [][]byte {
	return func(f []byte, _ [][]byte, _ func([]byte)) [][]byte { return [][]byte{forged, f} }
}

// stripWelcomeTrailer cuts the Welcome's session trailer, as an attacker
// would to make the MOM believe the server does not speak sealed sessions.
func stripWelcomeTrailer(f []byte, _ [][]byte, _ func([]byte)) [][]byte {
	if len(f) < proto.HeaderSize+proto.WelcomeSessionSize {
		return [][]byte{f}
	}
	c := bytes.Clone(f[:len(f)-proto.WelcomeSessionSize])
	binary.BigEndian.PutUint32(c[4:], uint32(len(c)-proto.HeaderSize))
	return [][]byte{c}
}

// answerUnknownFrame drops the frame and answers its sender with the
// Reject a peer that does not speak sealed sessions sends to a
// SessionPing (code 1), forged: it carries no authentication.
func answerUnknownFrame(_ []byte, _ [][]byte, back func([]byte)) [][]byte {
	back(proto.Marshal(&proto.Reject{Code: proto.RejectMalformed, Reason: "SessionPing frame of 192 bytes where a Ping was due: malformed ping"}))
	return nil
}

// waitFired waits for an armed attack to be carried out.
func waitFired(t *testing.T, what string, fired <-chan struct{}) {
	t.Helper()
	select {
	case <-fired:
	case <-time.After(30 * time.Second):
		t.Fatalf("attack %s never found its frame", what)
	}
}

// atPort returns ip:port.
func atPort(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

package integration

// Helpers of the attack suite (attack_test.go): an insider who stole a
// MOM's cluster key and crafts, captures and replays PINGs from a chosen
// 127.0.0.N source; raw frame senders; counter and audit-log readers.

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/daemon"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/ping"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/session"
)

// newClusterWith is newCluster with extra flags for the server.
func newClusterWith(t *testing.T, serverFlags []string, momIPs ...string) *cluster {
	t.Helper()
	return newClusterEnv(t, nil, serverFlags, momIPs...)
}

// newClusterEnv is newCluster with extra environment variables and flags
// for the server.
func newClusterEnv(t *testing.T, env, serverFlags []string, momIPs ...string) *cluster {
	t.Helper()
	dir := t.TempDir()
	c := &cluster{t: t, dir: dir, srvDir: filepath.Join(dir, "server"), moms: map[string]*momProc{}}
	if r := run(t, "", "momgate-server", "init", "--state-dir", c.srvDir); r.code != 0 {
		t.Fatalf("server init: %s", r.stderr)
	}
	c.srvAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	c.imPort = freePort(t, append([]string{"127.0.0.1"}, momIPs...)...)
	args := append([]string{"momgate-server", "run", "--state-dir", c.srvDir, "--listen", c.srvAddr, "--log-level", "debug"}, serverFlags...)
	c.server = startEnv(t, "server", env, args...)
	waitFor(t, "server admin socket", 20*time.Second, func() bool {
		return run(t, "", "momgate-qmgr", "--state-dir", c.srvDir, "-c", "list node").code == 0
	})
	if r := c.qmgr("set server heartbeat=200ms"); r.code != 0 {
		t.Fatalf("set heartbeat: %s", r.stderr)
	}
	return c
}

// startMomWith is startMom with extra daemon flags.
func (c *cluster) startMomWith(name, ip, token string, extra ...string) *momProc {
	c.t.Helper()
	return c.startMomVia(name, ip, token, c.srvAddr, extra...)
}

// addMomWith creates, enrolls and starts a MOM with extra flags.
func (c *cluster) addMomWith(name, ip string, extra ...string) *momProc {
	c.t.Helper()
	m := c.startMomWith(name, ip, c.createNode(name, ip), extra...)
	c.waitUp(name)
	return m
}

// requirePeersUnchanged fails if m's admitted-peers table differs from
// before: nothing was admitted, not even a repeat admission.
func (c *cluster) requirePeersUnchanged(t *testing.T, m *momProc, before []peer) {
	t.Helper()
	if after := c.peers(m); !reflect.DeepEqual(after, before) {
		t.Fatalf("%s admitted something: peers before %+v, after %+v", m.name, before, after)
	}
}

// counters are a daemon's admission counters.
type counters struct {
	Accepted uint64            `json:"accepted"`
	Rejected map[string]uint64 `json:"rejected"`
}

func (c *cluster) momCounters(m *momProc) counters {
	c.t.Helper()
	st := c.status(m)
	return counters{Accepted: st.Audit.Accepted, Rejected: st.Audit.Rejected}
}

func (c *cluster) serverCounters() counters {
	c.t.Helper()
	r := c.qmgr("--json", "-c", "print server")
	if r.code != 0 {
		c.t.Fatalf("print server: %s", r.stderr)
	}
	var rep struct {
		Server struct {
			Audit *counters `json:"audit"`
		} `json:"server"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Server.Audit == nil {
		c.t.Fatalf("print server --json: no audit counters (%v) in %q", err, r.stdout)
	}
	return *rep.Server.Audit
}

// waitRejected waits until get() counts want more rejections for reason
// than base does, then checks it is not more than that: every attack is
// refused exactly once, under exactly that reason.
func waitRejected(t *testing.T, what string, get func() counters, base counters, reason string, want uint64) {
	t.Helper()
	var now counters
	waitFor(t, fmt.Sprintf("%s: %d more %q rejections", what, want, reason), 30*time.Second, func() bool {
		now = get()
		return now.Rejected[reason]-base.Rejected[reason] >= want
	})
	if got := now.Rejected[reason] - base.Rejected[reason]; got != want {
		t.Fatalf("%s: %d more %q rejections, want exactly %d (counters %v)", what, got, reason, want, now.Rejected)
	}
}

// auditLine is one parsed line of a text audit log.
type auditLine map[string]string

var logfmtField = regexp.MustCompile(`(\w+)=("(?:[^"\\]|\\.)*"|\S*)`)

func readAudit(t *testing.T, path string) []auditLine {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []auditLine
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" {
			continue
		}
		l := auditLine{}
		for _, m := range logfmtField.FindAllStringSubmatch(line, -1) {
			v := m[2]
			if strings.HasPrefix(v, `"`) {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
			}
			l[m[1]] = v
		}
		out = append(out, l)
	}
	return out
}

// auditMark is the number of lines in the audit log at path now; waitAudit
// looks only at lines after it.
func auditMark(t *testing.T, path string) int {
	t.Helper()
	return len(readAudit(t, path))
}

// waitAudit waits for a rejected line after mark with this reason, from
// peer IP ip, whose detail contains detail, and returns it.
func waitAudit(t *testing.T, path string, mark int, reason, ip, detail string) auditLine {
	t.Helper()
	var found auditLine
	waitFor(t, fmt.Sprintf("audit line reason=%s peer=%s detail~%q in %s", reason, ip, detail, path), 30*time.Second, func() bool {
		lines := readAudit(t, path)
		if mark > len(lines) {
			mark = 0 // the log was replaced
		}
		for _, l := range lines[mark:] {
			if l["outcome"] == "rejected" && l["reason"] == reason && strings.HasPrefix(l["peer"], ip+":") &&
				strings.Contains(l["detail"], detail) {
				found = l
				return true
			}
		}
		return false
	})
	return found
}

// waitAuditFlood is waitAudit for a source that floods: past its audit
// burst the log writes one aggregate line per source instead of a line per
// rejection ("N more from IP suppressed", reasons "closed:20,rate_limited:20"),
// so either form shows the reason.
func waitAuditFlood(t *testing.T, path string, mark int, reason, ip, detail string) {
	t.Helper()
	waitFor(t, fmt.Sprintf("audit line or aggregate with reason %s from %s in %s", reason, ip, path), 30*time.Second, func() bool {
		lines := readAudit(t, path)
		if mark > len(lines) {
			mark = 0
		}
		for _, l := range lines[mark:] {
			if l["outcome"] == "rejected" && l["reason"] == reason && strings.HasPrefix(l["peer"], ip+":") &&
				strings.Contains(l["detail"], detail) {
				return true
			}
			if l["peer"] == ip && strings.Contains(","+l["reasons"], ","+reason+":") {
				return true
			}
		}
		return false
	})
}

func (m *momProc) auditPath() string   { return filepath.Join(m.dir, "audit.log") }
func (c *cluster) serverAudit() string { return filepath.Join(c.srvDir, "audit.log") }

// insider is an attacker holding a stolen copy of a MOM's key material:
// the cluster keyring and the MOM's node id.
type insider struct {
	t      *testing.T
	ring   *keys.Keyring
	sealer *ping.Sealer
}

// stealKeys reads m's keyring and node id, as an insider would.
func stealKeys(t *testing.T, m *momProc) *insider {
	t.Helper()
	ring, err := keystore.LoadKeyring(filepath.Join(m.dir, "keyring.json"))
	if err != nil {
		t.Fatal(err)
	}
	return &insider{t: t, ring: ring, sealer: forger(t, m, ring)}
}

// withRing returns an insider sealing under ring instead (a wrong key).
func (in *insider) withRing(ring *keys.Keyring) *insider {
	s := *in.sealer
	s.Keys = keys.NewHolder(ring)
	return &insider{t: in.t, ring: ring, sealer: &s}
}

// foreignRing is a keyring of another cluster: a key id this cluster never
// issued.
func foreignRing(t *testing.T) *keys.Keyring {
	t.Helper()
	k, err := keys.NewKey(rand.Reader, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k.State = keys.StateActive
	r, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// guessedSecretRing has the cluster's active key id with a wrong secret.
func guessedSecretRing(t *testing.T, real *keys.Keyring) *keys.Keyring {
	t.Helper()
	k := &keys.Key{ID: real.Active().ID, State: keys.StateActive, Created: time.Now()}
	if _, err := rand.Read(k.Secret[:]); err != nil {
		t.Fatal(err)
	}
	r, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// capture is a sealed SessionPing kept for later replay: what a thief of
// the cluster key seals as a MOM that speaks sealed sessions does (a
// plain Ping of such a node is refused as a downgrade before anything
// else is judged).
type capture struct {
	frame []byte
	rnd   [ping.RandomSize]byte
}

// sessionPing seals a SessionPing from sender to dest offering a session
// on ch (IM: every protection; control: encrypt, as a MOM must).
func sessionPing(s *ping.Sealer, ch session.Channel, sender, dest proto.Addr) ([]byte, [ping.RandomSize]byte, error) {
	cfg := session.Config{Channel: ch, Min: session.None, Rand: rand.Reader}
	if ch == session.ChannelControl {
		cfg.Binding, cfg.ExpectNode = &session.Binding{}, proto.NodeID{1} // unused by the ping itself
	}
	in, err := session.NewInitiator(cfg)
	if err != nil {
		return nil, [ping.RandomSize]byte{}, err
	}
	f, err := in.AppendPing(nil, s, sender, dest)
	return f, in.Random(), err
}

// readSessionReply reads the answer to a SessionPing whose random bytes
// were echo: nil for a SessionReply that opens under v's keys and echoes
// them, a *handshake.RejectError for a Reject.
func readSessionReply(c net.Conn, v *ping.Verifier, echo [ping.RandomSize]byte) error {
	remote, local, err := daemon.Endpoints(c)
	if err != nil {
		return err
	}
	frame, err := proto.ReadFrameLimit(c, nil, 4096)
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	if m, err := proto.Unmarshal(frame); err == nil {
		if rj, ok := m.(*proto.Reject); ok {
			return handshake.PeerRejected(rj)
		}
	}
	var res ping.Result
	var ext session.Ext
	return v.VerifyReplyExt(frame, remote, local, &echo, &res, &ext)
}

// seal makes a SessionPing (IM) from sender to dest (IP addresses).
func (in *insider) seal(sender, dest string) capture {
	in.t.Helper()
	return in.sealWith(in.sealer, session.ChannelIM, sender, dest)
}

// sealControl makes the SessionPing of a control connection.
func (in *insider) sealControl(sender, dest string) capture {
	in.t.Helper()
	return in.sealWith(in.sealer, session.ChannelControl, sender, dest)
}

func (in *insider) sealWith(s *ping.Sealer, ch session.Channel, sender, dest string) capture {
	in.t.Helper()
	f, rnd, err := sessionPing(s, ch, mustAddr(sender), mustAddr(dest))
	if err != nil {
		in.t.Fatal(err)
	}
	return capture{frame: f, rnd: rnd}
}

// sealAged makes a Ping from sender to dest stamped age before now, as a
// capture made that long ago would be.
func (in *insider) sealAged(sender, dest string, age time.Duration) capture {
	in.t.Helper()
	st, err := ping.NewStamper(func() time.Time { return time.Now().Add(-age) }, &ping.MemCeiling{}, 0)
	if err != nil {
		in.t.Fatal(err)
	}
	s := *in.sealer
	s.Stamper = st
	return in.sealWith(&s, session.ChannelIM, sender, dest)
}

// sealReply makes a SessionReply from sender to dest echoing echo (its
// answer is never reached: the PING checks refuse it first).
func (in *insider) sealReply(sender, dest string, echo [ping.RandomSize]byte) []byte {
	in.t.Helper()
	var ext session.Ext
	var sent ping.Result
	f, err := in.sealer.ReplyExt(nil, mustAddr(sender), mustAddr(dest), echo, &ext, &sent)
	if err != nil {
		in.t.Fatal(err)
	}
	return f
}

// dialFrom connects to target from the IP local.
func dialFrom(t *testing.T, local, target string) *net.TCPConn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", target)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", target, local, err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// deliver sends the captured Ping to target from local and reads the
// answer: nil for a PingReply that opens under the insider's keys and
// echoes the capture, a *handshake.RejectError for a Reject, another error if
// the connection failed. It does not touch the test, so goroutines may
// call it.
func (in *insider) deliver(local, target string, cp capture) error {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", target)
	if err != nil {
		return fmt.Errorf("dial %s from %s: %w", target, local, err)
	}
	defer c.Close()
	if _, err := c.Write(cp.frame); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	v := &ping.Verifier{Keys: keys.NewHolder(in.ring), Guard: ping.NewGuard(ping.GuardConfig{Freshness: 0}, nil), Now: time.Now}
	return readSessionReply(c, v, cp.rnd)
}

// wantReject fails unless err is a Reject with code.
func wantReject(t *testing.T, what string, err error, code proto.RejectCode) {
	t.Helper()
	var rj *handshake.RejectError
	if !errors.As(err, &rj) {
		t.Fatalf("%s: want Reject code %d, got %v", what, code, err)
	}
	if rj.Code != code {
		t.Fatalf("%s: Reject code %d (%s), want %d", what, rj.Code, rj.Reason, code)
	}
}

// readReject reads frames until a Reject (skipping a ServerHello) or the
// end of the connection; it returns the Reject, or nil and the read error.
func readReject(c net.Conn) (*proto.Reject, error) {
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for range 4 {
		frame, err := proto.ReadFrameLimit(c, nil, 1<<20)
		if err != nil {
			return nil, err
		}
		msg, err := proto.Unmarshal(frame)
		if err != nil {
			return nil, err
		}
		if rj, ok := msg.(*proto.Reject); ok {
			return rj, nil
		}
	}
	return nil, errors.New("no Reject in the first frames")
}

// waitClosed reads from c until the peer closes it (EOF or reset), with a
// deadline, and returns what it read.
func waitClosed(t *testing.T, c net.Conn, within time.Duration) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	data, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s (read %d bytes)", within, len(data))
	}
	return data
}

// sendHello plays a MOM returning as node id with identity ident: it reads
// the ServerHello and sends Hello; it returns the connection for the
// caller to read the answer.
func sendHello(t *testing.T, local, server string, node proto.NodeID, ident *keys.Identity) net.Conn {
	t.Helper()
	c := dialFrom(t, local, server)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	frame, err := proto.ReadFrameLimit(c, nil, 4096)
	if err != nil {
		t.Fatalf("read server hello: %v", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		t.Fatal(err)
	}
	sh, ok := msg.(*proto.ServerHello)
	if !ok {
		t.Fatalf("first frame %s, want ServerHello", msg.Type())
	}
	// As a MOM of today: it speaks sealed sessions (a node that proved it
	// does is refused a hello without the capability).
	proof := proto.HelloProof{Challenge: sh.Challenge, IMPort: 1, Versions: proto.VersionBitV2 | proto.VersionBitSessions}
	h := &proto.Hello{NodeID: node}
	if _, err := rand.Read(h.Nonce[:]); err != nil {
		t.Fatal(err)
	}
	h.Sealed = box.Seal(nil, proof.Marshal(), &h.Nonce, &sh.ServerKey, &ident.Private)
	if err := proto.WriteFrame(c, h); err != nil {
		t.Fatal(err)
	}
	return c
}

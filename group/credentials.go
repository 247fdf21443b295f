package group

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"
)

// ALPN protocol names on a member's replication port. One port carries
// both; the client's ALPN offer decides whether it must show a member
// certificate.
const (
	// ALPNRaft is member-to-member replication: both ends show a member
	// certificate of the group.
	ALPNRaft = "momgate-raft/1"
	// ALPNJoin is a joiner redeeming a join token: only the member shows a
	// certificate, and the joiner checks it against the token's pin.
	ALPNJoin = "momgate-join/1"
)

// ErrNoALPN means a peer offered no protocol this port speaks.
var ErrNoALPN = errors.New("peer offered no momgate protocol")

// Credentials make the TLS configurations of one member: its certificate,
// minted under the group CA and renewed at half its lifetime, and the
// verification of peers against the CA. Safe for concurrent use.
type Credentials struct {
	ca     *CA
	member string
	now    func() time.Time
	rnd    io.Reader
	allow  func(member string) error

	mu     sync.Mutex
	cert   *tls.Certificate
	minted time.Time
}

// CredentialsConfig configures NewCredentials.
type CredentialsConfig struct {
	CA     *CA
	Member string           // this member's name, certified in its leaf
	Now    func() time.Time // clock for minting and verifying
	Rand   io.Reader        // randomness for keys and serials
	// Allow, if set, is asked after a peer's chain verifies; an error
	// refuses the peer (for example a name that is not a current member).
	Allow func(member string) error
}

// NewCredentials checks cfg and returns the member's credentials; the
// first certificate is minted at once so that a bad CA fails here.
func NewCredentials(cfg CredentialsConfig) (*Credentials, error) {
	if cfg.CA == nil || cfg.Now == nil || cfg.Rand == nil {
		return nil, errors.New("group credentials: CA, Now and Rand are required")
	}
	if err := checkMemberName(cfg.Member); err != nil {
		return nil, fmt.Errorf("group credentials: %w", err)
	}
	c := &Credentials{ca: cfg.CA, member: cfg.Member, now: cfg.Now, rnd: cfg.Rand, allow: cfg.Allow}
	if _, err := c.certificate(); err != nil {
		return nil, err
	}
	return c, nil
}

// certificate returns the current member certificate, minting a new one
// once half of the old one's lifetime has passed.
func (c *Credentials) certificate() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.cert != nil && now.Sub(c.minted) < MemberCertLifetime/2 && !now.Before(c.minted) {
		return c.cert, nil
	}
	cert, err := c.ca.IssueMember(c.rnd, now, c.member, MemberCertLifetime)
	if err != nil {
		return nil, err
	}
	c.cert, c.minted = cert, now
	return cert, nil
}

// verifyMember checks a member peer's connection state.
func (c *Credentials) verifyMember(cs tls.ConnectionState) error {
	raw := make([][]byte, len(cs.PeerCertificates))
	for i, pc := range cs.PeerCertificates {
		raw[i] = pc.Raw
	}
	name, err := c.ca.VerifyPeer(raw, c.now())
	if err != nil {
		return err
	}
	if c.allow != nil {
		if err := c.allow(name); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrNotMember, name, err)
		}
	}
	return nil
}

func baseConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, SessionTicketsDisabled: true}
}

// ServerConfig is the listener's configuration. A client offering
// ALPNRaft must show a member certificate of the group; a client offering
// only ALPNJoin shows none (it authenticates with its token's secret inside
// the channel); any other offer is refused.
func (c *Credentials) ServerConfig() *tls.Config {
	cfg := baseConfig()
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		cert, err := c.certificate()
		if err != nil {
			return nil, err
		}
		out := baseConfig()
		out.Certificates = []tls.Certificate{*cert}
		switch {
		case slices.Contains(hello.SupportedProtos, ALPNRaft):
			out.NextProtos = []string{ALPNRaft}
			out.ClientAuth = tls.RequireAnyClientCert
			out.VerifyConnection = c.verifyMember
		case slices.Contains(hello.SupportedProtos, ALPNJoin):
			out.NextProtos = []string{ALPNJoin}
			out.ClientAuth = tls.NoClientCert
		default:
			return nil, ErrNoALPN
		}
		return out, nil
	}
	return cfg
}

// ClientConfig is the configuration for dialling another member: it shows
// this member's certificate and accepts only a server whose chain leads to
// the group CA. Host names are not checked: the CA, not the address, says
// who is a member.
func (c *Credentials) ClientConfig() *tls.Config {
	cfg := baseConfig()
	cfg.NextProtos = []string{ALPNRaft}
	cfg.InsecureSkipVerify = true // replaced by VerifyConnection against the group CA
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return c.certificate()
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol != ALPNRaft {
			return fmt.Errorf("%w: server chose protocol %q", ErrNoALPN, cs.NegotiatedProtocol)
		}
		return c.verifyMember(cs)
	}
	return cfg
}

// JoinClientConfig is the joiner's configuration: no certificate of its
// own, and the member it dials must chain to the CA whose fingerprint the
// join token pins. groupCA, if not nil, receives the CA public key seen.
func JoinClientConfig(pin [32]byte, now func() time.Time, groupCA *[]byte) *tls.Config {
	cfg := baseConfig()
	cfg.NextProtos = []string{ALPNJoin}
	cfg.InsecureSkipVerify = true // replaced by VerifyConnection against the pin
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if cs.NegotiatedProtocol != ALPNJoin {
			return fmt.Errorf("%w: server chose protocol %q", ErrNoALPN, cs.NegotiatedProtocol)
		}
		raw := make([][]byte, len(cs.PeerCertificates))
		for i, pc := range cs.PeerCertificates {
			raw[i] = pc.Raw
		}
		_, pub, err := VerifyPinned(raw, pin, now())
		if err == nil && groupCA != nil {
			*groupCA = pub
		}
		return err
	}
	return cfg
}

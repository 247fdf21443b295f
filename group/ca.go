package group

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"time"

	"github.com/momgate/momgate/strictjson"
)

// CA errors.
var (
	// ErrNotMember means a peer's certificate chain does not lead to the
	// group CA: it is not a member of this group.
	ErrNotMember = errors.New("peer is not a member of this group")
	// ErrInvalidCAFile means a group CA file does not decode.
	ErrInvalidCAFile = errors.New("invalid group CA file")
)

// Lifetimes of the group's certificates.
const (
	caLifetime = 100 * 365 * 24 * time.Hour
	// MemberCertLifetime is how long a member certificate is valid; a
	// member mints a fresh one, under the CA key it holds, at half of it.
	MemberCertLifetime = 7 * 24 * time.Hour
	// clockSkew is how far a member's clock may be behind the one that
	// minted a certificate it is shown.
	clockSkew = time.Hour
)

// CA is the group's certificate authority: an Ed25519 key that only
// members hold (cloned at join with the group identity) and its
// self-signed certificate. Replication traffic is TLS 1.3 between member
// certificates it signed, so holding the key is what membership means on
// the wire.
type CA struct {
	key  ed25519.PrivateKey
	cert *x509.Certificate
}

// NewCA makes the CA of a new group named by groupID (the server id).
func NewCA(rnd io.Reader, now time.Time, groupID string) (*CA, error) {
	pub, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("generate group CA key: %w", err)
	}
	serial, err := randomSerial(rnd)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "momgate group " + groupID},
		NotBefore:             now.Add(-clockSkew).UTC().Truncate(time.Second),
		NotAfter:              now.Add(caLifetime).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rnd, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("self-sign group CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse group CA: %w", err)
	}
	return &CA{key: priv, cert: cert}, nil
}

func randomSerial(rnd io.Reader) (*big.Int, error) {
	var b [16]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return nil, fmt.Errorf("certificate serial: %w", err)
	}
	b[0] &= 0x7f
	b[0] |= 0x01 // positive and never zero
	return new(big.Int).SetBytes(b[:]), nil
}

// Public is the CA's Ed25519 public key: what a join token pins.
func (ca *CA) Public() []byte { return bytes.Clone(ca.cert.PublicKey.(ed25519.PublicKey)) }

// Fingerprint is SHA-256 of Public.
func (ca *CA) Fingerprint() [32]byte { return sha256.Sum256(ca.Public()) }

// IssueMember mints a certificate for member valid from now for lifetime,
// with a fresh Ed25519 key, chained to the CA (the chain carries the CA
// certificate, so a joiner that has only the pinned fingerprint can check
// it).
func (ca *CA) IssueMember(rnd io.Reader, now time.Time, member string, lifetime time.Duration) (*tls.Certificate, error) {
	if err := checkMemberName(member); err != nil {
		return nil, fmt.Errorf("member certificate: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rnd)
	if err != nil {
		return nil, fmt.Errorf("member certificate key: %w", err)
	}
	serial, err := randomSerial(rnd)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: member},
		NotBefore:    now.Add(-clockSkew).UTC().Truncate(time.Second),
		NotAfter:     now.Add(lifetime).UTC().Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rnd, tmpl, ca.cert, pub, ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign member certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse member certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: priv, Leaf: leaf}, nil
}

// VerifyPeer checks a peer's chain (leaf first, as TLS delivers it) against
// the CA at now and returns the member name the leaf certifies. Any failure
// wraps ErrNotMember.
func (ca *CA) VerifyPeer(rawCerts [][]byte, now time.Time) (string, error) {
	return verifyLeaf(rawCerts, ca.cert, now)
}

// VerifyPinned is VerifyPeer for a joiner, which holds only the CA
// fingerprint its token pins: the chain must carry a self-signed CA
// certificate whose key has that fingerprint, and the leaf must chain to
// it. It returns the member name and the CA's public key.
func VerifyPinned(rawCerts [][]byte, pin [32]byte, now time.Time) (string, []byte, error) {
	if len(rawCerts) != 2 {
		return "", nil, fmt.Errorf("%w: chain of %d certificates, want member and CA", ErrNotMember, len(rawCerts))
	}
	caCert, err := x509.ParseCertificate(rawCerts[1])
	if err != nil {
		return "", nil, fmt.Errorf("%w: CA certificate: %v", ErrNotMember, err)
	}
	pub, ok := caCert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return "", nil, fmt.Errorf("%w: CA key is not Ed25519", ErrNotMember)
	}
	fp := sha256.Sum256(pub)
	if subtle.ConstantTimeCompare(fp[:], pin[:]) != 1 {
		return "", nil, fmt.Errorf("%w: %w", ErrNotMember, ErrGroupMismatch)
	}
	if err := caCert.CheckSignatureFrom(caCert); err != nil || !caCert.IsCA {
		return "", nil, fmt.Errorf("%w: CA certificate is not a self-signed CA", ErrNotMember)
	}
	member, err := verifyLeaf(rawCerts[:1], caCert, now)
	if err != nil {
		return "", nil, err
	}
	return member, bytes.Clone(pub), nil
}

func verifyLeaf(rawCerts [][]byte, root *x509.Certificate, now time.Time) (string, error) {
	if len(rawCerts) == 0 {
		return "", fmt.Errorf("%w: no certificate", ErrNotMember)
	}
	leaf, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotMember, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(root)
	_, err = leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotMember, err)
	}
	if err := checkMemberName(leaf.Subject.CommonName); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNotMember, err)
	}
	return leaf.Subject.CommonName, nil
}

type caJSON struct {
	Format int    `json:"format"`
	Key    string `json:"key"`  // Ed25519 seed, standard base64
	Cert   string `json:"cert"` // DER, standard base64
}

// EncodeCA encodes the CA, private key included, as the group-ca.json
// file (to be written owner-only).
func EncodeCA(ca *CA) ([]byte, error) {
	return json.MarshalIndent(caJSON{Format: 1,
		Key:  base64.StdEncoding.EncodeToString(ca.key.Seed()),
		Cert: base64.StdEncoding.EncodeToString(ca.cert.Raw)}, "", "  ")
}

// DecodeCA strictly decodes a group CA file and checks that the
// certificate is a self-signed CA for the private key. Errors wrap
// ErrInvalidCAFile.
func DecodeCA(data []byte) (*CA, error) {
	var j caJSON
	if err := strictjson.Decode(data, &j); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidCAFile, err)
	}
	if j.Format != 1 {
		return nil, fmt.Errorf("%w: format %d, want 1", ErrInvalidCAFile, j.Format)
	}
	seed, err := base64.StdEncoding.Strict().DecodeString(j.Key)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: key: want %d bytes of standard base64", ErrInvalidCAFile, ed25519.SeedSize)
	}
	der, err := base64.StdEncoding.Strict().DecodeString(j.Cert)
	if err != nil {
		return nil, fmt.Errorf("%w: cert: not standard base64", ErrInvalidCAFile)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: cert: %v", ErrInvalidCAFile, err)
	}
	key := ed25519.NewKeyFromSeed(seed)
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok || !pub.Equal(key.Public()) {
		return nil, fmt.Errorf("%w: certificate is not for the private key", ErrInvalidCAFile)
	}
	if !cert.IsCA || cert.CheckSignatureFrom(cert) != nil {
		return nil, fmt.Errorf("%w: certificate is not a self-signed CA", ErrInvalidCAFile)
	}
	return &CA{key: key, cert: cert}, nil
}

package group

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestMemberCertificateVerifies(t *testing.T) {
	ca := testCA(t, 1)
	cert, err := ca.IssueMember(&countingRand{n: 7}, t0, "s1", MemberCertLifetime)
	if err != nil {
		t.Fatal(err)
	}
	if len(cert.Certificate) != 2 {
		t.Fatalf("chain of %d certificates, want member and CA", len(cert.Certificate))
	}
	name, err := ca.VerifyPeer(cert.Certificate, t0.Add(time.Minute))
	if err != nil || name != "s1" {
		t.Fatalf("VerifyPeer = %q, %v", name, err)
	}
	// Within the skew allowance a clock behind the minter's still accepts it.
	if _, err := ca.VerifyPeer(cert.Certificate, t0.Add(-30*time.Minute)); err != nil {
		t.Fatalf("a clock 30m behind: %v", err)
	}
	if _, err := ca.VerifyPeer(cert.Certificate, t0.Add(MemberCertLifetime+time.Second)); !errors.Is(err, ErrNotMember) {
		t.Fatalf("expired certificate: %v", err)
	}
	other := testCA(t, 99)
	if _, err := other.VerifyPeer(cert.Certificate, t0); !errors.Is(err, ErrNotMember) {
		t.Fatalf("another group's CA accepted the member: %v", err)
	}
	if _, err := ca.VerifyPeer(nil, t0); !errors.Is(err, ErrNotMember) {
		t.Fatalf("no certificate: %v", err)
	}
	if _, err := ca.IssueMember(&countingRand{}, t0, "bad name", time.Hour); err == nil {
		t.Fatal("issued a certificate for an invalid member name")
	}
}

func TestVerifyPinned(t *testing.T) {
	ca := testCA(t, 1)
	cert, err := ca.IssueMember(&countingRand{n: 7}, t0, "s1", MemberCertLifetime)
	if err != nil {
		t.Fatal(err)
	}
	name, pub, err := VerifyPinned(cert.Certificate, ca.Fingerprint(), t0)
	if err != nil || name != "s1" || string(pub) != string(ca.Public()) {
		t.Fatalf("VerifyPinned = %q, %v", name, err)
	}
	if _, _, err := VerifyPinned(cert.Certificate, testCA(t, 99).Fingerprint(), t0); !errors.Is(err, ErrGroupMismatch) {
		t.Fatalf("wrong pin: %v", err)
	}
	// A member of another group that appends the pinned CA's certificate
	// does not chain to it.
	other := testCA(t, 99)
	foreign, err := other.IssueMember(&countingRand{n: 9}, t0, "s1", MemberCertLifetime)
	if err != nil {
		t.Fatal(err)
	}
	spliced := [][]byte{foreign.Certificate[0], cert.Certificate[1]}
	if _, _, err := VerifyPinned(spliced, ca.Fingerprint(), t0); !errors.Is(err, ErrNotMember) {
		t.Fatalf("spliced chain: %v", err)
	}
	if _, _, err := VerifyPinned(cert.Certificate[:1], ca.Fingerprint(), t0); !errors.Is(err, ErrNotMember) {
		t.Fatalf("chain without the CA: %v", err)
	}
}

func TestCAFileRoundTrip(t *testing.T) {
	ca := testCA(t, 1)
	data, err := EncodeCA(ca)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeCA(data)
	if err != nil {
		t.Fatal(err)
	}
	if back.Fingerprint() != ca.Fingerprint() {
		t.Fatal("fingerprint changed in the round trip")
	}
	// The decoded CA signs members the original accepts.
	cert, err := back.IssueMember(&countingRand{n: 3}, t0, "s2", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ca.VerifyPeer(cert.Certificate, t0); err != nil {
		t.Fatalf("member signed by the decoded CA: %v", err)
	}
	otherData, _ := EncodeCA(testCA(t, 99))
	for name, bad := range map[string]string{
		"unknown field":   strings.Replace(string(data), `"format": 1`, `"format": 1, "x": 1`, 1),
		"format 2":        strings.Replace(string(data), `"format": 1`, `"format": 2`, 1),
		"key of another":  string(otherData[:strings.Index(string(otherData), `"cert"`)]) + string(data[strings.Index(string(data), `"cert"`):]),
		"trailing brace":  string(data) + "}",
		"empty":           "",
		"short key":       `{"format":1,"key":"AAAA","cert":""}`,
		"cert not base64": `{"format":1,"key":"` + strings.Repeat("A", 43) + `=","cert":"!"}`,
	} {
		if _, err := DecodeCA([]byte(bad)); !errors.Is(err, ErrInvalidCAFile) {
			t.Errorf("%s: %v, want ErrInvalidCAFile", name, err)
		}
	}
}

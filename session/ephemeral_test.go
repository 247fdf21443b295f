package session

import (
	"testing"
)

// TestWipeECDHKey: erasing an ephemeral overwrites the private scalar
// inside crypto/ecdh's key, not only the package's references to it.
func TestWipeECDHKey(t *testing.T) {
	e, err := newEphemeral(&countingRand{n: 5})
	if err != nil {
		t.Fatal(err)
	}
	k := e.key
	if isZero((*[32]byte)(k.Bytes())) {
		t.Fatal("private key is zero before the wipe")
	}
	e.zero()
	if e.key != nil {
		t.Fatal("ephemeral keeps its key after zero")
	}
	if b := k.Bytes(); !isZero((*[32]byte)(b)) {
		t.Fatalf("crypto/ecdh key still holds %x after the wipe (has crypto/ecdh.PrivateKey changed its layout?)", b)
	}
	if _, err := e.shared(&e.pub); err == nil {
		t.Fatal("an erased ephemeral computed an exchange")
	}
	e.zero() // idempotent
}

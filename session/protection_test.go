package session

import (
	"errors"
	"testing"

	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/reasons"
)

// TestChoose: the responder picks the weakest protection that satisfies
// both minimums; an initiator whose minimum is above the responder's gets
// its own; one below gets the responder's.
func TestChoose(t *testing.T) {
	for _, c := range []struct {
		init, resp, want Protection
	}{
		{None, None, None}, {None, Auth, Auth}, {None, Encrypt, Encrypt},
		{Auth, None, Auth}, {Auth, Auth, Auth}, {Auth, Encrypt, Encrypt},
		{Encrypt, None, Encrypt}, {Encrypt, Auth, Encrypt}, {Encrypt, Encrypt, Encrypt},
	} {
		got, err := Choose(OfferMask(c.init), c.resp)
		if err != nil || got != c.want {
			t.Errorf("initiator min %s, responder min %s: %s %v, want %s", c.init, c.resp, got, err, c.want)
		}
	}
	if _, err := Choose(1<<Auth, Encrypt); !errors.Is(err, ErrPolicy) {
		t.Fatalf("auth only offered to an encrypt responder: %v, want ErrPolicy", err)
	}
	if _, err := Choose(1<<None, Auth); !errors.Is(err, ErrPolicy) {
		t.Fatalf("none only offered to an auth responder: %v, want ErrPolicy", err)
	}
}

func TestOfferMask(t *testing.T) {
	if OfferMask(None) != 0x07 || OfferMask(Auth) != 0x06 || OfferMask(Encrypt) != 0x04 {
		t.Fatalf("masks %02x %02x %02x", OfferMask(None), OfferMask(Auth), OfferMask(Encrypt))
	}
	if s := OfferMask(Auth).String(); s != "{auth,encrypt}" {
		t.Fatalf("String() = %q", s)
	}
	if s := Mask(0x0a).String(); s != "{auth,0x08}" {
		t.Fatalf("String() = %q", s)
	}
}

func TestParseProtection(t *testing.T) {
	for _, p := range []Protection{None, Auth, Encrypt} {
		got, err := ParseProtection(p.String())
		if err != nil || got != p {
			t.Errorf("ParseProtection(%q) = %s, %v", p.String(), got, err)
		}
	}
	if _, err := ParseProtection("integrity"); err == nil {
		t.Fatal("ParseProtection accepted integrity")
	}
	if Protection(3).Valid() || Protection(3).String() != "Protection(3)" {
		t.Fatal("protection 3 is valid")
	}
}

// TestReasons: every sentinel has its label; other errors fall through to
// ping's labels.
func TestReasons(t *testing.T) {
	want := map[error]reasons.Reason{ErrAuth: "session_auth", ErrReplay: "session_replay", ErrSize: "session_size",
		ErrExpired: "session_expired", ErrProtocol: "session_protocol", ErrOffer: "session_offer",
		ErrPolicy: "session_policy", ErrDowngrade: "session_downgrade", ErrNode: "node_mismatch"}
	if len(Reasons()) != len(want) {
		t.Fatalf("Reasons() = %v", Reasons())
	}
	for err, label := range want {
		if got := Reason(errors.Join(errors.New("context"), err)); got != label {
			t.Errorf("Reason(%v) = %q, want %q", err, got, label)
		}
	}
	if got := Reason(errors.New("other")); got != "other" {
		t.Errorf("Reason(other) = %q", got)
	}
	for err, code := range map[error]proto.RejectCode{ErrOffer: 20, ErrPolicy: 18, ErrDowngrade: 19, ErrNode: 4} {
		if c, ok := RejectCode(err); !ok || c != code {
			t.Errorf("RejectCode(%v) = %d %v", err, c, ok)
		}
	}
	if _, ok := RejectCode(ErrAuth); ok {
		t.Error("RejectCode(ErrAuth) has a code: session errors after the swap close, they are not answered")
	}
}

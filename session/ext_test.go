package session

import (
	"errors"
	"testing"
)

func sampleOffer() Offer {
	o := Offer{Channel: ChannelIM, Offered: OfferMask(None)}
	for i := range o.Share {
		o.Share[i], o.Ephemeral[i] = byte(i), byte(0x80+i)
	}
	return o
}

func sampleAnswer() Answer {
	o := sampleOffer()
	return Answer{Channel: o.Channel, Offered: o.Offered, Chosen: Encrypt, Share: o.Ephemeral, Ephemeral: o.Share}
}

func TestOfferRoundTrip(t *testing.T) {
	o := sampleOffer()
	var b Ext
	o.Encode(&b)
	got, err := DecodeOffer(&b)
	if err != nil || got != o {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	a := sampleAnswer()
	a.Encode(&b)
	gotA, err := DecodeAnswer(&b)
	if err != nil || gotA != a {
		t.Fatalf("answer round trip: %+v %v", gotA, err)
	}
}

// TestOfferRefusals: every malformed offer is ErrOffer.
func TestOfferRefusals(t *testing.T) {
	for name, edit := range map[string]func(b *Ext){
		"version 0":                   func(b *Ext) { b[0] = 0 },
		"version 2":                   func(b *Ext) { b[0] = 2 },
		"channel 0":                   func(b *Ext) { b[1] = 0 },
		"channel 3":                   func(b *Ext) { b[1] = 3 },
		"nothing offered":             func(b *Ext) { b[2] = 0 },
		"undefined protection":        func(b *Ext) { b[2] |= 0x08 },
		"reserved byte":               func(b *Ext) { b[3] = 1 },
		"control offering auth":       func(b *Ext) { b[1], b[2] = byte(ChannelControl), 0x06 },
		"encrypt without ephemeral":   func(b *Ext) { clear(b[36:]) },
		"ephemeral without encrypt":   func(b *Ext) { b[2] = 0x03 },
		"control without ephemeral":   func(b *Ext) { b[1], b[2] = byte(ChannelControl), 0x04; clear(b[36:]) },
		"control offering none first": func(b *Ext) { b[1] = byte(ChannelControl) },
	} {
		o := sampleOffer()
		var b Ext
		o.Encode(&b)
		edit(&b)
		if _, err := DecodeOffer(&b); !errors.Is(err, ErrOffer) {
			t.Errorf("%s: %v, want ErrOffer", name, err)
		}
	}
}

func TestAnswerRefusals(t *testing.T) {
	for name, edit := range map[string]func(b *Ext){
		"version 2":                   func(b *Ext) { b[0] = 2 },
		"channel 0":                   func(b *Ext) { b[1] = 0 },
		"nothing offered":             func(b *Ext) { b[2] = 0 },
		"chose what was not offered":  func(b *Ext) { b[2], b[3] = 0x04, byte(Auth) },
		"chose an undefined":          func(b *Ext) { b[3] = 3 },
		"encrypt without ephemeral":   func(b *Ext) { clear(b[36:]) },
		"ephemeral without encrypt":   func(b *Ext) { b[3] = byte(Auth) },
		"none with an ephemeral":      func(b *Ext) { b[3] = byte(None) },
		"control session chose auth":  func(b *Ext) { b[1], b[2], b[3] = byte(ChannelControl), 0x06, byte(Auth) },
		"control offering everything": func(b *Ext) { b[1] = byte(ChannelControl) },
	} {
		a := sampleAnswer()
		var b Ext
		a.Encode(&b)
		edit(&b)
		if _, err := DecodeAnswer(&b); !errors.Is(err, ErrOffer) {
			t.Errorf("%s: %v, want ErrOffer", name, err)
		}
	}
}

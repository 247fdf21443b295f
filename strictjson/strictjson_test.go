package strictjson

import (
	"errors"
	"strings"
	"testing"
)

type sample struct {
	A int      `json:"a"`
	B []string `json:"b,omitempty"`
}

func TestDecodeAccepts(t *testing.T) {
	for _, in := range []string{`{"a":1}`, " \n\t{\"a\":1}\r\n ", `{"a":2,"b":["x"]}`, `{}`} {
		var s sample
		if err := Decode([]byte(in), &s); err != nil {
			t.Errorf("Decode(%q): %v", in, err)
		}
	}
	var s sample
	if err := Decode([]byte(`{"a":7,"b":["x","y"]}`), &s); err != nil || s.A != 7 || len(s.B) != 2 {
		t.Fatalf("got %+v, %v", s, err)
	}
}

func TestDecodeRefuses(t *testing.T) {
	cases := []struct {
		name, in string
		want     error  // sentinel, or nil for an encoding/json error
		text     string // part of the message
	}{
		{"empty", ``, ErrEmpty, "no JSON value"},
		{"white space", " \n ", ErrEmpty, "no JSON value"},
		{"trailing brace", `{"a":1}}`, ErrTrailingData, "offset 7"},
		{"trailing bracket", `{"a":1}]`, ErrTrailingData, "data after the JSON value"},
		{"trailing comma", `{"a":1},`, ErrTrailingData, ""},
		{"second object", `{"a":1} {"a":2}`, ErrTrailingData, ""},
		{"second array", `{"a":1}[]`, ErrTrailingData, ""},
		{"trailing word", `{"a":1}x`, ErrTrailingData, ""},
		{"trailing number", `{"a":1} 2`, ErrTrailingData, ""},
		{"trailing NUL", "{\"a\":1}\x00", ErrTrailingData, ""},
		{"unknown field", `{"a":1,"c":2}`, nil, `unknown field "c"`},
		{"truncated", `{"a":1`, nil, "unexpected EOF"},
		{"syntax", `{"a":}`, nil, "invalid character"},
		{"wrong type", `{"a":"1"}`, nil, "cannot unmarshal"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var s sample
			err := Decode([]byte(c.in), &s)
			if err == nil {
				t.Fatalf("Decode(%q) accepted: %+v", c.in, s)
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("Decode(%q) = %v, want %v", c.in, err, c.want)
			}
			if c.want == nil && (errors.Is(err, ErrEmpty) || errors.Is(err, ErrTrailingData)) {
				t.Fatalf("Decode(%q) = %v, want a decoding error", c.in, err)
			}
			if !strings.Contains(err.Error(), c.text) {
				t.Fatalf("Decode(%q) = %q, want it to name %q", c.in, err, c.text)
			}
		})
	}
}

// FuzzDecode: Decode never panics, and what it accepts is one value: the
// same bytes with a "}" appended are refused as trailing data.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":1}}`, `{"a":1} {}`, ``, `{"a":1,"c":2}`, `null`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var s sample
		if Decode(data, &s) != nil {
			return
		}
		if err := Decode(append(data, '}'), &s); !errors.Is(err, ErrTrailingData) {
			t.Fatalf("Decode(%q + \"}\") = %v, want ErrTrailingData", data, err)
		}
	})
}

// Package strictjson decodes a document that must hold exactly one JSON
// value whose fields all belong to the target type. It is the one strict
// decoder of the module: state files, key files and admin requests all go
// through it, so each refuses the same things in the same words.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Sentinel errors of Decode, besides the decoding errors of encoding/json
// (syntax, type, unknown field).
var (
	// ErrEmpty means the document holds no JSON value (only white space).
	ErrEmpty = errors.New("no JSON value")
	// ErrTrailingData means something other than white space follows the
	// value: a second value, or a stray byte such as the "}" of `{"a":1}}`.
	ErrTrailingData = errors.New("data after the JSON value")
)

// Decode decodes data into v. It refuses an object field that v has no
// place for, a document without a value, and anything but white space
// after the value.
func Decode(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return ErrEmpty
		}
		return err
	}
	end := dec.InputOffset()
	// Token, not More: More reports false at a stray '}' or ']', which
	// would let `{"a":1}}` through.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w (offset %d)", ErrTrailingData, end)
	}
	return nil
}

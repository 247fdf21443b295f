package rotation

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeRecord: the decoder never panics, every error wraps
// ErrInvalidRecord, and an accepted record re-encodes to a record that
// decodes to the same encoding. Seeds also live in
// testdata/fuzz/FuzzDecodeRecord/.
func FuzzDecodeRecord(f *testing.F) {
	idle, _ := EncodeRecord(Record{})
	f.Add(idle)
	f.Add([]byte(`{"format":1,"phase":"grace","seq":2,"old_key":"0a0b0c0d","new_key":"01020304","grace_until":"2025-11-24T16:00:00Z"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeRecord(data)
		if err != nil {
			if !errors.Is(err, ErrInvalidRecord) {
				t.Fatalf("error does not wrap ErrInvalidRecord: %v", err)
			}
			return
		}
		enc, err := EncodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		r2, err := DecodeRecord(enc)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, enc)
		}
		enc2, _ := EncodeRecord(r2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
	})
}

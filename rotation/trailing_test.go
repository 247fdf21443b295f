package rotation

import (
	"errors"
	"strings"
	"testing"
)

// DecodeRecord refuses anything after the record, including the stray "}"
// or "]" that a More-based check let through before strictjson.
func TestDecodeRecordRefusesTrailingData(t *testing.T) {
	good, err := EncodeRecord(Record{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeRecord(good); err != nil {
		t.Fatalf("valid record refused: %v", err)
	}
	for _, tail := range []string{"}", "]", " {}", "x"} {
		data := append([]byte(strings.TrimSpace(string(good))), tail...)
		_, err := DecodeRecord(data)
		if !errors.Is(err, ErrInvalidRecord) || !strings.Contains(err.Error(), "data after the JSON value") {
			t.Errorf("DecodeRecord(record + %q) = %v, want ErrInvalidRecord naming the trailing data", tail, err)
		}
	}
}

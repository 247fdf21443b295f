// Package statetest builds the damaged state files that the daemons'
// tests and fuzz targets feed to `state check` and to a start: files that
// are JSON but not what a loader decodes. Tests only (it does not import
// testing: production code never does, and layout_test.go checks it).
package statetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Variants are the variants of the JSON state file data that are JSON but
// not what its loader decodes: an unknown field, a field of the wrong
// type, a format number this version does not read. Every state file of
// both roles is an object with a "format" member.
func Variants(data []byte) (map[string][]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w: %s", err, data)
	}
	if _, ok := top["format"]; !ok {
		return nil, fmt.Errorf("no format member: %s", data)
	}
	out := map[string][]byte{}
	for name, change := range map[string]func(map[string]json.RawMessage){
		"unknown_field": func(m map[string]json.RawMessage) { m["foroat"] = json.RawMessage(`1`) },
		"wrong_type":    func(m map[string]json.RawMessage) { m["format"] = json.RawMessage(`"1"`) },
		"format_2":      func(m map[string]json.RawMessage) { m["format"] = json.RawMessage(`2`) },
	} {
		m := make(map[string]json.RawMessage, len(top)+1)
		for k, v := range top {
			m[k] = v
		}
		change(m)
		b, err := json.Marshal(m)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("variant %s", name), err)
		}
		out[name] = b
	}
	return out, nil
}

// Seeds are fuzz seeds of the state file b as a daemon wrote it: b, its
// variants edited in place (as a bit flip or an older writer would leave
// them, spacing kept), the empty document, an array, and extra.
func Seeds(b []byte, extra ...string) [][]byte {
	seeds := [][]byte{b, bytes.Replace(b, []byte(`"format"`), []byte(`"foroat"`), 1)}
	for _, old := range [][]byte{[]byte(`"format": 1`), []byte(`"format":1`)} {
		if bytes.Contains(b, old) {
			seeds = append(seeds, bytes.Replace(b, old, []byte(`"format": "1"`), 1), bytes.Replace(b, old, []byte(`"format": 2`), 1))
		}
	}
	seeds = append(seeds, []byte(``), []byte(`[]`))
	for _, e := range extra {
		seeds = append(seeds, []byte(e))
	}
	return seeds
}

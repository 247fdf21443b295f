package replica

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/momgate/momgate/tools/fuzzcorpus"
)

// The seed corpora are checked in under testdata/fuzz/<Target>/ and kept in
// step with the seed functions below by TestSeedCorpus.

func decodeSeeds(t testing.TB) []fuzzcorpus.Seed {
	var out []fuzzcorpus.Seed
	for _, s := range samples(t) {
		out = append(out, fuzzcorpus.Bytes(s.name, mustEncode(t, s.e)))
	}
	good := mustEncode(t, samples(t)[0].e)
	return append(out,
		fuzzcorpus.Bytes("version_2", append([]byte{2}, good[1:]...)),
		fuzzcorpus.Bytes("unknown_op", append([]byte{1, 99}, good[2:]...)),
		fuzzcorpus.Bytes("retired_op_1", append([]byte{1, 1}, good[2:]...)),
		fuzzcorpus.Bytes("retired_create_node", command(1, 1, t0.UnixNano(), retiredCreateNode)),
		fuzzcorpus.Bytes("trailing_brace", append(bytes.Clone(good), '}')),
		fuzzcorpus.Bytes("unknown_field", []byte(strings.Replace(string(good), `{"why"`, `{"x":0,"why"`, 1))),
		fuzzcorpus.Bytes("bad_checksum", append(bytes.Clone(good[:len(good)-1]), ' ')),
		fuzzcorpus.Bytes("header_only", good[:HeaderSize]),
	)
}

// FuzzDecode: no input panics; errors wrap ErrBadCommand or ErrUnsupported;
// an accepted command encodes, and its encoding decodes and encodes to the
// same bytes.
func FuzzDecode(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v wraps neither ErrBadCommand nor ErrUnsupported", err)
			}
			return
		}
		once, err := Encode(e)
		if err != nil {
			t.Fatalf("accepted command does not encode: %v", err)
		}
		back, err := Decode(once)
		if err != nil {
			t.Fatalf("encoding of an accepted command does not decode: %v", err)
		}
		twice, err := Encode(back)
		if err != nil || !bytes.Equal(once, twice) {
			t.Fatalf("encoding is not a fixed point (%v):\n%q\n%q", err, once, twice)
		}
	})
}

func sectionSeeds(t testing.TB) []fuzzcorpus.Seed {
	var buf bytes.Buffer
	if _, err := WriteSections(&buf, testSections()); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	var empty bytes.Buffer
	if _, err := WriteSections(&empty, nil); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[len(bad)-1] ^= 1
	return []fuzzcorpus.Seed{
		fuzzcorpus.Bytes("three_sections", good),
		fuzzcorpus.Bytes("no_sections", empty.Bytes()),
		fuzzcorpus.Bytes("bad_checksum", bad),
		fuzzcorpus.Bytes("truncated", good[:len(good)-3]),
		fuzzcorpus.Bytes("trailing", append(bytes.Clone(good), 'x')),
	}
}

// FuzzReadSections: no input panics; errors wrap ErrBadSnapshot; an
// accepted snapshot writes back to exactly its bytes.
func FuzzReadSections(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		secs, err := ReadSections(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrBadSnapshot) {
				t.Fatalf("error %v does not wrap ErrBadSnapshot", err)
			}
			return
		}
		var buf bytes.Buffer
		if _, err := WriteSections(&buf, secs); err != nil || !bytes.Equal(buf.Bytes(), b) {
			t.Fatalf("accepted snapshot does not write back to its bytes (%v)", err)
		}
	})
}

// TestSeedCorpus checks the checked-in seed corpora against the seed
// functions; MOMGATE_UPDATE_CORPUS=1 rewrites them.
func TestSeedCorpus(t *testing.T) {
	fuzzcorpus.Check(t, "FuzzDecode", decodeSeeds(t))
	fuzzcorpus.Check(t, "FuzzReadSections", sectionSeeds(t))
}

// Package store holds the daemons' persistent stores: strict JSON state
// files, the replay guard's high-water mark log (MarkLog) and the
// timestamp ceiling (CeilingFile). Every write is atomic (temp file,
// fsync, rename, fsync of the directory, through internal/statefile), so a
// crash at any moment loses nothing that was acknowledged.
package store

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"syscall"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/strictjson"
)

// ErrCorrupt means a state file does not decode: bad magic, bad checksum,
// bad length, unknown JSON field, trailing data. Errors wrap it together
// with the file name (and offset, where there is one).
var ErrCorrupt = errors.New("corrupt state file")

// ErrTooLarge means a state file exceeds its size cap.
var ErrTooLarge = errors.New("state file too large")

// MaxJSONSize caps the size of a JSON state file.
const MaxJSONSize = 64 << 20

// castagnoli is the CRC-32C table used by every binary format here.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crcOf(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// LoadJSON decodes the JSON file at path into v strictly: unknown fields,
// trailing data and files over MaxJSONSize are errors wrapping ErrCorrupt
// (or ErrTooLarge). A missing file yields an error wrapping fs.ErrNotExist.
func LoadJSON(path string, v any) error {
	data, err := readCapped(path, MaxJSONSize)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	return decodeJSON(path, data, v)
}

// LoadJSONPrivate is LoadJSON for secret-bearing files: it reads through
// statefile.ReadPrivate, so a group- or other-readable or foreign-owned
// file is refused (statefile.ErrInsecurePerm, statefile.ErrWrongOwner).
func LoadJSONPrivate(path string, v any) error {
	data, err := statefile.ReadPrivate(path)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	if len(data) > MaxJSONSize {
		return fmt.Errorf("load %s: %w (%d bytes, max %d)", path, ErrTooLarge, len(data), MaxJSONSize)
	}
	return decodeJSON(path, data, v)
}

func decodeJSON(path string, data []byte, v any) error {
	if err := strictjson.Decode(data, v); err != nil {
		if errors.Is(err, strictjson.ErrEmpty) {
			return fmt.Errorf("load %s: %w: empty file", path, ErrCorrupt)
		}
		return fmt.Errorf("load %s: %w: %w", path, ErrCorrupt, err)
	}
	return nil
}

// SaveJSON writes v as indented JSON to path atomically with mode perm.
func SaveJSON(path string, v any, perm os.FileMode) error {
	data, err := EncodeJSON(v)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	if err := statefile.WriteAtomic(path, data, perm); err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// openRegular opens the state file at path for reading: a regular file
// only. It does not follow a symlink at path (the writers open with
// O_NOFOLLOW, so a reader that followed one would judge a file the
// daemon then refuses, and a dangling one would read as missing), and it
// opens without blocking, so a FIFO is refused rather than waited on
// forever (O_NONBLOCK does not change reads of a regular file). Errors
// other than a missing file wrap statefile.ErrNotRegular when the path
// is not a regular file.
func openRegular(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("%s is a symlink: %w; remove it and restore the file (docs/DEPLOYMENT.md section 7)", path, statefile.ErrNotRegular)
		}
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w (mode %s); remove it and restore the file (docs/DEPLOYMENT.md section 7)", path, statefile.ErrNotRegular, fi.Mode())
	}
	return f, nil
}

// readCapped reads the regular file at path (openRegular), refusing files
// larger than max.
func readCapped(path string, max int64) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%w (max %d bytes)", ErrTooLarge, max)
	}
	return data, nil
}

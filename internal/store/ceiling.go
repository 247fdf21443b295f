package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/momgate/momgate/internal/statefile"
)

// Ceiling file format, 20 bytes: CeilingMagic (8) | ceiling (u64 BE, ns) |
// CRC-32C (u32 BE) of the first 16 bytes. Binary with a checksum rather than
// text, so that a flipped bit cannot silently lower the ceiling.
const (
	CeilingMagic = "MGCEIL01"
	CeilingSize  = 20 // len(CeilingMagic) + 8 + 4
)

// CeilingFile persists a ping.Stamper's timestamp ceiling in one file,
// written atomically and durably on every store. It implements
// ping.CeilingStore and is safe for concurrent use.
type CeilingFile struct {
	path string
	mu   sync.Mutex
}

// NewCeilingFile returns the ceiling store at path; nothing is read yet.
func NewCeilingFile(path string) *CeilingFile {
	return &CeilingFile{path: path}
}

// Path returns the file's path.
func (c *CeilingFile) Path() string { return c.path }

// LoadCeiling returns the stored ceiling, 0 if the file does not exist, or
// an error wrapping ErrCorrupt naming the file if it does not decode.
func (c *CeilingFile) LoadCeiling() (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	data, err := readCapped(c.path, CeilingSize)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if errors.Is(err, ErrTooLarge) {
		return 0, fmt.Errorf("load timestamp ceiling %s: %w: longer than %d bytes", c.path, ErrCorrupt, CeilingSize)
	}
	if err != nil {
		return 0, fmt.Errorf("load timestamp ceiling %s: %w", c.path, err)
	}
	v, err := DecodeCeiling(data)
	if err != nil {
		return 0, fmt.Errorf("load timestamp ceiling %s: %w", c.path, err)
	}
	return v, nil
}

// StoreCeiling writes v atomically (temp file, fsync, rename, fsync of the
// directory) with mode 0600.
func (c *CeilingFile) StoreCeiling(v uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := statefile.WriteAtomic(c.path, EncodeCeiling(v), 0o600); err != nil {
		return fmt.Errorf("store timestamp ceiling %s: %w", c.path, err)
	}
	return nil
}

// EncodeCeiling encodes v in the ceiling file format.
func EncodeCeiling(v uint64) []byte {
	out := make([]byte, 0, CeilingSize)
	out = append(out, CeilingMagic...)
	out = binary.BigEndian.AppendUint64(out, v)
	return binary.BigEndian.AppendUint32(out, crcOf(out))
}

// DecodeCeiling strictly decodes the ceiling file format; anything but
// exactly CeilingSize bytes with the magic and a matching checksum is an
// error wrapping ErrCorrupt.
func DecodeCeiling(data []byte) (uint64, error) {
	if len(data) != CeilingSize {
		return 0, fmt.Errorf("%w: ceiling is %d bytes, want %d", ErrCorrupt, len(data), CeilingSize)
	}
	if string(data[:len(CeilingMagic)]) != CeilingMagic {
		return 0, fmt.Errorf("%w: bad ceiling magic %q", ErrCorrupt, data[:len(CeilingMagic)])
	}
	if binary.BigEndian.Uint32(data[16:]) != crcOf(data[:16]) {
		return 0, fmt.Errorf("%w: bad ceiling checksum", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(data[8:16]), nil
}

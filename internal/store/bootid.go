package store

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
)

// bootIDPath is where Linux publishes a random id chosen at each boot.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// BootID returns the id of the running boot of the machine. A mark log
// records it while open: found open under the same boot id, its writer was
// killed but the page cache, which holds every append it acknowledged,
// survived; under another one the machine went down, and appends not yet
// synced may be lost. A zero id (unreadable) proves nothing.
func BootID() ([16]byte, error) {
	var id [16]byte
	b, err := os.ReadFile(bootIDPath)
	if err != nil {
		return id, fmt.Errorf("read boot id: %w", err)
	}
	h := bytes.ReplaceAll(bytes.TrimSpace(b), []byte("-"), nil)
	if len(h) != 32 {
		return id, fmt.Errorf("read boot id %s: %q is not a UUID", bootIDPath, b)
	}
	if _, err := hex.Decode(id[:], h); err != nil {
		return id, fmt.Errorf("read boot id %s: %w", bootIDPath, err)
	}
	return id, nil
}

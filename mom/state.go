package mom

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/proto"
)

// Files in a MOM's state directory.
const (
	identityFile = "identity.json"
	keyringFile  = "keyring.json"
	momFile      = "mom.json"
	denyFile     = "deny.json"
)

// ErrNotEnrolled means the MOM has no enrollment yet and no token was given.
var ErrNotEnrolled = errors.New("MOM is not enrolled: start it once with --enroll TOKEN (from `momgate-qmgr -c \"create node ...\"`)")

// enrollment is what a MOM learns by enrolling, persisted in mom.json.
type enrollment struct {
	Format    int    `json:"format"`
	NodeID    string `json:"node_id"`
	Name      string `json:"name"`
	ServerID  string `json:"server_id"`
	ServerKey string `json:"server_key"` // pinned server public key, base64
}

func (e *enrollment) nodeID() (proto.NodeID, error) {
	u, err := uuid.Parse(e.NodeID)
	return proto.NodeID(u), err
}

func (e *enrollment) serverKey() ([32]byte, error) {
	var k [32]byte
	b, err := base64.StdEncoding.DecodeString(e.ServerKey)
	if err != nil || len(b) != 32 {
		return k, fmt.Errorf("server_key: not 32 bytes of base64")
	}
	copy(k[:], b)
	return k, nil
}

func loadEnrollment(dir string) (*enrollment, error) {
	path := filepath.Join(dir, momFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var e enrollment
	if err := store.LoadJSON(path, &e); err != nil {
		return nil, err
	}
	if err := e.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &e, nil
}

// check refuses a decoded mom.json of another format, or whose node id or
// pinned server key does not parse.
func (e *enrollment) check() error {
	if e.Format != 1 {
		return fmt.Errorf("unsupported format %d", e.Format)
	}
	if _, err := e.nodeID(); err != nil {
		return fmt.Errorf("node_id: %w", err)
	}
	if _, err := e.serverKey(); err != nil {
		return err
	}
	return nil
}

func saveEnrollment(dir string, e *enrollment) error {
	return store.SaveJSON(filepath.Join(dir, momFile), e, 0o600)
}

func encodeB64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

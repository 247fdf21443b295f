package admin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/momgate/momgate/strictjson"
)

// OpBackup is the online backup of a running server or group member: no
// arguments -> Backup, a consistent copy of the state at one applied index
// (momgate-server backup writes it to a file; momgate-server restore reads
// it back), as long as it fits one response. BackupArgs{Chunked: true} ->
// BackupStarted: the daemon keeps the backup file's bytes and hands them
// out with OpBackupChunk, for a state of any size.
const OpBackup = "backup"

// OpBackupChunk reads the backup an OpBackup with Chunked started:
// BackupChunkArgs -> BackupChunk.
const OpBackupChunk = "backup_chunk"

// BackupChunkSize is the most bytes one BackupChunk carries (a third more
// once base64-encoded, well within MaxResponse).
const BackupChunkSize = 16 << 20

// BackupArgs are OpBackup's arguments (none: the whole backup in the
// answer).
type BackupArgs struct {
	Chunked bool `json:"chunked,omitempty"`
}

// BackupStarted answers a chunked OpBackup: the backup file is Size bytes
// with SHA-256 SHA256, to be read with OpBackupChunk under ID before it
// expires (a newer backup started on the daemon replaces it).
type BackupStarted struct {
	ID     string    `json:"id"`
	Size   int64     `json:"size"`
	SHA256 string    `json:"sha256"`
	Expiry time.Time `json:"expiry"`
	Member string    `json:"member"`
	Index  uint64    `json:"index"`
	Nodes  int       `json:"nodes"`
}

// BackupChunkArgs are OpBackupChunk's arguments: the bytes from Offset.
type BackupChunkArgs struct {
	ID     string `json:"id"`
	Offset int64  `json:"offset"`
}

// BackupChunk is up to BackupChunkSize bytes of a started backup; Data is
// empty only at its end.
type BackupChunk struct {
	Data []byte `json:"data"`
}

// BackupFormat is the format of a Backup; a newer one is refused.
const BackupFormat = "momgate-backup/1"

// Backup is an online backup: the server's identity and a snapshot of its
// state in the sections a group's raft snapshot carries (state.json,
// keyring.json, rotation.json, deny.json, members.json), each with its
// SHA-256. It is both the answer of OpBackup and the backup file.
type Backup struct {
	Format   string    `json:"format"`
	Created  time.Time `json:"created"`
	ServerID string    `json:"server_id"`
	// Member is the group member that took the copy ("" for a single
	// server), Index the last log entry applied in it (0 for a single
	// server), Members the group's members then.
	Member  string   `json:"member"`
	Index   uint64   `json:"index"`
	Members []string `json:"members"`
	// Nodes is the number of nodes in the copy.
	Nodes          int    `json:"nodes"`
	Identity       []byte `json:"identity"` // identity.json, verbatim
	IdentitySHA256 string `json:"identity_sha256"`
	Snapshot       []byte `json:"snapshot"` // the state's sections (replica.WriteSections)
	SnapshotSHA256 string `json:"snapshot_sha256"`
}

// ErrBadBackup: a backup does not decode, is of another format, or its
// contents do not match their checksums.
var ErrBadBackup = errors.New("not a valid momgate backup")

// SHA256Hex is the checksum a Backup records for data.
func SHA256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Seal sets the checksums of b's contents.
func (b *Backup) Seal() {
	b.IdentitySHA256, b.SnapshotSHA256 = SHA256Hex(b.Identity), SHA256Hex(b.Snapshot)
}

// DecodeBackup decodes a backup strictly (one JSON object, only Backup's
// fields), checks its format and that identity and snapshot match their
// checksums. What the contents mean is checked by restore.
func DecodeBackup(data []byte) (*Backup, error) {
	var b Backup
	if err := strictjson.Decode(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	if err := exactFields(data); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	switch {
	case b.Format != BackupFormat:
		return nil, fmt.Errorf("%w: format %q, this version reads %q", ErrBadBackup, b.Format, BackupFormat)
	case len(b.Identity) == 0 || len(b.Snapshot) == 0:
		return nil, fmt.Errorf("%w: no identity or no snapshot", ErrBadBackup)
	case SHA256Hex(b.Identity) != b.IdentitySHA256:
		return nil, fmt.Errorf("%w: the identity does not match its SHA-256 (damaged)", ErrBadBackup)
	case SHA256Hex(b.Snapshot) != b.SnapshotSHA256:
		return nil, fmt.Errorf("%w: the snapshot does not match its SHA-256 (damaged)", ErrBadBackup)
	}
	return &b, nil
}

// backupFields are the JSON names of Backup's fields.
var backupFields = func() map[string]bool {
	names := map[string]bool{}
	t := reflect.TypeOf(Backup{})
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	return names
}()

// exactFields checks the fields of the backup object data (which
// strictjson decoded) as encoding/json does not: each at most once, and
// named exactly. encoding/json takes the last of two "identity" fields
// and matches "IDENTITY" too, so a backup could carry a second identity
// or snapshot beside the one a reader of the file sees first.
func exactFields(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil // null: no fields
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		name, _ := tok.(string)
		switch {
		case seen[name]:
			return fmt.Errorf("field %q twice", name)
		case !backupFields[name]:
			return fmt.Errorf("field %q is not one of a backup (names are exact)", name)
		}
		seen[name] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

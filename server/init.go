package server

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/internal/statelock"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/statecheck"
)

// initFiles are the files init writes; the first start of the server
// writes the others and completes the manifest.
var initFiles = []string{identityFile, keyringFile, stateFile}

// Init creates a new server state directory: identity, first cluster key,
// server id and default attributes. It refuses a directory that holds any
// state file (ErrInitialized, naming them): it never overwrites an
// identity or a keyring. It returns the server's public key fingerprint.
func Init(dir string, rnd io.Reader, now time.Time) (string, error) {
	lock, err := lockForInit(dir)
	if err != nil {
		return "", err
	}
	defer lock.Release()
	if found := stateFilesIn(dir); len(found) > 0 {
		return "", fmt.Errorf("%s holds %s: %w: init never overwrites an identity or a keyring. "+
			"If the server lost state, restore the directory from its backup (docs/DEPLOYMENT.md section 7). "+
			"To start over on purpose, with a new identity that every node must then be enrolled under again: "+
			"momgate-server init --reinitialize --state-dir %s (it first moves these files into a backup directory beside them)",
			dir, strings.Join(found, ", "), ErrInitialized, dir)
	}
	return initialize(dir, rnd, now)
}

// Reinitialize is `init --reinitialize`: it moves every state file of dir
// into a new directory dir/backup-UTCSTAMP (mode 0700), then initializes
// dir as Init does. It returns the fingerprint and the backup directory
// ("" if there was nothing to back up).
func Reinitialize(dir string, rnd io.Reader, now time.Time) (fp, backup string, err error) {
	lock, err := lockForInit(dir)
	if err != nil {
		return "", "", err
	}
	defer lock.Release()
	if found := stateFilesIn(dir); len(found) > 0 {
		if backup, err = backUp(dir, found, now); err != nil {
			return "", "", err
		}
	}
	fp, err = initialize(dir, rnd, now)
	return fp, backup, err
}

// lockForInit creates dir (0700) if needed and locks it: init refuses a
// directory a running server holds.
func lockForInit(dir string) (*statelock.Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state dir %s: %w", dir, err)
	}
	lock, err := statelock.Acquire(dir)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		lock.Release()
		return nil, fmt.Errorf("chmod state dir %s: %w", dir, err)
	}
	return lock, nil
}

// stateFilesIn lists the state files of a server directory found in dir.
func stateFilesIn(dir string) []string {
	var found []string
	for _, f := range append(statecheck.Files(statecheck.RoleServer, true), store.ManifestName) {
		if _, err := os.Lstat(filepath.Join(dir, f)); !errors.Is(err, fs.ErrNotExist) {
			found = append(found, f)
		}
	}
	return found
}

// backUp moves files of dir into a new backup directory and syncs both.
func backUp(dir string, files []string, now time.Time) (string, error) {
	backup := filepath.Join(dir, "backup-"+now.UTC().Format("20060102T150405Z"))
	if err := os.Mkdir(backup, 0o700); err != nil { // fails if it exists: never mixed with another backup
		return "", fmt.Errorf("back up %s: %w", dir, err)
	}
	for _, f := range files {
		if err := os.Rename(filepath.Join(dir, f), filepath.Join(backup, f)); err != nil {
			return backup, fmt.Errorf("back up %s into %s: %w (the files moved so far are there)", f, backup, err)
		}
	}
	if err := statefile.SyncDir(backup); err != nil {
		return backup, err
	}
	if err := statefile.SyncDir(dir); err != nil {
		return backup, err
	}
	return backup, nil
}

// initialize writes the files of a new directory and its manifest.
func initialize(dir string, rnd io.Reader, now time.Time) (string, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	id, err := keys.GenerateIdentity(rnd)
	if err != nil {
		return "", err
	}
	k, err := keys.NewKey(rnd, now, func(keys.KeyID) bool { return false })
	if err != nil {
		return "", err
	}
	k.State = keys.StateActive
	ring, err := keys.NewKeyring().WithKey(k)
	if err != nil {
		return "", err
	}
	sid, err := uuid.NewRandomFromReader(rnd)
	if err != nil {
		return "", fmt.Errorf("server id: %w", err)
	}
	if err := keystore.SaveIdentity(filepath.Join(dir, identityFile), id); err != nil {
		return "", err
	}
	if err := keystore.SaveKeyring(filepath.Join(dir, keyringFile), ring); err != nil {
		return "", err
	}
	p := persisted{Format: 1, ID: sid.String(), Attrs: DefaultAttrs(), Nodes: []nodeRecord{}, Tokens: []keys.TokenRecord{}}
	if err := saveState(dir, p); err != nil {
		return "", err
	}
	if err := store.SaveManifest(dir, statecheck.RoleServer.String(), initFiles); err != nil {
		return "", err
	}
	return keys.FingerprintText(id.Public), nil
}

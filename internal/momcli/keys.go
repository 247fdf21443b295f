package momcli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"syscall"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/mom"
	"github.com/momgate/momgate/rotation"
)

// ImportKey is `momgate-mom key import --state-dir DIR FILE`: FILE (a key
// exported by `momgate-qmgr -c "export key ID file=PATH"`) must be
// readable by its owner only. The key becomes the MOM's next key: through
// the running MOM, which tells the server, or, if the MOM is not running,
// in DIR/keyring.json directly.
func ImportKey(ctx context.Context, dir, file string, w io.Writer, asJSON bool) error {
	abs, err := filepath.Abs(file)
	if err != nil {
		return fmt.Errorf("key file %s: %w", file, err)
	}
	// Checked here too, so a bad file is refused the same way whether or
	// not the MOM runs.
	k, err := keystore.ImportKeyFile(abs)
	if err != nil {
		return err
	}
	defer k.Zero()
	var res admin.KeyResult
	err = call(ctx, dir, admin.OpKeyImport, admin.KeyFileArgs{File: abs}, &res)
	if notRunning(err) {
		ring, oerr := mom.UpdateKeyringOffline(dir, func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyUpdate(r, k) })
		if oerr != nil {
			return oerr
		}
		res, err = *admin.KeyResultOf(ring, k.ID, false), nil
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, res)
	}
	switch {
	case res.Running && res.Acked:
		fmt.Fprintf(w, "imported key %s as %s; the server was told this node holds it\n", res.Key.ID, res.Key.State)
	case res.Running:
		fmt.Fprintf(w, "imported key %s as %s; the MOM is not connected to the server now and reports it when it reconnects\n", res.Key.ID, res.Key.State)
	default:
		fmt.Fprintf(w, "imported key %s as %s into %s (the MOM is not running; it uses it from its next start)\n", res.Key.ID, res.Key.State, mom.KeyringPath(dir))
	}
	return nil
}

// ActivateKey is `momgate-mom key activate --state-dir DIR ID`: the MOM
// seals with key ID from now on (running MOM, or keyring.json offline).
// Normally `momgate-qmgr -c "activate key ID"` activates a key on every
// connected MOM at once; this is for a node the server cannot reach.
func ActivateKey(ctx context.Context, dir, idText string, w io.Writer, asJSON bool) error {
	id, err := keys.ParseKeyID(idText)
	if err != nil {
		return err
	}
	var res admin.KeyResult
	err = call(ctx, dir, admin.OpKeyActivate, admin.KeyIDArgs{ID: id.String()}, &res)
	if notRunning(err) {
		ring, oerr := mom.UpdateKeyringOffline(dir, func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyActivate(r, id) })
		if errors.Is(oerr, rotation.ErrKeyNotHeld) {
			return fmt.Errorf("%s does not hold key %s: import it first (momgate-mom key import)", dir, id)
		}
		if oerr != nil {
			return oerr
		}
		res, err = *admin.KeyResultOf(ring, id, false), nil
	}
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, res)
	}
	fmt.Fprintf(w, "key %s is now %s\n", res.Key.ID, res.Key.State)
	return nil
}

// notRunning reports whether err means no MOM serves the admin socket.
func notRunning(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR)
}

package mom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"syscall"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/crashhook"
	"github.com/momgate/momgate/internal/enroll"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/rotation"
)

// The MOM's side of key rotation (docs/KEYS.md): KeyUpdate, KeyActivate
// and KeyRetire from the server, and the manual `momgate-mom key import`
// and `key activate`. Every change is persisted (keyring.json, atomically)
// before it is used or acknowledged, so a kill -9 at any step loses at most
// an unacknowledged update, which the server resends or the next Welcome
// carries.

// Admin operations of the MOM's socket for manual key distribution.
const (
	OpKeyImport   = "key_import"   // KeyFileArgs -> KeyResult
	OpKeyActivate = "key_activate" // KeyIDArgs -> KeyResult
)

// KeyFileArgs are the arguments of OpKeyImport: an absolute path.
type KeyFileArgs struct {
	File string `json:"file"`
}

// KeyIDArgs are the arguments of OpKeyActivate.
type KeyIDArgs struct {
	ID string `json:"id"`
}

// KeyResult is the outcome of a manual key operation.
type KeyResult struct {
	Key     admin.KeyInfo   `json:"key"`     // the key imported or activated, in its new state
	Keys    []admin.KeyInfo `json:"keys"`    // the MOM's keyring afterwards
	Running bool            `json:"running"` // a running MOM applied it (false: keyring.json edited offline)
	Acked   bool            `json:"acked"`   // the server was told (KeyAck) that this node holds the key
}

// updateRing applies f to the keyring, persists the result and makes it
// live, all under keyMu. f reports whether it changed anything.
func (m *Mom) updateRing(f func(*keys.Keyring) (*keys.Keyring, bool, error)) error {
	m.keyMu.Lock()
	defer m.keyMu.Unlock()
	ring, changed, err := f(m.ring.Load())
	if err != nil || !changed {
		return err
	}
	if err := keystore.SaveKeyring(filepath.Join(m.cfg.StateDir, keyringFile), ring); err != nil {
		return err
	}
	m.ring.Store(ring)
	return nil
}

// serverWrapper is the box precomputation for keys the server wraps for
// this node, computed once.
func (m *Mom) serverWrapper() (*keys.Wrapper, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.srvWrap != nil {
		return m.srvWrap, nil
	}
	if m.enrolled == nil {
		return nil, errors.New("not enrolled")
	}
	pub, err := m.enrolled.serverKey()
	if err != nil {
		return nil, err
	}
	m.srvWrap = keys.NewWrapper(&pub, &m.ident.Private)
	return m.srvWrap, nil
}

// sendControl writes a message to the server on the current v2 control
// connection (the writer heartbeat installs with setControlWriter).
func (m *Mom) sendControl(msg proto.Message) error {
	m.lg.mu.Lock()
	w, ver := m.lg.ctl, m.lg.ctlVer
	m.lg.mu.Unlock()
	if w == nil || ver != proto.V2 {
		return errors.New("not connected to the server")
	}
	return w(msg)
}

// handleKeyUpdate stores a new key as next and acknowledges it. The key
// opens only with this node's identity key and the pinned server key, so
// it comes from the server.
func (m *Mom) handleKeyUpdate(u *proto.KeyUpdate) error {
	crashhook.At("mom-update-received")
	log := m.log.WithFields(logrus.Fields{"rotation": u.Rotation, "key": keys.KeyID(u.Key.KeyID).String()})
	ack := &proto.KeyAck{Rotation: u.Rotation, KeyID: u.Key.KeyID}
	w, err := m.serverWrapper()
	var k *keys.Key
	if err == nil {
		k, err = w.Unwrap(enroll.FromProto(u.Key), m.cfg.Now())
	}
	if err == nil {
		defer k.Zero()
		err = m.updateRing(func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyUpdate(r, k) })
	}
	if err != nil {
		log.WithError(err).Error("cannot store the new cluster key")
		ack.Status = 1
	} else {
		log.Info("new cluster key stored as next")
		crashhook.At("mom-update-saved")
	}
	if err := m.sendControl(ack); err != nil {
		return fmt.Errorf("acknowledge key %s: %w", keys.KeyID(u.Key.KeyID), err)
	}
	return nil
}

// handleKeyActivate seals with the new key from now on; the old one stays
// accepted as previous. A key this MOM does not hold means it missed the
// update: the error ends the connection, and the reconnect's Welcome
// brings the keys.
func (m *Mom) handleKeyActivate(a *proto.KeyActivate) error {
	crashhook.At("mom-activate-received")
	id := keys.KeyID(a.KeyID)
	err := m.updateRing(func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyActivate(r, id) })
	if err != nil {
		return fmt.Errorf("server activated key %s: %w; reconnecting to resynchronise", id, err)
	}
	m.log.WithFields(logrus.Fields{"rotation": a.Rotation, "key": id.String()}).Info("cluster key activated")
	crashhook.At("mom-activated")
	return nil
}

// handleKeyRetire drops a key and zeroes it.
func (m *Mom) handleKeyRetire(a *proto.KeyRetire) error {
	crashhook.At("mom-retire-received")
	id := keys.KeyID(a.KeyID)
	err := m.updateRing(func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyRetire(r, id) })
	if err != nil {
		return fmt.Errorf("server retired key %s: %w; reconnecting to resynchronise", id, err)
	}
	m.log.WithFields(logrus.Fields{"rotation": a.Rotation, "key": id.String()}).Info("cluster key retired and zeroed")
	crashhook.At("mom-retired")
	return nil
}

func keyInfos(r *keys.Keyring) []admin.KeyInfo {
	out := []admin.KeyInfo{}
	for _, k := range r.Keys() {
		out = append(out, admin.KeyInfo{ID: k.ID.String(), State: k.State.String(), Created: k.Created})
	}
	return out
}

func keyResult(r *keys.Keyring, id keys.KeyID, running bool) *KeyResult {
	res := &KeyResult{Keys: keyInfos(r), Running: running}
	if k := r.Lookup(id); k != nil {
		res.Key = admin.KeyInfo{ID: k.ID.String(), State: k.State.String(), Created: k.Created}
	}
	return res
}

// importKey is OpKeyImport on the running MOM: the key becomes next and
// the server is told this node holds it.
func (m *Mom) importKey(a KeyFileArgs) (*KeyResult, error) {
	if !filepath.IsAbs(a.File) {
		return nil, admin.Errorf(admin.CodeBadValue, "key file %q must be an absolute path", a.File)
	}
	k, err := keystore.ImportKeyFile(a.File)
	if err != nil {
		return nil, admin.Errorf(admin.CodeBadValue, "%v", err)
	}
	defer k.Zero()
	if err := m.updateRing(func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyUpdate(r, k) }); err != nil {
		return nil, err
	}
	m.log.WithFields(logrus.Fields{"key": k.ID.String(), "file": a.File}).Info("cluster key imported from a file")
	res := keyResult(m.ring.Load(), k.ID, true)
	res.Acked = m.sendControl(&proto.KeyAck{KeyID: uint32(k.ID)}) == nil
	return res, nil
}

// activateKey is OpKeyActivate on the running MOM.
func (m *Mom) activateKey(a KeyIDArgs) (*KeyResult, error) {
	id, err := keys.ParseKeyID(a.ID)
	if err != nil {
		return nil, admin.Errorf(admin.CodeBadValue, "%v", err)
	}
	err = m.updateRing(func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyActivate(r, id) })
	if errors.Is(err, rotation.ErrKeyNotHeld) {
		return nil, admin.Errorf(admin.CodeUnknownKey, "this MOM does not hold key %s: import it first (momgate-mom key import)", id)
	}
	if err != nil {
		return nil, err
	}
	m.log.WithField("key", id.String()).Info("cluster key activated by hand")
	return keyResult(m.ring.Load(), id, true), nil
}

func (m *Mom) handleKeyAdmin(op string, raw json.RawMessage) (any, error) {
	switch op {
	case OpKeyImport:
		var a KeyFileArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, admin.Errorf(admin.CodeBadRequest, "bad arguments: %v", err)
		}
		return m.importKey(a)
	case OpKeyActivate:
		var a KeyIDArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, admin.Errorf(admin.CodeBadRequest, "bad arguments: %v", err)
		}
		return m.activateKey(a)
	}
	return nil, admin.Errorf(admin.CodeUnknownOp, "unknown operation %q", op)
}

// notRunning reports whether err means no MOM serves the admin socket.
func notRunning(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR)
}

// offlineUpdate applies f to keyring.json of a MOM that is not running.
func offlineUpdate(dir string, f func(*keys.Keyring) (*keys.Keyring, bool, error)) (*keys.Keyring, error) {
	path := filepath.Join(dir, keyringFile)
	ring, err := keystore.LoadKeyring(path)
	if err != nil {
		return nil, fmt.Errorf("%w (is %s a MOM state directory?)", err, dir)
	}
	out, changed, err := f(ring)
	if err != nil {
		return nil, err
	}
	if changed {
		if err := keystore.SaveKeyring(path, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

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
	var res KeyResult
	err = call(ctx, dir, OpKeyImport, KeyFileArgs{File: abs}, &res)
	if notRunning(err) {
		ring, oerr := offlineUpdate(dir, func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyUpdate(r, k) })
		if oerr != nil {
			return oerr
		}
		res, err = *keyResult(ring, k.ID, false), nil
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
		fmt.Fprintf(w, "imported key %s as %s into %s (the MOM is not running; it uses it from its next start)\n", res.Key.ID, res.Key.State, filepath.Join(dir, keyringFile))
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
	var res KeyResult
	err = call(ctx, dir, OpKeyActivate, KeyIDArgs{ID: id.String()}, &res)
	if notRunning(err) {
		ring, oerr := offlineUpdate(dir, func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyActivate(r, id) })
		if errors.Is(oerr, rotation.ErrKeyNotHeld) {
			return fmt.Errorf("%s does not hold key %s: import it first (momgate-mom key import)", dir, id)
		}
		if oerr != nil {
			return oerr
		}
		res, err = *keyResult(ring, id, false), nil
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

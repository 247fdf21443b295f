package mom

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/handshake"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/keystore"
	"github.com/momgate/momgate/internal/statelock"
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

// handleKeyUpdate stores a new key as next and acknowledges it. The key
// opens only with this node's identity key and the pinned server key, so
// it comes from the server.
func (m *Mom) handleKeyUpdate(u *proto.KeyUpdate) error {
	m.cfg.CrashAt("mom-update-received")
	log := m.log.WithFields(logrus.Fields{"rotation": u.Rotation, "key": keys.KeyID(u.Key.KeyID).String()})
	ack := &proto.KeyAck{Rotation: u.Rotation, KeyID: u.Key.KeyID}
	w, err := m.serverWrapper()
	var k *keys.Key
	if err == nil {
		k, err = w.Unwrap(handshake.FromWire(u.Key), m.cfg.Now())
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
		m.cfg.CrashAt("mom-update-saved")
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
	m.cfg.CrashAt("mom-activate-received")
	id := keys.KeyID(a.KeyID)
	err := m.updateRing(func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyActivate(r, id) })
	if err != nil {
		return fmt.Errorf("server activated key %s: %w; reconnecting to resynchronise", id, err)
	}
	m.log.WithFields(logrus.Fields{"rotation": a.Rotation, "key": id.String()}).Info("cluster key activated")
	m.cfg.CrashAt("mom-activated")
	return nil
}

// handleKeyRetire drops a key and zeroes it.
func (m *Mom) handleKeyRetire(a *proto.KeyRetire) error {
	m.cfg.CrashAt("mom-retire-received")
	id := keys.KeyID(a.KeyID)
	err := m.updateRing(func(r *keys.Keyring) (*keys.Keyring, bool, error) { return rotation.ApplyRetire(r, id) })
	if err != nil {
		return fmt.Errorf("server retired key %s: %w; reconnecting to resynchronise", id, err)
	}
	m.log.WithFields(logrus.Fields{"rotation": a.Rotation, "key": id.String()}).Info("cluster key retired and zeroed")
	m.cfg.CrashAt("mom-retired")
	return nil
}

// importKey is OpKeyImport on the running MOM: the key becomes next and
// the server is told this node holds it.
func (m *Mom) importKey(a admin.KeyFileArgs) (*admin.KeyResult, error) {
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
	res := admin.KeyResultOf(m.ring.Load(), k.ID, true)
	res.Acked = m.sendControl(&proto.KeyAck{KeyID: uint32(k.ID)}) == nil
	return res, nil
}

// activateKey is OpKeyActivate on the running MOM.
func (m *Mom) activateKey(a admin.KeyIDArgs) (*admin.KeyResult, error) {
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
	return admin.KeyResultOf(m.ring.Load(), id, true), nil
}

// KeyringPath is the keyring file of the MOM whose state directory is dir.
func KeyringPath(dir string) string { return filepath.Join(dir, keyringFile) }

// UpdateKeyringOffline applies f to the keyring of a MOM that is not
// running (momgate-mom key import and key activate) and persists the
// result if f changed it. It holds the state directory's lock meanwhile,
// so a MOM starting at the same moment never reads half of it, and a
// running one (statelock.ErrLocked) is not written under.
func UpdateKeyringOffline(dir string, f func(*keys.Keyring) (*keys.Keyring, bool, error)) (*keys.Keyring, error) {
	path := KeyringPath(dir)
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("%w (is %s a MOM state directory?)", err, dir) // and no lock file left in it
	}
	lock, err := statelock.Acquire(dir)
	if err != nil {
		return nil, err
	}
	defer lock.Release()
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

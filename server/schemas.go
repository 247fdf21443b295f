package server

import (
	"fmt"

	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/rotation"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// The server's loaders' decoders of its JSON state files, registered with
// the inspection (store.RegisterSchema; deny.json's is in denystore.go):
// a file that is JSON but not what the start decodes (an unknown field, a
// wrong type, an entry that does not parse, a format this version does
// not read) is Damaged, so `state check` says what the start then does.
// identity.json, keyring.json and state.json damaged refuse the start, as
// the start's own decode would; rotation.json damaged is lost, and the
// start begins a new key rotation (rotor.loadStore). A journal that
// follows the file (a fold wrote it) does not hide it.
func init() {
	store.RegisterSchema(statecheck.RoleServer, identityFile, checkIdentityFile)
	store.RegisterSchema(statecheck.RoleServer, keyringFile, checkKeyringFile)
	store.RegisterSchema(statecheck.RoleServer, stateFile, checkStateFile)
	store.RegisterSchema(statecheck.RoleServer, rotationFile, checkRotationFile)
}

// checkIdentityFile is open's decoding of identity.json
// (keystore.LoadIdentity).
func checkIdentityFile(data []byte) error {
	_, err := keys.DecodeIdentity(data)
	return err
}

// checkKeyringFile is open's decoding of keyring.json
// (keystore.LoadKeyring) and its demand for an active key.
func checkKeyringFile(data []byte) error {
	ring, err := keys.DecodeKeyring(data)
	if err != nil {
		return err
	}
	return requireActive(ring)
}

// requireActive refuses a server keyring without an active key: the
// server seals with it.
func requireActive(ring *keys.Keyring) error {
	if ring.Active() == nil {
		return keys.ErrNoActive
	}
	return nil
}

// checkStateFile is loadState's decoding of state.json (store.LoadJSON
// decodes with strictjson.Decode) and open's building of the registry
// from it: a snapshot the server never writes (a record that does not
// parse) is damaged whatever its journal holds.
func checkStateFile(data []byte) error {
	var p persisted
	if err := strictjson.Decode(data, &p); err != nil {
		return err
	}
	if err := checkStateFormat(p); err != nil {
		return err
	}
	_, err := newRegistry(p)
	return err
}

// checkStateFormat refuses a state.json of a format this version does not
// read.
func checkStateFormat(p persisted) error {
	if p.Format != 1 {
		return fmt.Errorf("unsupported format %d", p.Format)
	}
	return nil
}

// checkRotationFile is loadRotation's decoding of rotation.json.
func checkRotationFile(data []byte) error {
	_, err := rotation.DecodeRecord(data)
	return err
}

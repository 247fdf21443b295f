package mom

import (
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/keys"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// The MOM's loaders' decoders of its JSON state files, registered with
// the inspection (store.RegisterSchema; deny.json's is in deny.go): a
// file that is JSON but not what the start decodes (an unknown field, a
// wrong type, an entry that does not parse, a format this version does
// not read) is Damaged, so `state check` says what the start then does:
// identity.json and mom.json damaged refuse the start, as the start's own
// decode would; keyring.json, legacy.json, jobs.json and sessions.json
// damaged are recovered from by the verdict's step (keys fetched again,
// upgraded set held, jobs dropped, sealed-session state held), and their
// loaders do not read them then.
func init() {
	store.RegisterSchema(statecheck.RoleMom, identityFile, checkIdentityFile)
	store.RegisterSchema(statecheck.RoleMom, keyringFile, checkKeyringFile)
	store.RegisterSchema(statecheck.RoleMom, momFile, checkEnrollmentFile)
	store.RegisterSchema(statecheck.RoleMom, legacyFile, checkLegacyFile)
	store.RegisterSchema(statecheck.RoleMom, jobsFile, checkJobsFile)
	store.RegisterSchema(statecheck.RoleMom, sessionsFile, checkSessionsFile)
}

// checkIdentityFile is open's decoding of identity.json
// (keystore.LoadIdentity in loadOrCreateIdentity).
func checkIdentityFile(data []byte) error {
	_, err := keys.DecodeIdentity(data)
	return err
}

// checkKeyringFile is open's decoding of keyring.json
// (keystore.LoadKeyring).
func checkKeyringFile(data []byte) error {
	_, err := keys.DecodeKeyring(data)
	return err
}

// checkEnrollmentFile is loadEnrollment's decoding of mom.json
// (store.LoadJSON decodes with strictjson.Decode).
func checkEnrollmentFile(data []byte) error {
	var e enrollment
	if err := strictjson.Decode(data, &e); err != nil {
		return err
	}
	return e.check()
}

// checkLegacyFile is initLegacy's decoding of legacy.json.
func checkLegacyFile(data []byte) error {
	_, err := decodeLegacyFile(data)
	return err
}

// checkJobsFile is loadJobs's decoding of jobs.json.
func checkJobsFile(data []byte) error {
	_, err := decodeJobs(data)
	return err
}

// checkSessionsFile is loadSessions's decoding of sessions.json
// (store.LoadJSON decodes with strictjson.Decode).
func checkSessionsFile(data []byte) error {
	var st sessionsState
	if err := strictjson.Decode(data, &st); err != nil {
		return err
	}
	_, err := decodeSessions(st)
	return err
}

package store

import "github.com/momgate/momgate/statecheck"

// A schema is what a daemon's loader refuses in a JSON state file of its
// role beyond its not being one strict JSON value: an unknown field, an
// entry that does not parse. Without it the inspection would find such a
// file whole ("start") and the loader would then refuse the start, or the
// other way round; with it the inspection reports the file Damaged, so
// `state check` and the daemon take the same documented step. The
// daemons' packages register theirs at init.
type schemaKey struct {
	role statecheck.Role
	name string
}

var schemas = map[schemaKey]func(data []byte) error{}

// RegisterSchema makes check, the strict decoder a daemon of role loads
// the JSON state file name with, part of its inspection. Call it from an
// init function only.
func RegisterSchema(role statecheck.Role, name string, check func(data []byte) error) {
	schemas[schemaKey{role, name}] = check
}

// checkSchema runs the schema registered for name, if any.
func checkSchema(role statecheck.Role, name string, data []byte) error {
	if check := schemas[schemaKey{role, name}]; check != nil {
		return check(data)
	}
	return nil
}

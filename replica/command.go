package replica

import "fmt"

// Op names a command in the encoding; values are never reused.
type Op uint8

// Operation codes 1 to 12 are retired. They were the per-operation
// commands of the first design (create node, enroll node, delete node,
// set node address, set upgraded, set server, prune tokens, rotation step,
// lift deny, create, join and delete member), which no server ever
// proposed: a server's writes replicate as OpStateRecords (docs/HA.md
// section 12.1). Decode refuses a retired code as ErrBadCommand, and no
// new operation takes one.
const (
	firstRetiredOp Op = 1
	lastRetiredOp  Op = 12
)

// retired reports whether op is a retired operation code.
func (o Op) retired() bool { return o >= firstRetiredOp && o <= lastRetiredOp }

var opNames = map[Op]string{
	OpStateRecords: "state_records",
}

// newCommand returns an empty command of op, or nil for an op this build
// does not read.
func newCommand(op Op) Command {
	switch op {
	case OpStateRecords:
		return &StateRecords{}
	}
	return nil
}

// String names the op as in logs.
func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	if o.retired() {
		return fmt.Sprintf("op(%d, retired)", uint8(o))
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Command is one write to the replicated state. A command carries every
// input its effect depends on (the leader decides, the command records the
// decision), so that applying it is deterministic on every member.
// StateRecords is the one command of this version.
type Command interface {
	// Op is the command's operation.
	Op() Op
	// check validates the fields; Encode and Decode call it.
	check() error
}

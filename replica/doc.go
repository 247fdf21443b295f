// Package replica is the replicated state machine of a momgate HA group
// (docs/HA.md), without the consensus library: the commands every write to
// the server's state becomes (a versioned encoding with a strict decoder),
// the StateMachine interface the server's state implements (apply,
// snapshot, restore), and the sectioned snapshot container. It does no
// I/O beyond the readers and writers it is handed.
package replica

// Package group holds the pure pieces of a momgate HA group (docs/HA.md):
// the join token that `create server` issues and `momgate-server join`
// redeems (one-time, expiring, pinning the group), the book of join records
// that the replicated state keeps, and the group CA whose member
// certificates authenticate and encrypt replication traffic (TLS 1.3, one
// port, ALPN momgate-raft/1 between members and momgate-join/1 for a
// joiner). It does no I/O: clock and randomness are parameters.
package group

// Package pbsauth is the momgate side of OpenPBS's authentication plugin
// (libauth_momgate.so): the three-step handshake PBS carries between two
// hosts (a PING swap, then the initiator's vouch for its local user), and
// the local protocol between the plugin and the host's own momgate daemon.
// docs/OPENPBS.md is the specification.
//
// It is pure core: no I/O. Keys, sealer, clock, randomness and the
// directory of nodes are parameters; internal/pbsgate serves it on the
// daemon's Unix socket.
package pbsauth

// Package admin is the local admin channel of the momgate daemons: a Unix
// socket in the daemon's state directory (mode 0600, peers checked with
// SO_PEERCRED) carrying newline-delimited JSON.
//
// Wire format. The client writes one Request per line and reads one
// Response per line; a connection may carry any number of requests, one at
// a time:
//
//	-> {"op":"create_node","args":{"name":"n1","mom":"127.0.0.2","port":15003}}
//	<- {"ok":true,"data":{"node":{...},"token":"...","token_expires":"..."}}
//	-> {"op":"delete_node","args":{"name":"n9"}}
//	<- {"ok":false,"error":"unknown node n9","code":"unknown_node"}
//
// A request line longer than MaxRequest bytes (excluding the newline) is
// answered with code "bad_request" and the connection is closed. An idle
// connection is closed after IdleTimeout.
//
// The result types in this package (NodeInfo, CreateNodeResult, ...) are
// both the wire payloads and the --json output of the CLIs: their JSON
// field names are part of the public interface and must stay stable.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

const (
	// MaxRequest is the largest request line, in bytes without the newline.
	MaxRequest = 64 << 10
	// MaxResponse is the largest response line a Client accepts.
	MaxResponse = 64 << 20
	// IdleTimeout is how long the server waits for the next request on a
	// connection before closing it.
	IdleTimeout = 30 * time.Second
	// SocketName is the admin socket's file name inside a state directory.
	SocketName = "admin.sock"
)

// SocketPath returns the admin socket path of the daemon whose state
// directory is stateDir.
func SocketPath(stateDir string) string { return filepath.Join(stateDir, SocketName) }

// Machine-readable error codes carried in Response.Code.
const (
	CodeUnknownNode   = "unknown_node"   // no node of that name
	CodeDuplicateNode = "duplicate_node" // node name or address already in use
	CodeUnknownKey    = "unknown_key"    // no cluster key with that id
	CodeBadValue      = "bad_value"      // an argument's value is invalid
	CodeBadRequest    = "bad_request"    // malformed request, unknown op or bad arguments
	CodeUnknownOp     = "unknown_op"     // the daemon does not implement the op
	CodeConflict      = "conflict"       // refused in the current state (e.g. rotation in progress)
	CodeForbidden     = "forbidden"      // peer not allowed on this socket
	CodeInternal      = "internal"       // daemon-side failure; see the daemon's log
)

// Request is one admin request: an operation name and its JSON arguments.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response answers one Request. OK is false exactly when Error is set;
// Code then says why, in machine-readable form.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Code  string          `json:"code,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// Handler executes one admin operation. Its result is marshalled into
// Response.Data; an error is reported with the code of the *Error it
// wraps, or CodeInternal. ctx is cancelled when the server shuts down.
type Handler func(ctx context.Context, op string, args json.RawMessage) (any, error)

// Error is an admin failure with a machine-readable code. Handlers return
// it (possibly wrapped) and Client.Call returns it for a non-OK response.
type Error struct {
	Code string // one of the Code* constants
	Msg  string // human-readable message
}

// Error returns the message, or the code when there is none.
func (e *Error) Error() string {
	if e.Msg == "" {
		return e.Code
	}
	return e.Msg
}

// Errorf returns an *Error with the given code and a fmt-formatted message.
func Errorf(code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Errorf(format, args...).Error()}
}

// CodeOf returns the code of the *Error in err's chain, CodeInternal for
// any other error, and "" for nil.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	return CodeInternal
}

// Peer is the verified identity of the process on the other end of an
// admin connection.
type Peer struct {
	UID, GID uint32
	PID      int32
}

type peerKey struct{}

// PeerFromContext returns the peer of the connection a Handler is serving.
func PeerFromContext(ctx context.Context) (Peer, bool) {
	p, ok := ctx.Value(peerKey{}).(Peer)
	return p, ok
}

package raftnet

import (
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
)

// Defaults of TransportConfig.
const (
	DefaultMaxPool = 3
	DefaultTimeout = 10 * time.Second
)

// TransportConfig configures NewTransport.
type TransportConfig struct {
	MaxPool int              // idle connections kept per peer
	Timeout time.Duration    // I/O deadline of one RPC (snapshots scale it)
	Now     func() time.Time // clock for last-contact times
	Logger  hclog.Logger     // raft's logger; nil logs nothing
}

// Transport is raft's NetworkTransport over a Layer, recording for each
// peer this member sends to the last successful contact and the peer's
// last log index as its replies report it: the leader's view of every
// follower, from which lag and "needs sync" follow. Pipelined replication
// is turned off (raft falls back to one request at a time, which HashiCorp
// measured to cost nothing without high latency), so every reply passes
// through AppendEntries here.
type Transport struct {
	*raft.NetworkTransport
	now func() time.Time

	mu    sync.Mutex
	peers map[raft.ServerID]PeerContact
}

// PeerContact is what this member last heard from one peer.
type PeerContact struct {
	// LastContact is when the peer last answered an RPC; zero: never.
	LastContact time.Time
	// LastLog is the peer's last log index, from its last reply.
	LastLog uint64
	// Failures counts RPCs that failed since the last success.
	Failures int
	// Snapshot is true while a snapshot is being sent to the peer.
	Snapshot bool
}

// NewTransport wraps layer in raft's NetworkTransport.
func NewTransport(layer *Layer, cfg TransportConfig) *Transport {
	if cfg.MaxPool <= 0 {
		cfg.MaxPool = DefaultMaxPool
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	nt := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: layer, MaxPool: cfg.MaxPool, Timeout: cfg.Timeout, Logger: cfg.Logger,
		MaxRPCsInFlight: 1,
	})
	return &Transport{NetworkTransport: nt, now: cfg.Now, peers: map[raft.ServerID]PeerContact{}}
}

func (t *Transport) record(id raft.ServerID, lastLog uint64, haveLog bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.peers[id]
	if err != nil {
		p.Failures++
	} else {
		p.LastContact, p.Failures = t.now(), 0
		if haveLog {
			p.LastLog = lastLog
		}
	}
	t.peers[id] = p
}

// AppendEntries sends entries (or a heartbeat) and records the reply.
func (t *Transport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := t.NetworkTransport.AppendEntries(id, target, args, resp)
	t.record(id, resp.LastLog, err == nil, err)
	return err
}

// AppendEntriesPipeline is refused, so that every reply is recorded.
func (t *Transport) AppendEntriesPipeline(raft.ServerID, raft.ServerAddress) (raft.AppendPipeline, error) {
	return nil, raft.ErrPipelineReplicationNotSupported
}

// RequestVote records the voter's reply as a contact.
func (t *Transport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	err := t.NetworkTransport.RequestVote(id, target, args, resp)
	t.record(id, 0, false, err)
	return err
}

// InstallSnapshot sends a snapshot, marking the peer as syncing meanwhile.
func (t *Transport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	t.mu.Lock()
	p := t.peers[id]
	p.Snapshot = true
	t.peers[id] = p
	t.mu.Unlock()
	err := t.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
	t.mu.Lock()
	p = t.peers[id]
	p.Snapshot = false
	t.peers[id] = p
	t.mu.Unlock()
	t.record(id, args.LastLogIndex, err == nil && resp.Success, err)
	return err
}

// Peers returns what this member last heard from each peer it sent to.
func (t *Transport) Peers() map[raft.ServerID]PeerContact {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[raft.ServerID]PeerContact, len(t.peers))
	for id, p := range t.peers {
		out[id] = p
	}
	return out
}

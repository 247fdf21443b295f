package server

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/momgate/momgate/group"
	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/raftnet"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/internal/store"
	"github.com/momgate/momgate/replica"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// The synchronize step (docs/HA.md section 4, as built): a joiner dials a
// member named by its join token over TLS (ALPN momgate-join/1), checks
// that the member's chain ends at the group CA the token pins, and sends
// one JSON line, joinRequest, with the token's id and secret. The leader
// redeems the token (at most once across the group: the redemption is
// committed before anything is sent), and answers joinGrant: the group's
// identity and CA and the state files as of now. The joiner writes them,
// starts its member and says joinReady; the leader adds it to the raft
// configuration (voter, or standby) and answers joinAdded. From then on
// raft brings it up to date (a snapshot, then the log).

// ErrHasState: join refuses a directory that holds server state unless
// forced.
var ErrHasState = errors.New("state directory holds server state")

// DefaultJoinTTL is the lifetime of a join token.
const DefaultJoinTTL = time.Hour

// maxJoinMessage bounds one message of the join exchange (the state files
// of 100,000 nodes are about 40 MB).
const maxJoinMessage = 256 << 20

type joinRequest struct {
	Member  string `json:"member"`
	TokenID string `json:"token_id"`
	Secret  string `json:"secret"`
	Control string `json:"control"`
}

type joinGrant struct {
	Error    string            `json:"error,omitempty"`
	Identity []byte            `json:"identity,omitempty"`
	CA       []byte            `json:"ca,omitempty"`
	Files    map[string][]byte `json:"files,omitempty"`
	Standby  bool              `json:"standby,omitempty"`
	Member   string            `json:"member,omitempty"` // the name create server gave
	Raft     string            `json:"raft,omitempty"`   // the replication address create server gave
}

type joinReady struct {
	Ready bool `json:"ready"`
}

type joinAdded struct {
	Error string `json:"error,omitempty"`
}

func writeJoin(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func readJoin(r *bufio.Reader, v any) error {
	line, err := r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return fmt.Errorf("join message over %d bytes", maxJoinMessage)
	}
	if err != nil {
		return fmt.Errorf("read join message: %w", err)
	}
	return strictjson.Decode(line, v)
}

// createServer is create server on the leader: a member to be, with its
// join token, committed.
func (g *groupRunner) createServer(a admin.CreateServerArgs) (*admin.CreateServerResult, error) {
	if g.srv.Load() == nil {
		return nil, g.notLeaderErr()
	}
	if err := group.CheckMemberName(a.Name); err != nil {
		return nil, admin.Errorf(admin.CodeBadValue, "%v", err)
	}
	if err := group.CheckAddr(a.Address); err != nil {
		return nil, admin.Errorf(admin.CodeBadValue, "Address=%s: %v", a.Address, err)
	}
	g.joinMu.Lock()
	defer g.joinMu.Unlock()
	if _, ok := g.state.member(a.Name); ok {
		return nil, admin.Errorf(admin.CodeConflict, "member %s already exists", a.Name)
	}
	ca, err := loadGroupCA(g.gc.Server.StateDir)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, m := range g.state.Members() {
		if m.Join == nil || m.Join.Used {
			addrs = append(addrs, m.Raft)
		}
	}
	if len(addrs) > group.MaxJoinAddrs {
		addrs = addrs[:group.MaxJoinAddrs]
	}
	tok, rec, err := group.IssueJoinToken(rand.Reader, g.gc.Server.Now(), DefaultJoinTTL, a.Name, a.Address, ca.Public(), addrs)
	if err != nil {
		return nil, err
	}
	mr := memberRecord{Name: a.Name, Raft: a.Address, Control: a.Control, Standby: a.Standby, Join: &rec}
	if err := g.commitMember(mr); err != nil {
		return nil, err
	}
	g.log.WithField("new_member", a.Name).WithField("address", a.Address).Info("member created: waiting for it to join")
	return &admin.CreateServerResult{Name: a.Name, Token: tok, TokenExpires: rec.Expires}, nil
}

// deleteServer is delete server on the leader. A member that was removed
// on record but is still in the raft configuration (a removal cut short)
// is removed again.
func (g *groupRunner) deleteServer(a admin.ServerArgs) (*admin.MemberInfo, error) {
	if g.srv.Load() == nil {
		return nil, g.notLeaderErr()
	}
	g.joinMu.Lock()
	defer g.joinMu.Unlock()
	rec, ok := g.state.member(a.Name)
	if !ok && !(g.state.removedMember(a.Name) && g.m.InConfiguration(a.Name)) {
		return nil, admin.Errorf(admin.CodeBadValue, "unknown member %s", a.Name)
	}
	if !ok {
		rec = memberRecord{Name: a.Name}
	}
	if a.Name == g.gc.Member {
		return g.deleteSelf(rec)
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.gc.CommitTimeout)
	defer cancel()
	if err := g.m.Remove(ctx, a.Name); err != nil && !strings.Contains(err.Error(), "unknown") {
		return nil, err
	}
	if err := g.commitRemoved(rec); err != nil {
		return nil, err
	}
	g.log.WithField("removed_member", a.Name).Info("member removed from the group")
	return &admin.MemberInfo{Name: rec.Name, Address: rec.Control, Replication: rec.Raft}, nil
}

// deleteSelf is delete server of the leader itself: the removal is put on
// record while this member can still commit, then the member leaves the
// raft configuration and steps down once that has committed; the other
// voters elect a leader among themselves. The last voter is not deleted:
// a group needs one.
func (g *groupRunner) deleteSelf(rec memberRecord) (*admin.MemberInfo, error) {
	if g.m.OtherVoters() == 0 {
		return nil, admin.Errorf(admin.CodeConflict, "%s is the group's only voter: a group cannot delete its last voter "+
			"(create another member first, or stop this server for good)", rec.Name)
	}
	if err := g.commitRemoved(rec); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.gc.CommitTimeout)
	defer cancel()
	if err := g.m.Remove(ctx, rec.Name); err != nil {
		return nil, fmt.Errorf("removal of %s from the raft configuration not confirmed (%w): run delete server %s again on the leader", rec.Name, err, rec.Name)
	}
	g.log.WithField("removed_member", rec.Name).Warn("this member deleted itself from the group and no longer leads: stop it; " +
		"the other members elect a leader")
	return &admin.MemberInfo{Name: rec.Name, Address: rec.Control, Replication: rec.Raft}, nil
}

// commitRemoved puts a member's removal on record (memberRecord.Removed).
func (g *groupRunner) commitRemoved(rec memberRecord) error {
	rec.Removed, rec.Join = true, nil
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return g.commit("delete server "+rec.Name, []replica.StateRecord{{Kind: replica.RecordMember, Key: rec.Name, Value: raw}})
}

func (g *groupRunner) commitMember(mr memberRecord) error {
	raw, err := json.Marshal(mr)
	if err != nil {
		return err
	}
	return g.commit("member "+mr.Name, []replica.StateRecord{{Kind: replica.RecordMember, Key: mr.Name, Value: raw}})
}

func (g *groupRunner) notLeaderErr() error {
	name, ap, ok := g.leaderControl()
	if !ok && name == "" {
		return admin.Errorf(admin.CodeNotLeader, "%v: this member (%s) does not lead the group and no leader is known (an election, or no quorum)", ErrNotLeader, g.gc.Member)
	}
	return admin.Errorf(admin.CodeNotLeader, "%v: this member (%s) does not lead the group; %s leads (control address %s): run momgate-qmgr on that host", ErrNotLeader, g.gc.Member, name, ap)
}

// serveJoin answers one joiner (raftnet.Config.OnJoin).
func (g *groupRunner) serveJoin(ctx context.Context, c *tls.Conn) {
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	r := bufio.NewReaderSize(c, maxJoinMessage)
	var req joinRequest
	if err := readJoin(r, &req); err != nil {
		g.log.WithError(err).Warn("join: bad request")
		return
	}
	grant, rec, err := g.grantJoin(req)
	if err != nil {
		g.log.WithError(err).WithField("joiner", req.Member).Warn("join refused")
		_ = writeJoin(c, joinGrant{Error: err.Error()})
		return
	}
	if err := writeJoin(c, grant); err != nil {
		return
	}
	var ready joinReady
	if err := readJoin(r, &ready); err != nil || !ready.Ready {
		g.log.WithField("joiner", req.Member).Warn("join: the joiner did not start its member")
		return
	}
	actx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if cur, ok := g.state.member(rec.Name); ok {
		rec.Standby = cur.Standby // set server NAME standby= may have run since the grant
	}
	if rec.Standby {
		err = g.m.AddStandby(actx, rec.Name, rec.Raft)
	} else {
		err = g.m.AddVoter(actx, rec.Name, rec.Raft)
	}
	out := joinAdded{}
	if err != nil {
		out.Error = err.Error()
		g.log.WithError(err).WithField("joiner", req.Member).Error("join: adding the member to the group failed")
	} else {
		g.log.WithField("joiner", req.Member).WithField("standby", rec.Standby).Info("member joined the group")
	}
	_ = writeJoin(c, out)
}

// grantJoin redeems the joiner's token (committed) and collects what it
// receives.
func (g *groupRunner) grantJoin(req joinRequest) (joinGrant, memberRecord, error) {
	if g.srv.Load() == nil {
		return joinGrant{}, memberRecord{}, g.notLeaderErr()
	}
	g.joinMu.Lock()
	defer g.joinMu.Unlock()
	var id [16]byte
	var secret [32]byte
	if b, err := hex.DecodeString(req.TokenID); err != nil || len(b) != 16 {
		return joinGrant{}, memberRecord{}, fmt.Errorf("%w: token id", group.ErrJoinUnknown)
	} else {
		copy(id[:], b)
	}
	var rec memberRecord
	found := false
	for _, m := range g.state.Members() {
		if m.Join != nil && m.Join.ID == id && (req.Member == "" || req.Member == m.Name) {
			rec, found = m, true
		}
	}
	if !found {
		return joinGrant{}, rec, fmt.Errorf("%w: no member waits to join with this token", group.ErrJoinUnknown)
	}
	if b, err := hex.DecodeString(req.Secret); err != nil || len(b) != 32 {
		return joinGrant{}, rec, group.ErrJoinSecret
	} else {
		copy(secret[:], b)
	}
	book := group.NewJoinBook()
	if err := book.Add(*rec.Join); err != nil {
		return joinGrant{}, rec, err
	}
	used, err := book.Redeem(id, group.HashSecret(secret), g.gc.Server.Now())
	if err != nil {
		return joinGrant{}, rec, err
	}
	rec.Join = &used
	if req.Control != "" {
		rec.Control = req.Control
	}
	if err := g.commitMember(rec); err != nil { // at most once across the group
		return joinGrant{}, rec, err
	}
	dir := g.gc.Server.StateDir
	ident, err := os.ReadFile(filepath.Join(dir, identityFile))
	if err != nil {
		return joinGrant{}, rec, err
	}
	caData, err := os.ReadFile(filepath.Join(dir, groupCAFile))
	if err != nil {
		return joinGrant{}, rec, err
	}
	snap, _ := g.state.Snapshot()
	secs, err := snap.(*groupSnapshot).sections()
	if err != nil {
		return joinGrant{}, rec, err
	}
	files := map[string][]byte{}
	for _, s := range secs {
		if s.Name != membersSection {
			files[s.Name] = s.Data
		}
	}
	return joinGrant{Identity: ident, CA: caData, Files: files, Standby: rec.Standby, Member: rec.Name, Raft: rec.Raft}, rec, nil
}

// moveStateAside refuses a directory that holds server state or a group
// member's files (ErrHasState, naming --force), or with force moves them
// into a backup directory beside them first, telling backup its path. cmd
// and replaces say what is about to happen, for the refusal.
func moveStateAside(dir, cmd, replaces string, force bool, now time.Time, backup func(string)) error {
	found := stateFilesIn(dir)
	for _, f := range []string{raftDirName, groupCAFile} {
		if _, err := os.Lstat(filepath.Join(dir, f)); !errors.Is(err, fs.ErrNotExist) {
			found = append(found, f)
		}
	}
	if len(found) == 0 {
		return nil
	}
	if !force {
		return fmt.Errorf("%s holds %s: %w: %s. Use --force to %s anyway "+
			"(the files are first moved into a backup directory beside them)", dir, strings.Join(found, ", "), ErrHasState, replaces, cmd)
	}
	b, err := backUp(dir, found, now)
	if err != nil {
		return err
	}
	backup(b)
	return nil
}

// JoinConfig configures Join.
type JoinConfig struct {
	Group GroupConfig
	Token string
	// Force joins on a directory that holds server state: it is first
	// moved into STATE_DIR/backup-UTCSTAMP/.
	Force bool
}

// Join is momgate-server join: it redeems the token at a member of the
// group, receives the group's identity, CA and state, writes them into the
// state directory and then runs as a member (RunGroup) until ctx ends. It
// returns the backup directory it made ("" if none) through backup.
func Join(ctx context.Context, jc JoinConfig, backup func(string)) error {
	gc := jc.Group
	dir := gc.Server.StateDir
	tok, err := group.ParseJoinToken(jc.Token)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if err := moveStateAside(dir, "join", "join replaces it with the group's state", jc.Force, time.Now(), backup); err != nil {
		return err
	}
	req := joinRequest{TokenID: hex.EncodeToString(tok.ID[:]), Secret: hex.EncodeToString(tok.Secret[:]), Control: gc.Server.Listen}
	conn, r, grant, err := redeemJoin(ctx, tok, req)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := writeJoinedState(dir, grant); err != nil {
		return err
	}
	gc.Member = grant.Member
	if gc.ReplicationListen == "" {
		gc.ReplicationListen = grant.Raft
	}
	gc.afterOpen = func() error {
		if err := writeJoin(conn, joinReady{Ready: true}); err != nil {
			return err
		}
		var added joinAdded
		if err := readJoin(r, &added); err != nil {
			return err
		}
		if added.Error != "" {
			return fmt.Errorf("the group could not add this member: %s", added.Error)
		}
		gc.Server.Log.WithField("member", gc.Member).Info("joined the group: catching up from the leader")
		return nil
	}
	return RunGroup(ctx, gc)
}

// redeemJoin tries the members of the token in order until the leader
// answers (a follower refuses with not_leader; the leader may have moved
// since the token was issued), in at most three rounds.
func redeemJoin(ctx context.Context, tok group.JoinToken, req joinRequest) (*tls.Conn, *bufio.Reader, joinGrant, error) {
	var lastErr error
	for round := 0; round < 3; round++ {
		for _, a := range tok.Addrs {
			dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			c, caPub, err := raftnet.DialJoin(dctx, a, tok.GroupFP, time.Now)
			cancel()
			if err != nil {
				lastErr = err
				continue
			}
			if err := tok.CheckGroup(caPub); err != nil {
				c.Close()
				return nil, nil, joinGrant{}, err
			}
			r := bufio.NewReaderSize(c, maxJoinMessage)
			var grant joinGrant
			if err := writeJoin(c, req); err == nil {
				err = readJoin(r, &grant)
			}
			switch {
			case err != nil:
				lastErr = err
			case grant.Error == "":
				return c, r, grant, nil
			case strings.Contains(grant.Error, ErrNotLeader.Error()):
				lastErr = fmt.Errorf("%s: %s", a, grant.Error)
			default:
				c.Close()
				return nil, nil, joinGrant{}, fmt.Errorf("join refused by the group: %s", grant.Error)
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
			return nil, nil, joinGrant{}, ctx.Err()
		case <-time.After(time.Second): // an election may be under way
		}
	}
	return nil, nil, joinGrant{}, fmt.Errorf("join: no member of the token led the group: %w", lastErr)
}

// writeJoinedState writes what a joiner received as a server state
// directory: identity, group CA, the state files and the manifest; raft/
// is made empty (the leader sends the state).
func writeJoinedState(dir string, grant joinGrant) error {
	if _, err := group.DecodeCA(grant.CA); err != nil {
		return fmt.Errorf("join: the group CA received: %w", err)
	}
	write := func(name string, data []byte) error {
		return statefile.WriteAtomic(filepath.Join(dir, name), data, 0o600)
	}
	if err := write(identityFile, grant.Identity); err != nil {
		return err
	}
	if err := write(groupCAFile, grant.CA); err != nil {
		return err
	}
	var names []string
	for _, n := range append([]string{stateFile}, replicatedFiles...) {
		data, ok := grant.Files[n]
		if !ok {
			continue
		}
		if err := checkJoinedFile(n, data); err != nil {
			return fmt.Errorf("join: %s received: %w", n, err)
		}
		if err := write(n, data); err != nil {
			return err
		}
		names = append(names, n)
	}
	names = append(names, identityFile)
	sort.Strings(names)
	if err := store.SaveManifest(dir, statecheck.RoleServer.String(), names); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Join(dir, raftDirName), 0o700)
}

func checkJoinedFile(name string, data []byte) error {
	if name == stateFile {
		var p persisted
		if err := strictjson.Decode(data, &p); err != nil {
			return err
		}
		_, err := newRegistry(p)
		return err
	}
	return checkFile(name, data)
}

package mom

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/internal/swap"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/proto"
	"github.com/momgate/momgate/strictjson"
)

// jobsFile persists the jobs this MOM is mother superior of.
const jobsFile = "jobs.json"

// Limits and defaults of jobs.
const (
	DefaultJobInterval = 100 * time.Millisecond
	DefaultJobBudget   = 5 * time.Second
	MinJobInterval     = 10 * time.Millisecond
	MaxJobInterval     = time.Hour
	MaxJobBudget       = time.Hour
	MaxJobs            = 256
	MaxSisters         = 64
	maxSisterJobs      = 4096 // jobs a sister remembers being joined to
	maxJobsFile        = 4 << 20
)

// Admin operations of the MOM's job workload.
const (
	OpJobStart = "job_start" // JobStartArgs -> JobInfo
	OpJobList  = "job_list"  // no args -> []JobInfo
	OpJobStop  = "job_stop"  // JobArgs -> JobInfo (the job as it stopped)
)

// JobStartArgs are the arguments of OpJobStart. Interval and Budget are Go
// durations ("100ms"); empty means the default.
type JobStartArgs struct {
	Name     string   `json:"name"`
	Sisters  []string `json:"sisters"`
	Interval string   `json:"interval,omitempty"`
	Budget   string   `json:"budget,omitempty"`
}

// JobArgs name a job.
type JobArgs struct {
	Name string `json:"name"`
}

// SisterInfo is one sister of a job, as its mother superior sees it.
type SisterInfo struct {
	Name         string `json:"name"`
	Addr         string `json:"addr"`      // IM address last used, "" before the first lookup
	Protocol     string `json:"protocol"`  // "v1" or "v2": how the current connection was admitted
	Connected    bool   `json:"connected"` // an admitted connection is open
	PollsOK      uint64 `json:"polls_ok"`
	PollsFailed  uint64 `json:"polls_failed"`
	Readmissions uint64 `json:"readmissions"` // admissions after the first (reconnects)
	Disruptions  uint64 `json:"disruptions"`  // failure streaks that outlasted the retry budget
	LastError    string `json:"last_error,omitempty"`
}

// JobInfo is a job and its counters (totals over its sisters).
type JobInfo struct {
	Name         string       `json:"name"`
	Interval     string       `json:"interval"`
	Budget       string       `json:"budget"`
	Started      time.Time    `json:"started"`
	PollsOK      uint64       `json:"polls_ok"`
	PollsFailed  uint64       `json:"polls_failed"`
	Readmissions uint64       `json:"readmissions"`
	Disruptions  uint64       `json:"disruptions"`
	Sisters      []SisterInfo `json:"sisters"`
}

var jobNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// jobRecord is a job as persisted in jobs.json.
type jobRecord struct {
	Name     string         `json:"name"`
	Interval string         `json:"interval"`
	Budget   string         `json:"budget"`
	Started  time.Time      `json:"started"`
	Sisters  []sisterRecord `json:"sisters"`
}

type sisterRecord struct {
	Name         string `json:"name"`
	PollsOK      uint64 `json:"polls_ok"`
	PollsFailed  uint64 `json:"polls_failed"`
	Readmissions uint64 `json:"readmissions"`
	Disruptions  uint64 `json:"disruptions"`
}

type jobsJSON struct {
	Format int         `json:"format"`
	Jobs   []jobRecord `json:"jobs"`
}

// job is a running job on its mother superior.
type job struct {
	name             string
	interval, budget time.Duration
	started          time.Time
	sisters          []*sisterRun
	cancel           context.CancelFunc
	wg               sync.WaitGroup
}

// sisterRun is the poll loop's state for one sister; guarded by mu.
type sisterRun struct {
	mu           sync.Mutex
	rec          sisterRecord
	addr         string
	protocol     string
	connected    bool
	lastErr      string
	failingSince time.Time
	disrupted    bool
	admitted     bool // admitted at least once
}

// jobTable holds the MOM's jobs; run starts and stops their loops.
type jobTable struct {
	mu      sync.Mutex
	jobs    map[string]*job
	ctx     context.Context // the MOM's run context once running; nil before
	dirty   chan struct{}   // a counter that matters changed: save soon
	sisters map[string]string
}

func checkJobSpec(name string, sisters []string, interval, budget time.Duration) error {
	if !jobNameRE.MatchString(name) {
		return fmt.Errorf("job name %q: use letters, digits, '.', '_', '-' (at most 64)", name)
	}
	if len(sisters) == 0 || len(sisters) > MaxSisters {
		return fmt.Errorf("job %s: %d sisters, want 1..%d", name, len(sisters), MaxSisters)
	}
	seen := map[string]bool{}
	for _, s := range sisters {
		if !jobNameRE.MatchString(s) {
			return fmt.Errorf("job %s: sister %q is not a node name", name, s)
		}
		if seen[s] {
			return fmt.Errorf("job %s: sister %s named twice", name, s)
		}
		seen[s] = true
	}
	if interval < MinJobInterval || interval > MaxJobInterval {
		return fmt.Errorf("job %s: interval %s out of range %s..%s", name, interval, MinJobInterval, MaxJobInterval)
	}
	if budget < interval || budget > MaxJobBudget {
		return fmt.Errorf("job %s: retry budget %s out of range %s (the interval)..%s", name, budget, interval, MaxJobBudget)
	}
	return nil
}

// decodeJobs strictly decodes and validates jobs.json.
func decodeJobs(b []byte) ([]jobRecord, error) {
	var j jobsJSON
	if err := strictjson.Decode(b, &j); err != nil {
		return nil, fmt.Errorf("decode jobs: %w", err)
	}
	if j.Format != 1 {
		return nil, fmt.Errorf("decode jobs: format %d", j.Format)
	}
	if len(j.Jobs) > MaxJobs {
		return nil, fmt.Errorf("decode jobs: %d jobs, limit %d", len(j.Jobs), MaxJobs)
	}
	names := map[string]bool{}
	for _, r := range j.Jobs {
		iv, err1 := time.ParseDuration(r.Interval)
		bu, err2 := time.ParseDuration(r.Budget)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("decode jobs: job %q: %w", r.Name, err)
		}
		var sisters []string
		for _, s := range r.Sisters {
			sisters = append(sisters, s.Name)
		}
		if err := checkJobSpec(r.Name, sisters, iv, bu); err != nil {
			return nil, fmt.Errorf("decode jobs: %w", err)
		}
		if names[r.Name] {
			return nil, fmt.Errorf("decode jobs: job %s twice", r.Name)
		}
		names[r.Name] = true
	}
	return j.Jobs, nil
}

// loadJobs reads jobs.json (absent: no jobs).
func (m *Mom) loadJobs() error {
	m.jobs = &jobTable{jobs: map[string]*job{}, dirty: make(chan struct{}, 1), sisters: map[string]string{}}
	path := filepath.Join(m.cfg.StateDir, jobsFile)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if fi.Size() > maxJobsFile {
		return fmt.Errorf("load %s: %d bytes, limit %d", path, fi.Size(), maxJobsFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	recs, err := decodeJobs(b)
	if err != nil {
		return fmt.Errorf("load %s: %w", path, err)
	}
	for _, r := range recs {
		iv, _ := time.ParseDuration(r.Interval)
		bu, _ := time.ParseDuration(r.Budget)
		j := &job{name: r.Name, interval: iv, budget: bu, started: r.Started}
		for _, s := range r.Sisters {
			j.sisters = append(j.sisters, &sisterRun{rec: s})
		}
		m.jobs.jobs[r.Name] = j
	}
	return nil
}

// saveJobs persists every job and its counters atomically.
func (m *Mom) saveJobs() error {
	m.jobs.mu.Lock()
	out := jobsJSON{Format: 1, Jobs: []jobRecord{}}
	for _, j := range m.jobs.sorted() {
		r := jobRecord{Name: j.name, Interval: j.interval.String(), Budget: j.budget.String(), Started: j.started}
		for _, s := range j.sisters {
			s.mu.Lock()
			r.Sisters = append(r.Sisters, s.rec)
			s.mu.Unlock()
		}
		out.Jobs = append(out.Jobs, r)
	}
	m.jobs.mu.Unlock()
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode jobs: %w", err)
	}
	if err := statefile.WriteAtomic(filepath.Join(m.cfg.StateDir, jobsFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("persist %s: %w", jobsFile, err)
	}
	return nil
}

func (t *jobTable) sorted() []*job {
	out := make([]*job, 0, len(t.jobs))
	for _, j := range t.jobs {
		out = append(out, j)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].name < out[b].name })
	return out
}

func (t *jobTable) markDirty() {
	select {
	case t.dirty <- struct{}{}:
	default:
	}
}

// runJobs runs the jobs' poll loops until ctx ends, saving counters once a
// second when they changed and at once after a re-admission or disruption.
func (m *Mom) runJobs(ctx context.Context) error {
	m.jobs.mu.Lock()
	m.jobs.ctx = ctx
	for _, j := range m.jobs.jobs {
		m.startJobLocked(ctx, j)
	}
	m.jobs.mu.Unlock()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.jobs.mu.Lock()
			running := m.jobs.sorted()
			m.jobs.mu.Unlock()
			for _, j := range running {
				j.cancel()
				j.wg.Wait()
			}
			if err := m.saveJobs(); err != nil {
				m.log.WithError(err).Warn("save jobs at shutdown")
			}
			return nil
		case <-t.C:
		case <-m.jobs.dirty:
		}
		if err := m.saveJobs(); err != nil {
			m.log.WithError(err).Warn("save jobs")
		}
	}
}

// startJobLocked starts one poll loop per sister; the caller holds jobs.mu.
func (m *Mom) startJobLocked(ctx context.Context, j *job) {
	jctx, cancel := context.WithCancel(ctx)
	j.cancel = cancel
	for _, s := range j.sisters {
		j.wg.Add(1)
		go func() {
			defer j.wg.Done()
			m.pollSister(jctx, j, s)
		}()
	}
}

// pollSister polls one sister every interval over an admitted connection,
// reconnecting (and re-admitting) when the connection breaks.
func (m *Mom) pollSister(ctx context.Context, j *job, s *sisterRun) {
	t := time.NewTicker(j.interval)
	defer t.Stop()
	var conn net.Conn
	var ver proto.Version
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	var seq uint64
	timeout := max(2*time.Second, 2*j.interval)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var err error
		for try := 0; try < 2; try++ {
			fresh := false
			if conn == nil {
				if conn, ver, err = m.joinSister(ctx, j, s, timeout); err != nil {
					break
				}
				fresh = true
			}
			seq++
			if err = pollOnce(conn, ver, j.name, seq, timeout); err == nil {
				break
			}
			conn.Close()
			conn = nil
			s.mu.Lock()
			s.connected = false
			s.mu.Unlock()
			if fresh || ctx.Err() != nil {
				break // a fresh connection failing is a real failure; an old one may just be stale
			}
		}
		if ctx.Err() != nil {
			return
		}
		m.recordPoll(j, s, err)
	}
}

// recordPoll counts one poll's outcome; a failure streak longer than the
// budget is one disruption.
func (m *Mom) recordPoll(j *job, s *sisterRun, err error) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.rec.PollsOK++
		if !s.failingSince.IsZero() {
			m.log.WithFields(logrus.Fields{"job": j.name, "sister": s.rec.Name, "after": now.Sub(s.failingSince).Round(time.Millisecond).String()}).Info("sister answers again")
		}
		s.failingSince, s.disrupted = time.Time{}, false
		return
	}
	s.rec.PollsFailed++
	s.lastErr = err.Error()
	if s.failingSince.IsZero() {
		s.failingSince = now
	}
	if !s.disrupted && now.Sub(s.failingSince) > j.budget {
		s.disrupted = true
		s.rec.Disruptions++
		m.log.WithError(err).WithFields(logrus.Fields{"job": j.name, "sister": s.rec.Name, "budget": j.budget.String()}).Warn("job disrupted: sister unreachable past the retry budget")
		m.jobs.markDirty()
	}
}

// joinSister looks the sister up, opens an admitted IM connection and joins
// it to the job.
func (m *Mom) joinSister(ctx context.Context, j *job, s *sisterRun, timeout time.Duration) (net.Conn, proto.Version, error) {
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr, err := m.lookup(lctx, s.rec.Name)
	if err != nil {
		return nil, 0, err
	}
	s.mu.Lock()
	s.addr = addr.String()
	s.mu.Unlock()
	c, ver, err := m.openIM(lctx, addr)
	if err != nil {
		return nil, 0, err
	}
	mother := m.nodeName()
	if err := writeIM(c, &proto.IMJoin{Ver: ver, Job: j.name, Mother: mother}, timeout); err != nil {
		c.Close()
		return nil, 0, err
	}
	if _, err := readIMReply(c, ver, j.name, 0, timeout); err != nil {
		c.Close()
		return nil, 0, fmt.Errorf("join %s: %w", s.rec.Name, err)
	}
	s.mu.Lock()
	if s.admitted {
		s.rec.Readmissions++
		m.jobs.markDirty()
	}
	s.admitted, s.connected, s.protocol = true, true, fmt.Sprintf("v%d", ver)
	s.mu.Unlock()
	return c, ver, nil
}

// nodeName is this MOM's node name, or its address before it knows it.
func (m *Mom) nodeName() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.enrolled != nil {
		return m.enrolled.Name
	}
	return m.addr.Addr().String()
}

// openIM opens an admitted IM connection to a sister: the highest version
// both ends allow, PING first when this MOM may, falling back to v1 only
// per migration.MayFallback. A v1 connection is admitted (or refused) by
// the sister on its first IM frame.
func (m *Mom) openIM(ctx context.Context, addr netip.AddrPort) (net.Conn, proto.Version, error) {
	m.lg.mu.Lock()
	p := m.effectiveLocked()
	peerUpgraded := m.lg.upgraded.Contains(proto.AddrFrom(addr.Addr()))
	m.lg.mu.Unlock()
	attempts := migration.Attempts(p, m.currentSealer() != nil)
	if len(attempts) == 0 {
		return nil, 0, fmt.Errorf("this MOM speaks %s but holds no cluster key yet", p)
	}
	var last error
	for _, v := range attempts {
		if v == proto.V1 {
			c, err := m.dial(ctx, addr.String())
			if err != nil {
				return nil, 0, fmt.Errorf("connect to %s: %w", addr, err)
			}
			return c, proto.V1, nil
		}
		res, c := m.PingSister(ctx, addr.String())
		if c != nil {
			return c, proto.V2, nil
		}
		last = fmt.Errorf("PING swap with %s: %s: %s", addr, res.Reason, res.Error)
		if !migration.MayFallback(p, peerUpgraded, res.Code == swap.CodeVersion) {
			return nil, 0, last
		}
	}
	return nil, 0, last
}

func writeIM(c net.Conn, msg proto.Message, timeout time.Duration) error {
	if err := c.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	return proto.WriteFrame(c, msg)
}

// readIMReply reads the IMReply for job and seq; a Reject becomes a
// *swap.RejectError.
func readIMReply(c net.Conn, ver proto.Version, jobName string, seq uint64, timeout time.Duration) (*proto.IMReply, error) {
	if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	frame, err := proto.ReadFrameLimit(c, nil, maxIMFrame)
	if err != nil {
		return nil, fmt.Errorf("read IM reply: %w", err)
	}
	msg, err := proto.Unmarshal(frame)
	if err != nil {
		return nil, fmt.Errorf("decode IM reply: %w", err)
	}
	switch r := msg.(type) {
	case *proto.Reject:
		return nil, &swap.RejectError{Code: r.Code, Reason: r.Reason}
	case *proto.IMReply:
		switch {
		case r.Ver != ver:
			return nil, fmt.Errorf("IM reply is v%d on a v%d connection", r.Ver, ver)
		case r.Job != jobName || r.Seq != seq:
			return nil, fmt.Errorf("IM reply for %s/%d, expected %s/%d", r.Job, r.Seq, jobName, seq)
		case r.Status != proto.IMOK:
			return nil, fmt.Errorf("sister answered status %d for job %s", r.Status, jobName)
		}
		return r, nil
	}
	return nil, fmt.Errorf("expected IMReply, got %s", msg.Type())
}

func pollOnce(c net.Conn, ver proto.Version, jobName string, seq uint64, timeout time.Duration) error {
	if err := writeIM(c, &proto.IMPoll{Ver: ver, Job: jobName, Seq: seq}, timeout); err != nil {
		return fmt.Errorf("send poll: %w", err)
	}
	_, err := readIMReply(c, ver, jobName, seq, timeout)
	return err
}

// serveAdmitted answers IM requests on an admitted connection (by PING for
// v2, by the list for v1) until it closes or the peer is revoked. Every
// frame must have the connection's version. first, if not nil, is a request
// already read.
func (m *Mom) serveAdmitted(c net.Conn, ver proto.Version, node proto.NodeID, src proto.Addr, first proto.Message) {
	buf := make([]byte, 0, 512)
	msg := first
	for {
		if msg == nil {
			if err := c.SetReadDeadline(time.Now().Add(5 * time.Minute)); err != nil {
				return
			}
			frame, err := proto.ReadFrameLimit(c, buf[:cap(buf)], maxIMFrame)
			if err != nil {
				return
			}
			if proto.Version(frame[2]) != ver {
				_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: swap.CodeVersion, Reason: fmt.Sprintf("v%d frame on a v%d connection", frame[2], ver)})
				return
			}
			if msg, err = proto.Unmarshal(frame); err != nil {
				_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: swap.CodeMalformed, Reason: err.Error()})
				return
			}
		}
		revoked := m.deny.Revoked(node, proto.Addr{}) // v2: the PING named the node; its key was checked
		if ver == proto.V1 {
			revoked = m.v1Revoked(src)
		}
		if revoked {
			_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: swap.CodeRevoked, Reason: "sender revoked"})
			return
		}
		var reply proto.Message
		switch v := msg.(type) {
		case *proto.IMJoin:
			m.jobs.join(v.Job, v.Mother)
			reply = &proto.IMReply{Ver: ver, Job: v.Job, Status: proto.IMOK}
		case *proto.IMPoll:
			st := proto.IMUnknownJob
			if m.jobs.joined(v.Job) {
				st = proto.IMOK
			}
			reply = &proto.IMReply{Ver: ver, Job: v.Job, Seq: v.Seq, Status: st}
		default:
			_ = proto.WriteFrame(c, &proto.Reject{Ver: ver, Code: swap.CodeMalformed, Reason: "unexpected " + msg.Type().String()})
			return
		}
		msg = nil
		if err := writeIM(c, reply, 10*time.Second); err != nil {
			return
		}
	}
}

// join records that this MOM is a sister of jobName.
func (t *jobTable) join(jobName, mother string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.sisters[jobName]; !ok && len(t.sisters) >= maxSisterJobs {
		for k := range t.sisters { // forget an arbitrary one: bounded memory
			delete(t.sisters, k)
			break
		}
	}
	t.sisters[jobName] = mother
}

func (t *jobTable) joined(jobName string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.sisters[jobName]
	return ok
}

func (j *job) info() JobInfo {
	ji := JobInfo{Name: j.name, Interval: j.interval.String(), Budget: j.budget.String(), Started: j.started, Sisters: []SisterInfo{}}
	for _, s := range j.sisters {
		s.mu.Lock()
		si := SisterInfo{Name: s.rec.Name, Addr: s.addr, Protocol: s.protocol, Connected: s.connected,
			PollsOK: s.rec.PollsOK, PollsFailed: s.rec.PollsFailed, Readmissions: s.rec.Readmissions,
			Disruptions: s.rec.Disruptions, LastError: s.lastErr}
		s.mu.Unlock()
		ji.PollsOK += si.PollsOK
		ji.PollsFailed += si.PollsFailed
		ji.Readmissions += si.Readmissions
		ji.Disruptions += si.Disruptions
		ji.Sisters = append(ji.Sisters, si)
	}
	return ji
}

// jobAdmin handles the job operations of the admin socket.
func (m *Mom) jobAdmin(op string, raw json.RawMessage) (res any, handled bool, err error) {
	switch op {
	case OpJobStart:
		var a JobStartArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, true, admin.Errorf(admin.CodeBadRequest, "bad arguments: %v", err)
		}
		res, err := m.startJob(a)
		return res, true, err
	case OpJobStop:
		var a JobArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, true, admin.Errorf(admin.CodeBadRequest, "bad arguments: %v", err)
		}
		res, err := m.stopJob(a.Name)
		return res, true, err
	case OpJobList:
		m.jobs.mu.Lock()
		out := []JobInfo{}
		for _, j := range m.jobs.sorted() {
			out = append(out, j.info())
		}
		m.jobs.mu.Unlock()
		return out, true, nil
	}
	return nil, false, nil
}

func (m *Mom) startJob(a JobStartArgs) (*JobInfo, error) {
	interval, budget := DefaultJobInterval, DefaultJobBudget
	var err error
	if a.Interval != "" {
		if interval, err = time.ParseDuration(a.Interval); err != nil {
			return nil, admin.Errorf(admin.CodeBadValue, "interval %q: not a duration (e.g. 100ms)", a.Interval)
		}
	}
	if a.Budget != "" {
		if budget, err = time.ParseDuration(a.Budget); err != nil {
			return nil, admin.Errorf(admin.CodeBadValue, "budget %q: not a duration (e.g. 5s)", a.Budget)
		}
	}
	if err := checkJobSpec(a.Name, a.Sisters, interval, budget); err != nil {
		return nil, admin.Errorf(admin.CodeBadValue, "%v", err)
	}
	j := &job{name: a.Name, interval: interval, budget: budget, started: m.cfg.Now().UTC().Truncate(time.Millisecond)}
	for _, s := range a.Sisters {
		j.sisters = append(j.sisters, &sisterRun{rec: sisterRecord{Name: s}})
	}
	m.jobs.mu.Lock()
	if m.jobs.jobs[a.Name] != nil {
		m.jobs.mu.Unlock()
		return nil, admin.Errorf(admin.CodeConflict, "job %s is already running", a.Name)
	}
	if len(m.jobs.jobs) >= MaxJobs {
		m.jobs.mu.Unlock()
		return nil, admin.Errorf(admin.CodeConflict, "%d jobs already running, the limit", MaxJobs)
	}
	m.jobs.jobs[a.Name] = j
	m.jobs.mu.Unlock()
	if err := m.saveJobs(); err != nil {
		m.jobs.mu.Lock()
		delete(m.jobs.jobs, a.Name)
		m.jobs.mu.Unlock()
		return nil, err
	}
	m.jobs.mu.Lock()
	if m.jobs.ctx != nil && m.jobs.ctx.Err() == nil {
		m.startJobLocked(m.jobs.ctx, j)
	}
	m.jobs.mu.Unlock()
	m.log.WithFields(logrus.Fields{"job": a.Name, "sisters": strings.Join(a.Sisters, ","), "interval": interval.String()}).Info("job started")
	info := j.info()
	return &info, nil
}

func (m *Mom) stopJob(name string) (*JobInfo, error) {
	m.jobs.mu.Lock()
	j := m.jobs.jobs[name]
	m.jobs.mu.Unlock()
	if j == nil {
		return nil, admin.Errorf(admin.CodeBadValue, "no job %q on this MOM", name)
	}
	if j.cancel != nil {
		j.cancel()
	}
	j.wg.Wait()
	m.jobs.mu.Lock()
	delete(m.jobs.jobs, name)
	m.jobs.mu.Unlock()
	if err := m.saveJobs(); err != nil {
		return nil, err
	}
	m.log.WithField("job", name).Info("job stopped")
	info := j.info()
	return &info, nil
}

// PrintJobStart starts a job on the MOM at dir and prints it.
func PrintJobStart(ctx context.Context, dir string, a JobStartArgs, w io.Writer, asJSON bool) error {
	var ji JobInfo
	if err := call(ctx, dir, OpJobStart, a, &ji); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, ji)
	}
	fmt.Fprintf(w, "job %s started: polling %s every %s (retry budget %s)\n", ji.Name, strings.Join(a.Sisters, ","), ji.Interval, ji.Budget)
	return nil
}

// PrintJobStop stops a job on the MOM at dir and prints its final counters.
func PrintJobStop(ctx context.Context, dir, name string, w io.Writer, asJSON bool) error {
	var ji JobInfo
	if err := call(ctx, dir, OpJobStop, JobArgs{Name: name}, &ji); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, ji)
	}
	fmt.Fprintf(w, "job %s stopped: %d polls ok, %d failed, %d re-admissions, %d disruptions\n",
		ji.Name, ji.PollsOK, ji.PollsFailed, ji.Readmissions, ji.Disruptions)
	return nil
}

// PrintJobs lists the jobs of the MOM at dir, one row per sister.
func PrintJobs(ctx context.Context, dir string, w io.Writer, asJSON bool) error {
	var jobs []JobInfo
	if err := call(ctx, dir, OpJobList, nil, &jobs); err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, jobs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tSISTER\tADDRESS\tPROTO\tCONNECTED\tPOLLS OK\tFAILED\tREADMITTED\tDISRUPTIONS\tLAST ERROR")
	for _, j := range jobs {
		for _, s := range j.Sisters {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%d\t%d\t%d\t%d\t%s\n", j.Name, s.Name, dash(s.Addr), dash(s.Protocol),
				s.Connected, s.PollsOK, s.PollsFailed, s.Readmissions, s.Disruptions, dash(s.LastError))
		}
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

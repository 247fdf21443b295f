package mom

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/admin"
)

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

var jobNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

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
	session      string  // protection of the current connection's session
	link         *imLink // the current connection, nil between connections
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

// list is `job list`: every job, by name.
func (t *jobTable) list() []admin.JobInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []admin.JobInfo{}
	for _, j := range t.sorted() {
		out = append(out, j.info())
	}
	return out
}

// sorted returns the jobs by name; the caller holds t.mu.
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
	var conn *imClient // reads for the connection's life: sealed sessions rekey between polls
	defer func() {
		if conn != nil {
			conn.close()
		}
		s.mu.Lock()
		s.link = nil
		s.mu.Unlock()
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
				if conn, err = m.joinSister(ctx, j, s, timeout); err != nil {
					break
				}
				fresh = true
			}
			seq++
			if err = conn.poll(j.name, seq, timeout); err == nil {
				break
			}
			conn.close()
			conn = nil
			s.mu.Lock()
			s.connected, s.link = false, nil
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
func (m *Mom) joinSister(ctx context.Context, j *job, s *sisterRun, timeout time.Duration) (*imClient, error) {
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	addr, err := m.lookup(lctx, s.rec.Name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.addr = addr.String()
	s.mu.Unlock()
	l, err := m.openIM(lctx, addr)
	if err != nil {
		return nil, err
	}
	c := m.newIMClient(l)
	if err := c.join(j.name, m.nodeName(), timeout); err != nil {
		c.close()
		return nil, fmt.Errorf("join %s: %w", s.rec.Name, err)
	}
	s.mu.Lock()
	if s.admitted {
		s.rec.Readmissions++
		m.jobs.markDirty()
	}
	s.admitted, s.connected, s.protocol = true, true, fmt.Sprintf("v%d", l.ver)
	s.session, s.link = l.link.Info().Protection.String(), l
	s.mu.Unlock()
	return c, nil
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

func (j *job) info() admin.JobInfo {
	ji := admin.JobInfo{Name: j.name, Interval: j.interval.String(), Budget: j.budget.String(), Started: j.started, Sisters: []admin.SisterInfo{}}
	for _, s := range j.sisters {
		s.mu.Lock()
		si := admin.SisterInfo{Name: s.rec.Name, Addr: s.addr, Protocol: s.protocol, Session: s.session, Connected: s.connected,
			PollsOK: s.rec.PollsOK, PollsFailed: s.rec.PollsFailed, Readmissions: s.rec.Readmissions,
			Disruptions: s.rec.Disruptions, LastError: s.lastErr}
		if s.link != nil {
			in := s.link.link.Info()
			si.KeyAge, si.Rekeys = in.KeyAge.Round(100*time.Millisecond).String(), in.Rekeys
		}
		s.mu.Unlock()
		ji.PollsOK += si.PollsOK
		ji.PollsFailed += si.PollsFailed
		ji.Readmissions += si.Readmissions
		ji.Disruptions += si.Disruptions
		ji.Sisters = append(ji.Sisters, si)
	}
	return ji
}

// startJob is `job start`: a new job, persisted, its poll loops running.
// Every sister must be a node the server knows (checkSisters).
func (m *Mom) startJob(ctx context.Context, a admin.JobStartArgs) (*admin.JobInfo, error) {
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
	if err := m.checkSisters(ctx, a.Name, a.Sisters); err != nil {
		return nil, err
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

// checkSisters looks every sister up (in parallel, as the poll loops will)
// and refuses the job if the server has no node of some name, listing
// them, or if some cannot be looked up now.
func (m *Mom) checkSisters(ctx context.Context, jobName string, sisters []string) error {
	errs := make([]error, len(sisters))
	var wg sync.WaitGroup
	for i, s := range sisters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.lookup(ctx, s)
		}()
	}
	wg.Wait()
	var unknown, unchecked []string
	var why error
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrUnknownSister):
			unknown = append(unknown, sisters[i])
		default:
			unchecked, why = append(unchecked, sisters[i]), err
		}
	}
	switch {
	case len(unknown) > 0:
		return admin.Errorf(admin.CodeUnknownNode, "job %s: unknown sister(s) %s: the server has no node of that name (momgate-qmgr nodes lists them)",
			jobName, strings.Join(unknown, ","))
	case len(unchecked) > 0:
		return admin.Errorf(admin.CodeConflict, "job %s: cannot check sister(s) %s: %v (momgate-mom status shows the server connection)",
			jobName, strings.Join(unchecked, ","), why)
	}
	return nil
}

// stopJob is `job stop`: the job's loops end and it is forgotten.
func (m *Mom) stopJob(name string) (*admin.JobInfo, error) {
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

package mom

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/momgate/momgate/internal/statefile"
	"github.com/momgate/momgate/statecheck"
	"github.com/momgate/momgate/strictjson"
)

// jobs.json: the jobs this MOM is mother superior of, with their
// counters, kept across restarts.

// jobsFile persists the jobs this MOM is mother superior of.
const jobsFile = "jobs.json"

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

// jobsFileSize refuses a jobs.json larger than maxJobsFile.
func jobsFileSize(n int64) error {
	if n > maxJobsFile {
		return fmt.Errorf("%d bytes, limit %d", n, maxJobsFile)
	}
	return nil
}

// decodeJobs strictly decodes and validates jobs.json.
func decodeJobs(b []byte) ([]jobRecord, error) {
	if err := jobsFileSize(int64(len(b))); err != nil {
		return nil, fmt.Errorf("decode jobs: %w", err)
	}
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
	if m.base.State.Has(statecheck.StepJobsDropped) {
		m.log.Error("state loss: jobs.json lost; starting without jobs (resubmit them)")
		return m.saveJobs()
	}
	path := filepath.Join(m.cfg.StateDir, jobsFile)
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	if err := jobsFileSize(fi.Size()); err != nil {
		return fmt.Errorf("load %s: %w", path, err)
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

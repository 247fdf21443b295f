package mom

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func jobsDoc(jobs ...jobRecord) []byte {
	b, _ := json.Marshal(jobsJSON{Format: 1, Jobs: jobs})
	return b
}

func rec(name string, sisters ...string) jobRecord {
	r := jobRecord{Name: name, Interval: "100ms", Budget: "5s", Started: time.Unix(1764000000, 0).UTC()}
	for _, s := range sisters {
		r.Sisters = append(r.Sisters, sisterRecord{Name: s, PollsOK: 3})
	}
	return r
}

func TestDecodeJobs(t *testing.T) {
	recs, err := decodeJobs(jobsDoc(rec("j1", "n2", "n3"), rec("j2", "n4")))
	if err != nil || len(recs) != 2 || recs[0].Sisters[1].Name != "n3" || recs[0].Sisters[0].PollsOK != 3 {
		t.Fatalf("decode: %+v %v", recs, err)
	}
	bad := map[string][]byte{
		"format":       []byte(`{"format":2,"jobs":[]}`),
		"unknown":      []byte(`{"format":1,"jobs":[],"x":1}`),
		"trailing":     []byte(`{"format":1,"jobs":[]}{}`),
		"duplicate":    jobsDoc(rec("j1", "n2"), rec("j1", "n3")),
		"no sisters":   jobsDoc(rec("j1")),
		"sister twice": jobsDoc(rec("j1", "n2", "n2")),
		"bad name":     jobsDoc(rec("-j", "n2")),
		"bad sister":   jobsDoc(rec("j1", "n 2")),
	}
	r := rec("j1", "n2")
	r.Interval = "1ns"
	bad["interval"] = jobsDoc(r)
	r = rec("j1", "n2")
	r.Budget = "10ms" // below the interval
	bad["budget"] = jobsDoc(r)
	r = rec("j1", "n2")
	r.Interval = "soon"
	bad["duration"] = jobsDoc(r)
	for name, b := range bad {
		if _, err := decodeJobs(b); err == nil {
			t.Errorf("%s: accepted %s", name, b)
		}
	}
}

func TestCheckJobSpec(t *testing.T) {
	many := make([]string, MaxSisters+1)
	for i := range many {
		many[i] = "n" + strings.Repeat("x", i%60+1)
	}
	if err := checkJobSpec("j", many, time.Second, time.Second); err == nil {
		t.Fatal("too many sisters accepted")
	}
	if err := checkJobSpec("j", []string{"n2"}, 100*time.Millisecond, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := checkJobSpec("j", []string{"n2"}, 2*time.Hour, 2*time.Hour); err == nil {
		t.Fatal("interval over the limit accepted")
	}
}

// FuzzDecodeJobs: jobs.json that decodes re-encodes to JSON that decodes
// to the same jobs.
func FuzzDecodeJobs(f *testing.F) {
	f.Add(jobsDoc(rec("j1", "n2", "n3")))
	f.Add([]byte(`{"format":1,"jobs":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		recs, err := decodeJobs(b)
		if err != nil {
			return
		}
		again, err := decodeJobs(jobsDoc(recs...))
		if err != nil || len(again) != len(recs) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/metrics"
)

func quietLog() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}

func scrapeServer(t *testing.T, addr net.Addr) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr.String() + metrics.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

func TestNewRefusesRemoteMetrics(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(), MetricsListen: "0.0.0.0:9464"})
	if !errors.Is(err, metrics.ErrNotLoopback) {
		t.Fatalf("want ErrNotLoopback, got %v", err)
	}
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(), MetricsListen: "0.0.0.0:9464", MetricsAllowRemote: true})
	if err != nil {
		t.Fatalf("with MetricsAllowRemote: %v", err)
	}
	s.base.Close()
}

func TestServerMetricsDefaultsAndHooks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog(), MetricsListen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	addr := s.MetricsAddr()
	if addr == nil {
		t.Fatal("no metrics address")
	}
	m := scrapeServer(t, addr)
	want := map[string]float64{
		`momgate_rotation_phase{phase="idle"}`:         1,
		`momgate_rotation_phase{phase="distributing"}`: 0, // the rotor's real phases
		`momgate_rotation_phase{phase="halted"}`:       0,
		`momgate_nodes_by_protocol{protocol="v2"}`:     0,
		`momgate_enrolled_nodes`:                       0,
		`momgate_legacy_pushes_total`:                  0,
		`momgate_legacy_push_bytes_total`:              0,
		`momgate_open_connections{channel="control"}`:  0,
		`momgate_mode{mode="ping"}`:                    1,
		`momgate_keys{state="active"}`:                 1,
		`momgate_admissions_total`:                     0,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if m["momgate_active_key_id"] == 0 {
		t.Error("active key id is 0 on an initialized server")
	}

	// An open, unauthenticated control connection is counted.
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for scrapeServer(t, addr)[`momgate_open_connections{channel="control"}`] != 1 {
		if time.Now().After(deadline) {
			t.Fatal("open control connection never counted")
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	c.Close()
	for scrapeServer(t, addr)[`momgate_open_connections{channel="control"}`] != 0 {
		if time.Now().After(deadline) {
			t.Fatal("closed control connection still counted")
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if c, err := net.Dial("tcp", addr.String()); err == nil {
		c.Close()
		t.Fatal("metrics still served after Run returned")
	}
}

func TestServerMetricHooks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "s")
	if _, err := Init(dir, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{StateDir: dir, Listen: "127.0.0.1:0", Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.base.Close()
	s.hooks = metricHooks{
		rotationPhase:   func() string { return "grace" },
		rotationPhases:  []string{"idle", "distribute", "grace"},
		nodesByProtocol: func() map[string]int { return map[string]int{"v1": 3, "v2": 4} },
		legacy:          func() (uint64, uint64) { return 7, 700 },
	}
	reg, err := metrics.NewRegistry(s.collectors()...)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "/" + l.GetValue()
			}
			switch {
			case m.Gauge != nil:
				got[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				got[key] = m.GetCounter().GetValue()
			}
		}
	}
	want := map[string]float64{
		"momgate_rotation_phase/grace":      1,
		"momgate_rotation_phase/idle":       0,
		"momgate_rotation_phase/distribute": 0,
		"momgate_nodes_by_protocol/v1":      3,
		"momgate_nodes_by_protocol/v2":      4,
		"momgate_legacy_pushes_total":       7,
		"momgate_legacy_push_bytes_total":   700,
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

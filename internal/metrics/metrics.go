// Package metrics serves the daemons' metrics in the Prometheus text format
// on an opt-in HTTP address, loopback only unless the administrator allows
// a remote one.
//
// The collectors here read the daemons' own counters and state at scrape
// time (prometheus.Collector implementations over snapshot functions), so
// no hot path of admission is instrumented twice: the audit log's exact
// counters are the source of truth for admissions and rejections.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/momgate/momgate/internal/audit"
	"github.com/momgate/momgate/reasons"
)

// Namespace prefixes every momgate metric.
const Namespace = "momgate"

// Path is the HTTP path of the metrics.
const Path = "/metrics"

// ErrNotLoopback is wrapped by CheckListen's refusal of a remote address.
var ErrNotLoopback = errors.New("metrics address is not a loopback address")

// shutdownTimeout bounds a scrape in flight at shutdown.
const shutdownTimeout = 5 * time.Second

// CheckListen validates a metrics listen address IP:PORT. Unless
// allowRemote, the IP must be a loopback address (127.0.0.0/8 or ::1, or
// the name localhost): metrics tell an attacker which nodes exist and
// which key is active, so they are not served to the network by accident.
// Port 0 picks a free port, which the daemon logs.
func CheckListen(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics address %q: want IP:PORT, such as 127.0.0.1:9464", addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("metrics address %q: port %q is not a number from 0 to 65535", addr, port)
	}
	if allowRemote {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.Unmap().IsLoopback() {
		what := "host " + strconv.Quote(host)
		if host == "" || (err == nil && ip.IsUnspecified()) {
			what = "every interface"
		}
		return fmt.Errorf("metrics address %q listens on %s: %w (use 127.0.0.1 or ::1, or allow it: --metrics-allow-remote, metrics-allow-remote = true)",
			addr, what, ErrNotLoopback)
	}
	return nil
}

// Listen checks addr with CheckListen and binds it.
func Listen(addr string, allowRemote bool) (net.Listener, error) {
	if err := CheckListen(addr, allowRemote); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listen %s: %w", addr, err)
	}
	return ln, nil
}

// NewRegistry returns a registry holding the Go runtime and process
// collectors and cs.
func NewRegistry(cs ...prometheus.Collector) (*prometheus.Registry, error) {
	reg := prometheus.NewRegistry()
	all := append([]prometheus.Collector{
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	}, cs...)
	for _, c := range all {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics collector: %w", err)
		}
	}
	return reg, nil
}

// Paths of the health endpoints, served beside Path.
const (
	HealthPath = "/healthz" // 200 while the process serves HTTP at all
	ReadyPath  = "/readyz"  // 200 when the daemon is ready, 503 and why not otherwise
)

// Handler returns the HTTP handler: g at Path; at HealthPath 200 "ok";
// at ReadyPath 200 "ready" when ready (nil: always) returns nil, else 503
// and its error; 404 elsewhere. The health endpoints answer GET and HEAD
// only.
func Handler(g prometheus.Gatherer, ready func() error, log logrus.FieldLogger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(Path, promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:      errorLog{log},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	mux.HandleFunc(HealthPath, func(w http.ResponseWriter, r *http.Request) {
		healthAnswer(w, r, http.StatusOK, "ok")
	})
	mux.HandleFunc(ReadyPath, func(w http.ResponseWriter, r *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				healthAnswer(w, r, http.StatusServiceUnavailable, "not ready: "+err.Error())
				return
			}
		}
		healthAnswer(w, r, http.StatusOK, "ready")
	})
	return mux
}

// healthAnswer writes a health endpoint's one-line plain-text answer.
func healthAnswer(w http.ResponseWriter, r *http.Request, code int, text string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, text+"\n")
	}
}

// errorLog adapts a logrus logger to promhttp's Println logger.
type errorLog struct{ log logrus.FieldLogger }

func (e errorLog) Println(v ...any) { e.log.Warn(append([]any{"metrics: "}, v...)...) }

// logWriter sends net/http's own error lines to logrus.
type logWriter struct{ log logrus.FieldLogger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Warn("metrics: " + strings.TrimSpace(string(p)))
	return len(p), nil
}

// Serve serves g and the health endpoints (Handler) on ln until ctx
// ends, then shuts the server down, waiting up to 5 s for scrapes in
// flight. It returns nil after a shutdown caused by ctx, and the error
// otherwise.
func Serve(ctx context.Context, ln net.Listener, g prometheus.Gatherer, ready func() error, log logrus.FieldLogger) error {
	srv := &http.Server{
		Handler:           Handler(g, ready, log),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          stdlog.New(logWriter{log}, "", 0),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.WithField("listen", ln.Addr().String()).Info("metrics listening")
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("metrics server shutdown: %w", err)
	}
	return nil
}

// Descriptions shared by the server's and the MOM's collectors.
var (
	admissionsDesc = prometheus.NewDesc(Namespace+"_admissions_total",
		"Admissions accepted on every channel (control, IM, enrollment), from the audit log's exact counters.", nil, nil)
	rejectionsDesc = prometheus.NewDesc(Namespace+"_rejections_total",
		rejectionsHelp(), []string{"reason"}, nil)
	suppressedDesc = prometheus.NewDesc(Namespace+"_audit_suppressed_total",
		"Audit lines not written because of the per-source rate limit (the counters still count them).", nil, nil)
	auditLinesDesc = prometheus.NewDesc(Namespace+"_audit_lines_total",
		"Audit lines written, aggregate lines included.", nil, nil)
	auditErrorsDesc = prometheus.NewDesc(Namespace+"_audit_write_errors_total",
		"Audit lines the audit output failed to take.", nil, nil)
)

// rejectionsHelp names every counted reason of the registry
// (docs/PROTOCOL.md section 4.10).
func rejectionsHelp() string {
	names := make([]string, 0, len(reasons.Counted()))
	for _, r := range reasons.Counted() {
		names = append(names, string(r))
	}
	return "Admissions rejected, by reason (" + strings.Join(names, ", ") + ")."
}

// AuditCollector exports an audit log's counters.
type AuditCollector struct {
	// Snapshot returns the counters; it is called once per scrape.
	Snapshot func() audit.Snapshot
}

// Describe implements prometheus.Collector.
func (a AuditCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{admissionsDesc, rejectionsDesc, suppressedDesc, auditLinesDesc, auditErrorsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (a AuditCollector) Collect(ch chan<- prometheus.Metric) {
	s := a.Snapshot()
	ch <- prometheus.MustNewConstMetric(admissionsDesc, prometheus.CounterValue, float64(s.Accepted))
	for reason, n := range s.Rejected {
		ch <- prometheus.MustNewConstMetric(rejectionsDesc, prometheus.CounterValue, float64(n), reason)
	}
	ch <- prometheus.MustNewConstMetric(suppressedDesc, prometheus.CounterValue, float64(s.Suppressed))
	ch <- prometheus.MustNewConstMetric(auditLinesDesc, prometheus.CounterValue, float64(s.Lines))
	ch <- prometheus.MustNewConstMetric(auditErrorsDesc, prometheus.CounterValue, float64(s.WriteErrors))
}

// Func is a metric whose value or values a function reads at scrape time.
// With no Label, Read must return one value under the key "".
type Func struct {
	desc  *prometheus.Desc
	label string
	typ   prometheus.ValueType
	read  func() map[string]float64
}

// NewGaugeFunc returns a gauge named momgate_NAME. With label != "", each
// key of read's map is a label value; otherwise read returns {"": value}.
func NewGaugeFunc(name, help, label string, read func() map[string]float64) *Func {
	return newFunc(name, help, label, prometheus.GaugeValue, read)
}

// NewCounterFunc is NewGaugeFunc for a counter; name should end in _total.
func NewCounterFunc(name, help, label string, read func() map[string]float64) *Func {
	return newFunc(name, help, label, prometheus.CounterValue, read)
}

func newFunc(name, help, label string, typ prometheus.ValueType, read func() map[string]float64) *Func {
	var labels []string
	if label != "" {
		labels = []string{label}
	}
	return &Func{desc: prometheus.NewDesc(Namespace+"_"+name, help, labels, nil), label: label, typ: typ, read: read}
}

// Describe implements prometheus.Collector.
func (f *Func) Describe(ch chan<- *prometheus.Desc) { ch <- f.desc }

// Collect implements prometheus.Collector.
func (f *Func) Collect(ch chan<- prometheus.Metric) {
	for k, v := range f.read() {
		if f.label == "" {
			ch <- prometheus.MustNewConstMetric(f.desc, f.typ, v)
			continue
		}
		ch <- prometheus.MustNewConstMetric(f.desc, f.typ, v, k)
	}
}

// One returns {"": v}, for a Func without a label.
func One(v float64) map[string]float64 { return map[string]float64{"": v} }

// Bool returns 1 for true and 0 for false.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Enum returns a 1 for current and a 0 for every other value in all: the
// Prometheus way to export a state. current is added if all lacks it.
func Enum(current string, all []string) map[string]float64 {
	m := make(map[string]float64, len(all)+1)
	for _, v := range all {
		m[v] = 0
	}
	m[current] = 1
	return m
}

// Bind registers collectors and binds addr (refusing a non-loopback one
// unless allowRemote). It returns the listener's address and the function
// that serves until its context ends, which the daemon runs; a shutdown
// error after the context ended is logged, not returned. ready is the
// daemon's readiness for ReadyPath.
func Bind(addr string, allowRemote bool, log logrus.FieldLogger, ready func() error, collectors ...prometheus.Collector) (net.Addr, func(context.Context) error, error) {
	reg, err := NewRegistry(collectors...)
	if err != nil {
		return nil, nil, err
	}
	ln, err := Listen(addr, allowRemote)
	if err != nil {
		return nil, nil, err
	}
	return ln.Addr(), func(ctx context.Context) error {
		err := Serve(ctx, ln, reg, ready, log)
		if err != nil && ctx.Err() != nil {
			log.WithError(err).Warn("metrics shutdown")
			return nil
		}
		return err
	}, nil
}

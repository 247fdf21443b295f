package sim

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// Growth runs a scale run for each node count of ns, one after the other,
// the rest of cfg alike, each in a directory of its own under cfg.Dir.
// It stops at the first run that fails and returns the reports so far.
func Growth(ctx context.Context, cfg Config, ns []int) ([]*Report, error) {
	var out []*Report
	for _, n := range ns {
		c := cfg
		c.Nodes = n
		c.Dir = filepath.Join(cfg.Dir, fmt.Sprintf("n%d", n))
		if err := os.MkdirAll(c.Dir, 0o700); err != nil {
			return out, err
		}
		rep, err := Run(ctx, c)
		if rep != nil {
			out = append(out, rep)
		}
		if err != nil {
			return out, fmt.Errorf("N = %d: %w", n, err)
		}
	}
	return out, nil
}

// growthRow is one figure of the growth table: its value in a report.
type growthRow struct {
	name  string
	unit  string
	value func(r *Report) float64
}

func perOpMS(p Phase) float64 {
	if p.Count-p.Errors <= 0 {
		return 0
	}
	return p.Duration.Seconds() * 1000 / float64(p.Count-p.Errors)
}

var growthRows = []growthRow{
	{"create node, per node", "ms", func(r *Report) float64 { return perOpMS(r.Create) }},
	{"enrollment, per node (64 at a time)", "ms", func(r *Report) float64 { return perOpMS(r.Enroll) }},
	{"server CPU per heartbeat", "us", func(r *Report) float64 { return r.CPUPerHeartbeat() }},
	{"transport floor, per request", "us", func(r *Report) float64 { return perOp(r.EchoCPU, r.EchoFloor) }},
	{"server heap + stack per connected node", "B", func(r *Report) float64 { return r.HeapPerConn() }},
	{"server live heap per enrolled node", "B", func(r *Report) float64 { return r.HeapPerNode() }},
	{"server state on disk per node", "B", func(r *Report) float64 { return float64(r.ServerStateBytes) / float64(r.Nodes) }},
	{"sister admission at one MOM, per swap", "ms", func(r *Report) float64 { return perOpMS(r.SisterSwap) }},
	{"MOM memory per admitted peer", "B", func(r *Report) float64 { return r.PerPeerMomBytes }},
	{"rotate key: to every connected node activated", "s", func(r *Report) float64 { return r.Rotation.ToActivate.Seconds() }},
	{"rotate key: to every connected node retired (key_grace 1s)", "s", func(r *Report) float64 { return r.Rotation.ToRetire.Seconds() }},
	{"rotation bytes at the nodes, per node", "B", func(r *Report) float64 {
		return float64(r.Rotation.Traffic.keyBytes()) / float64(max(r.Rotation.Nodes, 1))
	}},
	{"churn: delete node, per node", "ms", func(r *Report) float64 { return perOpMS(r.ChurnDelete) }},
	{"churn: create node again, per node", "ms", func(r *Report) float64 { return perOpMS(r.ChurnCreate) }},
	{"churn: deletes + creates + enrollments", "s", func(r *Report) float64 { return r.Churn.Duration.Seconds() }},
	{"churn: deny bytes at the nodes, per connected node", "B", func(r *Report) float64 {
		return float64(r.ChurnTraffic.denyBytes()) / float64(max(r.Connected, 1))
	}},
}

// PrintGrowth writes the growth table of reps (in increasing N): each
// figure at every N, and its slope between consecutive Ns, the exponent
// k of a cost growing as N^k (0: constant; 1: linear).
func PrintGrowth(w io.Writer, reps []*Report) {
	if len(reps) == 0 {
		return
	}
	var head, sep strings.Builder
	head.WriteString("| figure |")
	sep.WriteString("| --- |")
	for _, r := range reps {
		fmt.Fprintf(&head, " N = %d |", r.Nodes)
		sep.WriteString(" ---: |")
	}
	for i := 1; i < len(reps); i++ {
		fmt.Fprintf(&head, " slope %d-%d |", reps[i-1].Nodes, reps[i].Nodes)
		sep.WriteString(" ---: |")
	}
	fmt.Fprintln(w, head.String())
	fmt.Fprintln(w, sep.String())
	conn := "| nodes connected for heartbeats, rotation, churn |"
	for _, r := range reps {
		conn += fmt.Sprintf(" %d |", r.Connected)
	}
	fmt.Fprintln(w, conn+strings.Repeat(" |", len(reps)-1))
	for _, row := range growthRows {
		line := fmt.Sprintf("| %s (%s) |", row.name, row.unit)
		vals := make([]float64, len(reps))
		for i, r := range reps {
			vals[i] = row.value(r)
			line += " " + formatFigure(vals[i]) + " |"
		}
		for i := 1; i < len(reps); i++ {
			line += " " + slope(vals[i-1], vals[i], float64(sizeOf(reps[i-1], row)), float64(sizeOf(reps[i], row))) + " |"
		}
		fmt.Fprintln(w, line)
	}
}

// sizeOf is the N a figure grows with: the connected nodes for what the
// connected nodes do, the enrolled nodes otherwise.
func sizeOf(r *Report, row growthRow) int {
	switch {
	case strings.HasPrefix(row.name, "rotate"), strings.HasPrefix(row.name, "churn: deny"), strings.HasPrefix(row.name, "rotation"):
		return max(r.Connected, 1)
	}
	return r.Nodes
}

func formatFigure(v float64) string {
	switch {
	case v == 0:
		return "0"
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.3g", v)
}

// slope is log(b/a)/log(nb/na), the k of b/a = (nb/na)^k.
func slope(a, b, na, nb float64) string {
	if a <= 0 || b <= 0 || na <= 0 || nb <= na {
		return "-"
	}
	return fmt.Sprintf("%.2f", math.Log(b/a)/math.Log(nb/na))
}

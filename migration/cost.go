package migration

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/momgate/momgate/proto"
)

// ListFrame is the ClusterAddrs frame that lists addrs: exactly what the
// server pushes to a MOM that needs lists.
func ListFrame(addrs []netip.Addr) []byte {
	return proto.Marshal(&proto.ClusterAddrs{Runs: proto.RunsFromAddrs(addrs)})
}

// AddrPlan is an address plan for the cost model.
type AddrPlan string

// Address plans: one contiguous block (legacy's best case: a single run),
// or fragmented (every address its own run: legacy's worst case).
const (
	PlanContiguous AddrPlan = "contiguous"
	PlanFragmented AddrPlan = "fragmented"
)

// PlanAddrs returns n IPv4 addresses laid out per plan, from 10.0.0.1.
func PlanAddrs(plan AddrPlan, n int) []netip.Addr {
	out := make([]netip.Addr, n)
	step := uint32(1)
	if plan == PlanFragmented {
		step = 2
	}
	for i := range out {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], 0x0a000001+uint32(i)*step)
		out[i] = netip.AddrFrom4(b)
	}
	return out
}

// Cost is what the server sends because of one event.
type Cost struct {
	Messages uint64
	Bytes    uint64 // whole frames, headers included
}

func (c Cost) times(n int) Cost { return Cost{c.Messages * uint64(n), c.Bytes * uint64(n)} }

func (c Cost) plus(d Cost) Cost { return Cost{c.Messages + d.Messages, c.Bytes + d.Bytes} }

func frameCost(m proto.Message) Cost { return Cost{1, uint64(len(proto.Marshal(m)))} }

// LegacyAdd is the cost, in legacy mode, of adding a node to a cluster of n
// MOMs: the new list is pushed to the n MOMs connected, and the new MOM gets
// it again in the reply to its hello.
func LegacyAdd(plan AddrPlan, n int) Cost {
	list := ListFrame(PlanAddrs(plan, n+1))
	return Cost{1, uint64(len(list))}.times(n + 1)
}

// LegacyDelete is the cost, in legacy mode, of deleting one of n nodes: the
// shorter list is pushed to the n-1 that remain.
func LegacyDelete(plan AddrPlan, n int) Cost {
	addrs := PlanAddrs(plan, n)
	list := ListFrame(addrs[:n-1])
	return Cost{1, uint64(len(list))}.times(n - 1)
}

// PingAdd is the cost, in ping mode, of adding a node: nothing is pushed to
// the n MOMs; the new MOM gets one Welcome (its node id, name, mode and the
// active cluster key wrapped for it) in reply to its enrollment.
func PingAdd(n int) Cost {
	return frameCost(&proto.Welcome{Name: fmt.Sprintf("n%d", n+1), Mode: proto.ModePing, Keys: make([]proto.WrappedKey, 1)})
}

// PingDelete is the cost, in ping mode, of deleting one of n nodes: a Deny
// naming it goes to each of the n-1 that remain, so they refuse it at once.
func PingDelete(n int) Cost {
	return frameCost(&proto.Deny{Entries: make([]proto.NodeAddr, 1)}).times(n - 1)
}

// RotationAfterDelete is what the key rotation that follows a delete sends
// to each of the n-1 remaining MOMs: KeyUpdate, KeyActivate, KeyRetire.
func RotationAfterDelete(n int) Cost {
	per := frameCost(&proto.KeyUpdate{}).plus(frameCost(&proto.KeyActivate{})).plus(frameCost(&proto.KeyRetire{}))
	return per.times(n - 1)
}

// CostRow is one line of the cost table.
type CostRow struct {
	N          int
	Plan       AddrPlan
	Event      string // "add" or "delete"
	Legacy     Cost
	Ping       Cost
	PingRotate Cost // Ping plus the key rotation (delete only)
}

// CostRows computes the table for the cluster sizes ns.
func CostRows(ns []int) []CostRow {
	var out []CostRow
	for _, n := range ns {
		for _, plan := range []AddrPlan{PlanContiguous, PlanFragmented} {
			out = append(out, CostRow{N: n, Plan: plan, Event: "add", Legacy: LegacyAdd(plan, n), Ping: PingAdd(n), PingRotate: PingAdd(n)})
			out = append(out, CostRow{N: n, Plan: plan, Event: "delete", Legacy: LegacyDelete(plan, n), Ping: PingDelete(n),
				PingRotate: PingDelete(n).plus(RotationAfterDelete(n))})
		}
	}
	return out
}

// CostTable renders CostRows as a Markdown table.
func CostTable(ns []int) string {
	var b strings.Builder
	b.WriteString("| N | plan | event | legacy msgs | legacy bytes | ping msgs | ping bytes | msgs ratio | bytes ratio | ping+rotation msgs | ping+rotation bytes |\n")
	b.WriteString("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, r := range CostRows(ns) {
		rot := "same"
		rotB := "same"
		if r.Event == "delete" {
			rot, rotB = group(r.PingRotate.Messages), group(r.PingRotate.Bytes)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", group(uint64(r.N)), r.Plan, r.Event,
			group(r.Legacy.Messages), group(r.Legacy.Bytes), group(r.Ping.Messages), group(r.Ping.Bytes),
			ratio(r.Legacy.Messages, r.Ping.Messages), ratio(r.Legacy.Bytes, r.Ping.Bytes), rot, rotB)
	}
	return b.String()
}

// group writes n with thousands separators.
func group(n uint64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func ratio(a, b uint64) string {
	if b == 0 {
		return "-"
	}
	r := float64(a) / float64(b)
	switch {
	case r >= 1e4:
		return fmt.Sprintf("%.2ex", r)
	case r >= 10:
		return fmt.Sprintf("%.0fx", r)
	}
	return fmt.Sprintf("%.2fx", r)
}

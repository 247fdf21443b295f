package proto

import (
	"encoding/binary"
	"net/netip"
	"slices"
)

// AddrRun is a run of Count consecutive IPv4 addresses starting at First.
type AddrRun struct {
	First [4]byte // IPv4 address, network order
	Count uint32
}

// Start returns the first address of the run.
func (r AddrRun) Start() netip.Addr { return netip.AddrFrom4(r.First) }

func (r AddrRun) first() uint32 { return binary.BigEndian.Uint32(r.First[:]) }

// ClusterAddrs is the legacy full list of cluster addresses
// (IS_CLUSTER_ADDRS2), encoded as runs of consecutive IPv4 addresses.
type ClusterAddrs struct {
	v1
	Runs []AddrRun
}

// Type returns TypeClusterAddrs.
func (*ClusterAddrs) Type() Type { return TypeClusterAddrs }

// AppendBody encodes the body.
func (m *ClusterAddrs) AppendBody(b []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Runs)))
	for _, r := range m.Runs {
		b = append(b, r.First[:]...)
		b = binary.BigEndian.AppendUint32(b, r.Count)
	}
	return b
}

func (m *ClusterAddrs) decode(r *reader) {
	n := r.count(4, MaxClusterRuns, 8, "run count")
	if n == 0 {
		return
	}
	m.Runs = make([]AddrRun, n)
	for i := range m.Runs {
		var a [4]byte
		r.fixed(a[:], "run address")
		c := r.u32("run length")
		first := binary.BigEndian.Uint32(a[:])
		r.check("run length", r.err != nil || (c >= 1 && uint64(first)+uint64(c)-1 <= 0xffffffff), "run of %d from %v", c, netip.AddrFrom4(a))
		m.Runs[i] = AddrRun{First: a, Count: c}
	}
}

// RunsFromAddrs sorts and de-duplicates the IPv4 addresses of addrs (IPv6
// ones are skipped: the legacy protocol has no form for them) and merges
// consecutive ones into runs, as OpenPBS encodes its list.
func RunsFromAddrs(addrs []netip.Addr) []AddrRun {
	v4 := make([]uint32, 0, len(addrs))
	for _, a := range addrs {
		a = a.Unmap()
		if a.Is4() {
			b := a.As4()
			v4 = append(v4, binary.BigEndian.Uint32(b[:]))
		}
	}
	slices.Sort(v4)
	v4 = slices.Compact(v4)
	var runs []AddrRun
	for i := 0; i < len(v4); {
		j := i + 1
		for j < len(v4) && v4[j] == v4[j-1]+1 {
			j++
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v4[i])
		runs = append(runs, AddrRun{First: b, Count: uint32(j - i)})
		i = j
	}
	return runs
}

// Contains reports whether a is in one of the runs. The runs may be in any
// order and may overlap: a decoded list is taken as the peer sent it, and
// PROTOCOL.md does not require the peer to sort it.
func (m *ClusterAddrs) Contains(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() {
		return false
	}
	b := a.As4()
	x := uint64(binary.BigEndian.Uint32(b[:]))
	for _, r := range m.Runs {
		if first := uint64(r.first()); x >= first && x < first+uint64(r.Count) {
			return true
		}
	}
	return false
}

// Expand lists the addresses of the runs, at most max of them.
func (m *ClusterAddrs) Expand(max int) []netip.Addr {
	var out []netip.Addr
	for _, r := range m.Runs {
		a := r.Start()
		for i := uint32(0); i < r.Count && len(out) < max; i++ {
			out = append(out, a)
			a = a.Next()
		}
	}
	return out
}

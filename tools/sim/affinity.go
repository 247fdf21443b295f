package sim

import (
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// pinned is a process's threads bound to one CPU until restore.
type pinned struct {
	pid  int
	prev map[int]unix.CPUSet
}

// pin binds every thread of pid to cpu (threads the process starts later
// inherit the binding from the thread that starts them). restore puts
// back what each thread had.
func pin(pid, cpu int) (*pinned, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, fmt.Errorf("pin process %d: %w", pid, err)
	}
	p := &pinned{pid: pid, prev: map[int]unix.CPUSet{}}
	var set unix.CPUSet
	set.Set(cpu)
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		var old unix.CPUSet
		if err := unix.SchedGetaffinity(tid, &old); err != nil {
			continue // the thread ended
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil {
			p.restore()
			return nil, fmt.Errorf("pin thread %d of process %d to CPU %d: %w", tid, pid, cpu, err)
		}
		p.prev[tid] = old
	}
	return p, nil
}

// restore gives every thread pinned, and every thread started since,
// the CPUs of the process before pin.
func (p *pinned) restore() {
	var all unix.CPUSet
	for _, s := range p.prev {
		for c := range runtime.NumCPU() {
			if s.IsSet(c) {
				all.Set(c)
			}
		}
	}
	if all.Count() == 0 {
		for c := range runtime.NumCPU() {
			all.Set(c)
		}
	}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", p.pid))
	for _, t := range tasks {
		if tid, err := strconv.Atoi(t.Name()); err == nil {
			_ = unix.SchedSetaffinity(tid, &all)
		}
	}
}

package loopbench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Syscalls is what strace -c counted in one process during a phase, per
// operation completed in it. Under strace a process runs many times
// slower: the counts are exact, the phase's rate means nothing.
type Syscalls struct {
	Process string         `json:"process"`
	PerOp   float64        `json:"per_op"`
	Calls   []SyscallCount `json:"calls"` // most frequent first
	Note    string         `json:"note,omitempty"`
}

// SyscallCount is one system call's count per operation.
type SyscallCount struct {
	Name  string  `json:"name"`
	PerOp float64 `json:"per_op"`
}

// tracer is an strace -c attached to one process.
type tracer struct {
	cmd  *exec.Cmd
	out  string
	done chan error
}

// startStrace attaches strace -c -f (every thread) to pid, its summary
// going to a file in dir.
func startStrace(dir, name string, pid int) (*tracer, error) {
	path, err := exec.LookPath("strace")
	if err != nil {
		return nil, fmt.Errorf("strace not installed (apt-get install strace): %w", err)
	}
	t := &tracer{out: filepath.Join(dir, "strace-"+name+".txt"), done: make(chan error, 1)}
	t.cmd = exec.Command(path, "-c", "-f", "-qq", "-o", t.out, "-p", strconv.Itoa(pid))
	t.cmd.Stderr = os.Stderr
	if err := t.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start strace: %w", err)
	}
	go func() { t.done <- t.cmd.Wait() }()
	// strace creates its output file before it attaches.
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(t.out); err == nil {
			break
		}
		select {
		case err := <-t.done:
			return nil, fmt.Errorf("strace -p %d exited: %v", pid, err)
		default:
		}
		if time.Now().After(deadline) {
			t.stopProcess()
			return nil, fmt.Errorf("strace -p %d did not start", pid)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	return t, nil
}

func (t *tracer) stopProcess() {
	_ = t.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-t.done:
	case <-time.After(10 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.done
	}
}

// stop detaches strace and returns its counts per operation.
func (t *tracer) stop(name string, ops uint64) Syscalls {
	t.stopProcess()
	s := Syscalls{Process: name}
	f, err := os.Open(t.out)
	if err != nil {
		s.Note = err.Error()
		return s
	}
	defer f.Close()
	counts, err := parseStraceSummary(f)
	if err != nil {
		s.Note = err.Error()
		return s
	}
	if ops == 0 {
		s.Note = "no operations"
		return s
	}
	total := 0
	for name, n := range counts {
		total += n
		s.Calls = append(s.Calls, SyscallCount{Name: name, PerOp: float64(n) / float64(ops)})
	}
	sort.Slice(s.Calls, func(i, j int) bool {
		if s.Calls[i].PerOp != s.Calls[j].PerOp {
			return s.Calls[i].PerOp > s.Calls[j].PerOp
		}
		return s.Calls[i].Name < s.Calls[j].Name
	})
	s.PerOp = float64(total) / float64(ops)
	return s
}

// parseStraceSummary reads the table of strace -c: per system call, the
// number of calls (failed ones included). The total row is left out.
func parseStraceSummary(r io.Reader) (map[string]int, error) {
	out := map[string]int{}
	sc := bufio.NewScanner(r)
	header := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if f[0] == "%" {
			header = true
			continue
		}
		if !header || strings.HasPrefix(f[0], "---") {
			continue
		}
		name := f[len(f)-1]
		nums := f[:len(f)-1]
		// % time, seconds, usecs/call, calls, [errors]
		if name == "total" || len(nums) < 4 {
			continue
		}
		n, err := strconv.Atoi(nums[3])
		if err != nil {
			return nil, fmt.Errorf("strace summary row %q: %w", sc.Text(), err)
		}
		out[name] += n
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !header {
		return nil, fmt.Errorf("no strace -c summary")
	}
	return out, nil
}

package loopbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// Daemons is a momgate server and one enrolled MOM started from binaries
// for a benchmark, each on its own loopback address, with state in Dir.
type Daemons struct {
	Dir    string // state of both daemons
	BinDir string // where momgate-server, momgate-mom and momgate-qmgr are
	MomDir string // the MOM's state directory (its keyring is read from here)
	MomIM  string // the MOM's IM address ip:port
	procs  []*daemonProc
}

type daemonProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartDaemons initializes a server in dir, starts it on serverIP, creates
// and enrolls one MOM on momIP with momFlags, and waits until the MOM is
// connected. On error everything started is stopped.
func StartDaemons(ctx context.Context, binDir, dir, serverIP, momIP string, momFlags []string) (*Daemons, error) {
	d := &Daemons{Dir: dir, BinDir: binDir, MomDir: filepath.Join(dir, "mom")}
	ok := false
	defer func() {
		if !ok {
			d.Stop()
		}
	}()
	srvDir := filepath.Join(dir, "server")
	if _, err := d.run(ctx, "momgate-server", "init", "--state-dir", srvDir); err != nil {
		return nil, err
	}
	srvAddr, err := freeAddr(serverIP)
	if err != nil {
		return nil, err
	}
	if d.MomIM, err = freeAddr(momIP); err != nil {
		return nil, err
	}
	if err := d.start("server", "momgate-server", "run", "--state-dir", srvDir, "--listen", srvAddr); err != nil {
		return nil, err
	}
	if err := d.waitFor(ctx, "server admin socket", func() bool {
		_, err := d.run(ctx, "momgate-qmgr", "--state-dir", srvDir, "-c", "list node")
		return err == nil
	}); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(d.MomIM)
	out, err := d.run(ctx, "momgate-qmgr", "--state-dir", srvDir, "--json", "-c",
		fmt.Sprintf("create node bench Mom=%s,Port=%s", momIP, port))
	if err != nil {
		return nil, err
	}
	var created struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.Token == "" {
		return nil, fmt.Errorf("create node: no token in %q", out)
	}
	args := append([]string{"run", "--state-dir", d.MomDir, "--server", srvAddr, "--listen", d.MomIM,
		"--enroll", created.Token}, momFlags...)
	if err := d.start("mom", "momgate-mom", args...); err != nil {
		return nil, err
	}
	if err := d.waitFor(ctx, "MOM enrolled and connected", func() bool {
		out, err := d.run(ctx, "momgate-mom", "status", "--json", "--state-dir", d.MomDir)
		var st struct {
			Connected bool `json:"connected"`
		}
		return err == nil && json.Unmarshal(out, &st) == nil && st.Connected
	}); err != nil {
		return nil, err
	}
	ok = true
	return d, nil
}

// SetServer runs `set server ATTR=VALUE` on the server and waits until the
// MOM's status shows want at key (a JSON path of two names, e.g.
// "sessions", "im_security"), so that the MOM has heard the change.
func (d *Daemons) SetServer(ctx context.Context, attr, value string, section, key, want string) error {
	if _, err := d.run(ctx, "momgate-qmgr", "--state-dir", filepath.Join(d.Dir, "server"), "-c", "set server "+attr+"="+value); err != nil {
		return err
	}
	return d.waitFor(ctx, "the MOM to hear "+attr+"="+value, func() bool {
		out, err := d.run(ctx, "momgate-mom", "status", "--json", "--state-dir", d.MomDir)
		var st map[string]json.RawMessage
		var sec map[string]any
		if err != nil || json.Unmarshal(out, &st) != nil || json.Unmarshal(st[section], &sec) != nil {
			return false
		}
		return fmt.Sprint(sec[key]) == want
	})
}

// Stop sends SIGTERM to every daemon, and SIGKILL to any still running
// after 10 s, and waits for them.
func (d *Daemons) Stop() {
	for _, p := range d.procs {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, p := range d.procs {
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	d.procs = nil
}

// Pid is the process id of the daemon started as name ("server" or
// "mom"), 0 if none.
func (d *Daemons) Pid(name string) int {
	for _, p := range d.procs {
		if p.name == name {
			return p.cmd.Process.Pid
		}
	}
	return 0
}

func (d *Daemons) run(ctx context.Context, bin string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(d.BinDir, bin), args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %v: %w: %s", bin, args, err, bytes.TrimSpace(errb.Bytes()))
	}
	return out.Bytes(), nil
}

func (d *Daemons) start(name, bin string, args ...string) error {
	logf, err := os.OpenFile(filepath.Join(d.Dir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(d.BinDir, bin), args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", bin, err)
	}
	p := &daemonProc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	d.procs = append(d.procs, p)
	return nil
}

// waitFor polls cond every 50 ms for at most 30 s, failing early if a
// daemon exits.
func (d *Daemons) waitFor(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		for _, p := range d.procs {
			select {
			case <-p.done:
				log, _ := os.ReadFile(filepath.Join(d.Dir, p.name+".log"))
				return fmt.Errorf("waiting for %s: %s exited: %s", what, p.name, bytes.TrimSpace(log))
			default:
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	return nil
}

// freeAddr returns ip:port with a port that was free on ip just now.
func freeAddr(ip string) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// Command momgate-scale measures a server and a MOM daemon against many
// simulated MOMs on loopback (see docs/PERFORMANCE.md).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/tools/sim"
)

// parseSizes parses "1000,10000,100000": increasing node counts.
func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > sim.MaxNodes || (len(out) > 0 && n <= out[len(out)-1]) {
			return nil, fmt.Errorf("--growth %q: want increasing node counts 1..%d, comma-separated", s, sim.MaxNodes)
		}
		out = append(out, n)
	}
	return out, nil
}

// runGroups makes a group run for each size and prints the reports.
func runGroups(ctx context.Context, cfg sim.Config, members int, sizes []int, asJSON bool) error {
	var reps []*sim.GroupReport
	var err error
	for _, n := range sizes {
		c := cfg
		c.Nodes = n
		c.Dir = filepath.Join(cfg.Dir, fmt.Sprintf("group-%d", n))
		if err = os.MkdirAll(c.Dir, 0o700); err != nil {
			break
		}
		var rep *sim.GroupReport
		rep, err = sim.RunGroup(ctx, c, members)
		if rep != nil {
			reps = append(reps, rep)
		}
		if err != nil {
			err = fmt.Errorf("group run, %d nodes: %w", n, err)
			break
		}
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(reps); jerr != nil {
			return jerr
		}
		return err
	}
	for _, rep := range reps {
		sim.PrintGroupReport(os.Stdout, rep)
		fmt.Println()
	}
	return err
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == sim.EchoServerArg {
		// The transport floor's server (tools/sim/echo.go), run as a
		// child of a scale run.
		ln, err := net.Listen("tcp", os.Args[2])
		if err != nil {
			fmt.Fprintln(os.Stderr, "momgate-scale echo:", err)
			os.Exit(1)
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		if err := sim.ServeEcho(ctx, ln); err != nil {
			fmt.Fprintln(os.Stderr, "momgate-scale echo:", err)
			os.Exit(1)
		}
		return
	}
	app := &cli.App{
		Name:  "momgate-scale",
		Usage: "run one server and one MOM against N simulated MOMs on 127.1.x.y and report rates and memory",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Value: 1000, Usage: "simulated MOMs (each on its own 127.x.y.z, see NodeAddr)"},
			&cli.StringFlag{Name: "growth", Usage: "`N1,N2,...`: a run for each node count, then the growth table of their figures (--nodes is ignored)"},
			&cli.IntFlag{Name: "workers", Value: 64, Usage: "concurrent connections while enrolling and swapping"},
			&cli.IntFlag{Name: "heartbeats", Value: 5, Usage: "heartbeat PINGs per node"},
			&cli.IntFlag{Name: "churn", Value: 100, Usage: "nodes deleted, then re-created and re-enrolled"},
			&cli.StringFlag{Name: "bin", Value: "bin", Usage: "directory holding momgate-server and momgate-mom"},
			&cli.DurationFlag{Name: "token-ttl", Value: -1, Usage: "token_ttl for the run; the registry is measured after the tokens expire (0: server default, measured at once; default: 1m or 10 ms per node, the longer, so that every node enrolls before its token expires)"},
			&cli.DurationFlag{Name: "key-grace", Value: time.Second, Usage: "key_grace for the run (the rotation phase waits it out; 0: server default 30s)"},
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "per-operation timeout"},
			&cli.IntFlag{Name: "max-connected", Value: sim.MaxNodes, Usage: "nodes connected at once at most (also bounded by the descriptor limit); enrollment goes in waves"},
			&cli.BoolFlag{Name: "json", Usage: "print the report(s) as JSON instead of tables"},
			&cli.IntFlag{Name: "group", Usage: fmt.Sprintf("`MEMBERS` (%d..%d): instead, run a replicated server group on 127.0.5.x, kill -9 its leader and measure the time to a write and to every simulated MOM back on the new leader (with --growth: a run per size)", sim.MinGroup, sim.MaxGroup)},
		},
		Action: func(c *cli.Context) error {
			ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
			defer stop()
			sizes := []int{c.Int("nodes")}
			if g := c.String("growth"); g != "" {
				var err error
				if sizes, err = parseSizes(g); err != nil {
					return err
				}
			}
			// The server holds a descriptor per connected node, this
			// process one per simulated node; the server and the MOM
			// inherit the limit. Where it cannot be raised far enough,
			// at most what fits is connected at once.
			limit, err := sim.RaiseFileLimit(sim.FilesNeeded(slices.Max(sizes)))
			if err != nil {
				fmt.Fprintf(os.Stderr, "momgate-scale: %v\nmomgate-scale: at most %d nodes connected at once\n", err, sim.ConnectedWithin(limit))
			}
			dir, err := os.MkdirTemp("", "momgate-scale-")
			if err != nil {
				return err
			}
			if os.Getenv("MOMGATE_SCALE_KEEP") == "" {
				defer os.RemoveAll(dir)
			} else {
				fmt.Fprintln(os.Stderr, "keeping", dir)
			}
			cfg := sim.Config{
				ServerBin: c.String("bin") + "/momgate-server", MomBin: c.String("bin") + "/momgate-mom",
				QmgrBin: c.String("bin") + "/momgate-qmgr", Dir: dir,
				Nodes: sizes[0], Workers: c.Int("workers"), Heartbeats: c.Int("heartbeats"), Churn: c.Int("churn"),
				Timeout: c.Duration("timeout"), TokenTTL: c.Duration("token-ttl"), KeyGrace: c.Duration("key-grace"), Progress: os.Stderr,
				MaxConnected: min(c.Int("max-connected"), sim.ConnectedWithin(limit)),
			}
			if members := c.Int("group"); members != 0 {
				return runGroups(ctx, cfg, members, sizes, c.Bool("json"))
			}
			var reps []*sim.Report
			if c.String("growth") == "" {
				var rep *sim.Report
				rep, err = sim.Run(ctx, cfg)
				if rep != nil {
					reps = append(reps, rep)
				}
			} else {
				reps, err = sim.Growth(ctx, cfg, sizes)
			}
			if c.Bool("json") {
				enc := json.NewEncoder(os.Stdout)
				enc.SetIndent("", "  ")
				if jerr := enc.Encode(reps); jerr != nil {
					return jerr
				}
				return err
			}
			for _, rep := range reps {
				sim.PrintReport(os.Stdout, rep)
				fmt.Println()
			}
			if len(reps) > 1 {
				sim.PrintGrowth(os.Stdout, reps)
			}
			return err
		},
	}
	if err := app.RunContext(context.Background(), os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "momgate-scale:", err)
		os.Exit(1)
	}
}

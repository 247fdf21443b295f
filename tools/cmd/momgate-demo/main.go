// Command momgate-demo is the helper of `make run` (scripts/demo.sh):
// `foreground` gives the demo the terminal so Ctrl-C stops it cleanly, and
// `replay` captures a PING on the path between two MOMs and replays it.
package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/momgate/momgate/tools/demo"
)

func main() {
	code := 0
	a := app(&code)
	if err := a.Run(os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "momgate-demo:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func app(code *int) *cli.App {
	return &cli.App{
		Name:  "momgate-demo",
		Usage: "the helper of make run (scripts/demo.sh)",
		Commands: []*cli.Command{
			{
				Name:      "foreground",
				Usage:     "run COMMAND with the terminal's Ctrl-C its own, and exit with its status",
				ArgsUsage: "COMMAND [ARG...]",
				Action: func(c *cli.Context) error {
					if c.NArg() == 0 {
						return errors.New("foreground needs a COMMAND")
					}
					n, err := demo.Foreground(c.Args().First(), c.Args().Tail()...)
					*code = n
					return err
				},
			},
			{
				Name:      "replay",
				Usage:     "relay one MOM's connection to a sister, keep its PING, then replay it to the sister",
				ArgsUsage: " ",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "listen", Required: true, Usage: "`IP:PORT` the MOM pings: the sister's IP, another port"},
					&cli.StringFlag{Name: "to", Required: true, Usage: "the sister's IM `ADDR`ESS"},
					&cli.StringFlag{Name: "from", Required: true, Usage: "the MOM's `IP`, which the relay and the replay connect from"},
					&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after this long"},
				},
				Action: func(c *cli.Context) error {
					ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
					defer cancel()
					ln, err := net.Listen("tcp", c.String("listen"))
					if err != nil {
						return err
					}
					fmt.Printf("relay listening on %s, to %s\n", ln.Addr(), c.String("to"))
					cp, err := demo.Relay(ctx, ln, c.String("to"), c.String("from"))
					if err != nil {
						return err
					}
					fmt.Printf("captured on the path: a Ping of %d bytes under key %08x, from %s\n", len(cp.Frame), cp.KeyID, c.String("from"))
					rj, err := demo.Replay(ctx, cp, c.String("to"), c.String("from"))
					if err != nil {
						return err
					}
					fmt.Printf("replayed to %s from %s: refused, %s (Reject code %d: %s)\n", c.String("to"), c.String("from"),
						rj.Code, uint16(rj.Code), rj.Reason)
					return nil
				},
			},
		},
	}
}

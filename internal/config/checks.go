package config

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/urfave/cli/v2"
)

// splitPort splits HOST:PORT and checks the port is 1-65535.
func splitPort(v string) (string, error) {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", fmt.Errorf("bad address %q: want HOST:PORT", v)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("bad address %q: port %q is not a number from 1 to 65535", v, port)
	}
	return host, nil
}

func checkHost(v, host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if strings.ContainsAny(host, " /:@") || strings.HasPrefix(host, "-") || strings.HasSuffix(host, "-") {
		return fmt.Errorf("bad address %q: %q is neither an IP address nor a host name", v, host)
	}
	return nil
}

// ListenAddr accepts a listen address HOST:PORT, where HOST may be empty
// (every local address), an IP address or a host name.
func ListenAddr(v string, _ Values) error {
	host, err := splitPort(v)
	if err != nil || host == "" {
		return err
	}
	return checkHost(v, host)
}

// DialAddr accepts an address to connect to: HOST:PORT with a HOST.
func DialAddr(v string, _ Values) error {
	host, err := splitPort(v)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("bad address %q: the host is missing", v)
	}
	return checkHost(v, host)
}

// NodeAddr accepts IP:PORT where IP is a specific address (not 0.0.0.0 or
// ::), as a MOM's IM address must be: PINGs name it.
func NodeAddr(v string, _ Values) error {
	ap, err := netip.ParseAddrPort(v)
	if err != nil {
		return fmt.Errorf("bad address %q: want IP:PORT with this node's own IP address", v)
	}
	if ap.Port() == 0 {
		return fmt.Errorf("bad address %q: port 0 is not a fixed port", v)
	}
	if ap.Addr().IsUnspecified() {
		return fmt.Errorf("bad address %q: must be this node's own address, not a wildcard (PINGs name it)", v)
	}
	return nil
}

// LogLevel accepts a logrus level name.
func LogLevel(v string, _ Values) error {
	if _, err := logrus.ParseLevel(v); err != nil {
		return fmt.Errorf("bad log level %q: want debug, info, warn or error", v)
	}
	return nil
}

// LogFormat accepts "text" or "json".
func LogFormat(v string, _ Values) error {
	if v != "text" && v != "json" {
		return fmt.Errorf("bad log format %q: want text or json", v)
	}
	return nil
}

// AbsPath accepts an absolute path: a daemon's working directory is not
// something a file should depend on.
func AbsPath(v string, _ Values) error {
	if !filepath.IsAbs(v) {
		return fmt.Errorf("path %q is not absolute", v)
	}
	return nil
}

// AuditPath accepts "-" (standard error) or an absolute path.
func AuditPath(v string, vals Values) error {
	if v == "-" {
		return nil
	}
	if err := AbsPath(v, vals); err != nil {
		return fmt.Errorf("%w; want an absolute path or \"-\" for standard error", err)
	}
	return nil
}

// PositiveDuration accepts a duration above zero.
func PositiveDuration(v string, _ Values) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("duration %s must be above zero", v)
	}
	return nil
}

// NonNegativeDuration accepts a duration of zero or more.
func NonNegativeDuration(v string, _ Values) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return err
	}
	if d < 0 {
		return fmt.Errorf("duration %s must not be negative", v)
	}
	return nil
}

// Require fails unless every flag has a value from the command line, the
// environment or the config file (Apply must have run).
func Require(c *cli.Context, flags ...cli.Flag) error {
	for _, f := range flags {
		name := f.Names()[0]
		if c.IsSet(name) {
			continue
		}
		how := "--" + name
		if ev, ok := f.(cli.DocGenerationFlag); ok && len(ev.GetEnvVars()) > 0 {
			how += ", $" + ev.GetEnvVars()[0]
		}
		return fmt.Errorf("missing %s: give %s, or %q in the --config file", name, how, name)
	}
	return nil
}

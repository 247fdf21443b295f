package server

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/momgate/momgate/internal/admin"
	"github.com/momgate/momgate/proto"
)

// Attrs are the server attributes an administrator sets with
// `set server NAME=VALUE`.
type Attrs struct {
	Mode            string   `json:"mode"`             // legacy, compat or ping
	KeyDistribution string   `json:"key_distribution"` // auto or manual
	TokenTTL        Duration `json:"token_ttl"`        // enrollment token lifetime
	Freshness       Duration `json:"freshness"`        // first-contact window; 0 disables
	Heartbeat       Duration `json:"heartbeat"`        // MOM heartbeat interval hint
	KeyGrace        Duration `json:"key_grace"`        // how long a previous key stays accepted
	// IMSecurity is the weakest protection of new IM sessions between
	// nodes that speak sealed sessions: none, auth or encrypt. Absent (a
	// cluster upgraded from before sealed sessions) means none.
	IMSecurity string `json:"im_security,omitempty"`
}

// DefaultAttrs are the attributes of a new server.
func DefaultAttrs() Attrs {
	return Attrs{
		Mode:            proto.ModePing.String(),
		KeyDistribution: "auto",
		TokenTTL:        Duration(time.Hour),
		Freshness:       Duration(5 * time.Minute),
		Heartbeat:       Duration(10 * time.Second),
		KeyGrace:        Duration(30 * time.Second),
		// A new cluster seals and encrypts IM traffic, with forward
		// secrecy (docs/PROTOCOL.md 6.7 says why).
		IMSecurity: "encrypt",
	}
}

// Duration is a time.Duration that reads and writes as "1h30m" in JSON.
type Duration time.Duration

// MarshalText writes the duration as Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText parses Go duration syntax.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

type attrDef struct {
	get func(*Attrs) string
	set func(*Attrs, string) error
	doc string
}

func durationAttr(field func(*Attrs) *Duration, min, max time.Duration, allowZero bool, doc string) attrDef {
	return attrDef{
		get: func(a *Attrs) string { return time.Duration(*field(a)).String() },
		set: func(a *Attrs, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("not a duration (e.g. 90s, 1h): %q", v)
			}
			if !(allowZero && d == 0) && (d < min || d > max) {
				return fmt.Errorf("%s out of range %s..%s", d, min, max)
			}
			*field(a) = Duration(d)
			return nil
		},
		doc: doc,
	}
}

func enumAttr(field func(*Attrs) *string, values []string, doc string) attrDef {
	return attrDef{
		get: func(a *Attrs) string { return *field(a) },
		set: func(a *Attrs, v string) error {
			v = strings.ToLower(v)
			for _, ok := range values {
				if v == ok {
					*field(a) = v
					return nil
				}
			}
			return fmt.Errorf("%q is not one of %s", v, strings.Join(values, ", "))
		},
		doc: doc,
	}
}

var attrDefs = map[string]attrDef{
	"mode": enumAttr(func(a *Attrs) *string { return &a.Mode }, []string{"legacy", "compat", "ping"},
		"protocol mode: legacy (address-list push), compat (both), ping"),
	"key_distribution": enumAttr(func(a *Attrs) *string { return &a.KeyDistribution }, []string{"auto", "manual"},
		"auto: keys wrapped for each node and pushed; manual: exported key files"),
	"token_ttl": durationAttr(func(a *Attrs) *Duration { return &a.TokenTTL }, time.Second, 30*24*time.Hour, false,
		"lifetime of enrollment tokens issued by create node"),
	"freshness": durationAttr(func(a *Attrs) *Duration { return &a.Freshness }, time.Second, 24*time.Hour, true,
		"first-contact freshness window for PINGs (0 disables)"),
	"heartbeat": durationAttr(func(a *Attrs) *Duration { return &a.Heartbeat }, 100*time.Millisecond, time.Hour, false,
		"interval of MOM heartbeat PINGs"),
	"im_security": {
		get: func(a *Attrs) string {
			if a.IMSecurity == "" {
				return "none"
			}
			return a.IMSecurity
		},
		set: enumAttr(func(a *Attrs) *string { return &a.IMSecurity }, []string{"none", "auth", "encrypt"}, "").set,
		doc: "weakest protection of new IM sessions between nodes that speak sealed sessions: none, auth (integrity) or encrypt (and secrecy, forward secret)",
	},
	"key_grace": durationAttr(func(a *Attrs) *Duration { return &a.KeyGrace }, time.Second, 24*time.Hour, false,
		"how long the previous cluster key is still accepted after a rotation"),
}

// attrNames lists settable attributes, sorted.
func attrNames() []string {
	out := make([]string, 0, len(attrDefs))
	for n := range attrDefs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Map returns every attribute as text.
func (a Attrs) Map() map[string]string {
	m := map[string]string{}
	for n, d := range attrDefs {
		m[n] = d.get(&a)
	}
	return m
}

// with returns a copy of a with the given attributes set, or an admin error
// naming the first bad one; a is never modified.
func (a Attrs) with(set []admin.Attr) (Attrs, error) {
	next := a
	for _, kv := range set {
		d, ok := attrDefs[strings.ToLower(kv.Name)]
		if !ok {
			return a, admin.Errorf(admin.CodeBadValue, "unknown server attribute %q (settable: %s)", kv.Name, strings.Join(attrNames(), ", "))
		}
		if err := d.set(&next, kv.Value); err != nil {
			return a, admin.Errorf(admin.CodeBadValue, "server attribute %s: %v", kv.Name, err)
		}
	}
	return next, nil
}

func (a Attrs) validate() error {
	for n, d := range attrDefs {
		probe := a
		if err := d.set(&probe, d.get(&a)); err != nil {
			return fmt.Errorf("attribute %s: %w", n, err)
		}
	}
	return nil
}

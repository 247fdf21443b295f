// Package config reads the daemons' configuration files and merges them
// under the command line.
//
// A configuration file is TOML with one top-level key per flag of the
// daemon's run command, named exactly as the long flag ("listen",
// "log-level", "metrics-listen", ...). Values resolve in this order, first
// found wins: the command-line flag, its environment variable, the file,
// the flag's default. Parse reports every problem of a file at once, each
// with its line, so an administrator fixes a file in one pass.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/urfave/cli/v2"
)

// Kind is the type of value a key holds.
type Kind int

// Kinds of keys. A duration is written as a TOML string ("10s", "1m30s").
const (
	KindString Kind = iota
	KindBool
	KindDuration
	KindInt
	KindFloat
	// KindList is a list of strings: a TOML array of strings, or one
	// string of comma-separated elements; its flag syntax is the elements
	// joined with commas (a flag such as momgate-mom's --server).
	KindList
)

func (k Kind) String() string {
	switch k {
	case KindString:
		return "a string"
	case KindBool:
		return "a boolean (true or false)"
	case KindDuration:
		return `a duration string such as "10s" or "1m30s"`
	case KindInt:
		return "an integer"
	case KindFloat:
		return "a number"
	case KindList:
		return `an array of strings such as ["a", "b"] (or one string "a,b")`
	}
	return "kind " + strconv.Itoa(int(k))
}

// Check validates one key's value, given in flag syntax, and may look at
// the file's other values for rules that span keys.
type Check func(value string, file Values) error

// Key describes one configuration key.
type Key struct {
	// Name is the key, the same as the long flag name.
	Name string
	// Kind is the TOML type the key takes.
	Kind Kind
	// Check validates the value; nil accepts any value of the right kind.
	Check Check
}

// Schema is the set of keys one daemon's file may hold.
type Schema struct {
	keys  []Key
	index map[string]int
}

// NewSchema returns a schema of keys. It panics on a duplicate name, which
// is a programming error.
func NewSchema(keys ...Key) *Schema {
	s := &Schema{index: map[string]int{}}
	for _, k := range keys {
		if _, dup := s.index[k.Name]; dup {
			panic("config: duplicate key " + k.Name)
		}
		s.index[k.Name] = len(s.keys)
		s.keys = append(s.keys, k)
	}
	return s
}

// FromFlags returns a schema with one key per flag, named after the flag's
// first name and typed after the flag, skipping the names in skip. checks
// adds validation by key name. It fails on a flag type it cannot map and
// on a check for a key that no flag defines.
func FromFlags(flags []cli.Flag, skip []string, checks map[string]Check) (*Schema, error) {
	var keys []Key
	seen := map[string]bool{}
	for _, f := range flags {
		name := f.Names()[0]
		if contains(skip, name) {
			continue
		}
		var kind Kind
		switch f.(type) {
		case *cli.StringFlag, *cli.PathFlag:
			kind = KindString
		case *cli.BoolFlag:
			kind = KindBool
		case *cli.DurationFlag:
			kind = KindDuration
		case *cli.IntFlag, *cli.Int64Flag, *cli.UintFlag, *cli.Uint64Flag:
			kind = KindInt
		case *cli.Float64Flag:
			kind = KindFloat
		default:
			return nil, fmt.Errorf("config: flag --%s: type %T has no config key kind", name, f)
		}
		keys = append(keys, Key{Name: name, Kind: kind, Check: checks[name]})
		seen[name] = true
	}
	for name := range checks {
		if !seen[name] {
			return nil, fmt.Errorf("config: check for key %q, which no flag defines", name)
		}
	}
	return NewSchema(keys...), nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// WithLists returns a copy of s in which the named string keys are lists
// (KindList). It fails on a name that is not a string key of s.
func (s *Schema) WithLists(names ...string) (*Schema, error) {
	keys := s.Keys()
	for _, n := range names {
		i, ok := s.index[n]
		if !ok || keys[i].Kind != KindString {
			return nil, fmt.Errorf("config: %q is not a string key", n)
		}
		keys[i].Kind = KindList
	}
	return NewSchema(keys...), nil
}

// Keys returns the schema's keys in order.
func (s *Schema) Keys() []Key { return append([]Key(nil), s.keys...) }

// Lookup returns the key of that name.
func (s *Schema) Lookup(name string) (Key, bool) {
	i, ok := s.index[name]
	if !ok {
		return Key{}, false
	}
	return s.keys[i], true
}

// Value is one key's value as read from a file.
type Value struct {
	// Text is the value in flag syntax ("10s", "true", "127.0.0.1:15001").
	Text string
	// Line is the 1-based line that sets the key.
	Line int
}

// Values are a file's keys and their values.
type Values map[string]Value

// String returns the text of key, or "" when the file does not set it.
func (v Values) String(key string) string { return v[key].Text }

// Bool reports whether the file sets key to true.
func (v Values) Bool(key string) bool { return v[key].Text == "true" }

// Problem is one thing wrong with a file.
type Problem struct {
	// Line is the 1-based line at fault.
	Line int
	// Key is the key at fault; "" for a syntax error.
	Key string
	// Msg says what is wrong.
	Msg string
}

func (p Problem) String() string {
	if p.Key == "" {
		return fmt.Sprintf("line %d: %s", p.Line, p.Msg)
	}
	return fmt.Sprintf("line %d: %s: %s", p.Line, p.Key, p.Msg)
}

// ErrInvalid is wrapped by every *Problems error.
var ErrInvalid = errors.New("invalid configuration")

// Problems is the error of a file with one or more problems.
type Problems struct {
	// File is the file's name as given.
	File string
	// List holds the problems sorted by line.
	List []Problem
}

func (e *Problems) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "config %s: %d problem", e.File, len(e.List))
	if len(e.List) != 1 {
		b.WriteString("s")
	}
	for _, l := range e.Lines() {
		b.WriteString("\n  " + l)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *Problems) Unwrap() error { return ErrInvalid }

// Lines returns one "FILE:LINE: KEY: MESSAGE" line per problem.
func (e *Problems) Lines() []string {
	out := make([]string, len(e.List))
	for i, p := range e.List {
		if p.Key == "" {
			out[i] = fmt.Sprintf("%s:%d: %s", e.File, p.Line, p.Msg)
		} else {
			out[i] = fmt.Sprintf("%s:%d: %s: %s", e.File, p.Line, p.Key, p.Msg)
		}
	}
	return out
}

// Load reads and parses the file at path.
func Load(path string, s *Schema) (Values, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(path, data, s)
}

// errProbe is returned by probe to make the TOML decoder report the
// position of the key it was decoding.
var errProbe = errors.New("probe")

// probe captures a raw TOML value. It always fails, so that the decoder
// wraps the failure in a ParseError carrying the key's line.
type probe struct{ v any }

func (p *probe) UnmarshalTOML(v any) error {
	p.v = v
	return errProbe
}

// Parse checks data, named name in messages, against the schema. It
// returns the values, or a *Problems listing every problem found: a syntax
// error (which stops parsing), unknown keys, values of the wrong type and
// values that fail their key's check.
func Parse(name string, data []byte, s *Schema) (Values, error) {
	var top map[string]toml.Primitive
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&top)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Problems{File: name, List: []Problem{{Line: pe.Position.Line, Msg: "syntax: " + pe.Message}}}
		}
		return nil, &Problems{File: name, List: []Problem{{Line: 1, Msg: "syntax: " + err.Error()}}}
	}
	var problems []Problem
	vals := Values{}
	var order []string
	for _, k := range md.Keys() {
		if len(k) != 1 {
			continue // inside a table: reported with the table
		}
		name := k[0]
		var p probe
		line := 0
		var pe toml.ParseError
		if err := md.PrimitiveDecode(top[name], &p); errors.As(err, &pe) {
			line = pe.Position.Line
		}
		key, ok := s.Lookup(name)
		if !ok {
			problems = append(problems, Problem{Line: line, Key: name, Msg: s.unknown(name, p.v)})
			continue
		}
		text, err := flagText(key.Kind, p.v)
		if err != nil {
			problems = append(problems, Problem{Line: line, Key: name, Msg: err.Error()})
			continue
		}
		vals[name] = Value{Text: text, Line: line}
		order = append(order, name)
	}
	for _, name := range order {
		key, _ := s.Lookup(name)
		if key.Check == nil {
			continue
		}
		if err := key.Check(vals[name].Text, vals); err != nil {
			problems = append(problems, Problem{Line: vals[name].Line, Key: name, Msg: err.Error()})
			delete(vals, name)
		}
	}
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
		return nil, &Problems{File: name, List: problems}
	}
	return vals, nil
}

// unknown explains an unknown key and suggests the nearest known one.
func (s *Schema) unknown(name string, v any) string {
	if _, table := v.(map[string]any); table {
		return "unknown key: the file has no tables or dotted keys; every key is a top-level flag name such as " + strconv.Quote(s.keys[0].Name)
	}
	msg := "unknown key"
	best, dist := "", 3
	for _, k := range s.keys {
		if d := editDistance(strings.ToLower(name), k.Name); d < dist {
			best, dist = k.Name, d
		}
	}
	if alt := strings.ReplaceAll(name, "_", "-"); alt != name {
		if _, ok := s.Lookup(alt); ok {
			best = alt
		}
	}
	if best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	return msg
}

// flagText converts a raw TOML value of the given kind to flag syntax.
func flagText(kind Kind, v any) (string, error) {
	bad := func() (string, error) {
		return "", fmt.Errorf("want %s, got %s", kind, tomlType(v))
	}
	switch kind {
	case KindString:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		return s, nil
	case KindBool:
		b, ok := v.(bool)
		if !ok {
			return bad()
		}
		return strconv.FormatBool(b), nil
	case KindInt:
		n, ok := v.(int64)
		if !ok {
			return bad()
		}
		return strconv.FormatInt(n, 10), nil
	case KindFloat:
		switch n := v.(type) {
		case float64:
			return strconv.FormatFloat(n, 'g', -1, 64), nil
		case int64:
			return strconv.FormatInt(n, 10), nil
		}
		return bad()
	case KindList:
		switch x := v.(type) {
		case string:
			return x, nil
		case []any:
			elems := make([]string, len(x))
			for i, e := range x {
				s, ok := e.(string)
				if !ok {
					return "", fmt.Errorf("want %s, got an array whose element %d is %s", kind, i+1, tomlType(e))
				}
				if strings.Contains(s, ",") {
					return "", fmt.Errorf("array element %d %q holds a comma: give each element on its own", i+1, s)
				}
				elems[i] = s
			}
			return strings.Join(elems, ","), nil
		}
		return bad()
	case KindDuration:
		s, ok := v.(string)
		if !ok {
			return bad()
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return "", fmt.Errorf("bad duration %q: want a number with a unit, such as \"10s\", \"500ms\" or \"1m30s\"", s)
		}
		return d.String(), nil
	}
	return bad()
}

func tomlType(v any) string {
	switch x := v.(type) {
	case string:
		return fmt.Sprintf("the string %q", x)
	case bool:
		return fmt.Sprintf("the boolean %t", x)
	case int64:
		return fmt.Sprintf("the integer %d", x)
	case float64:
		return fmt.Sprintf("the float %v", x)
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("%T", v)
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Apply sets, from vals, every flag of c that neither the command line nor
// the environment set, which gives the order flag > environment > file >
// default.
func Apply(c *cli.Context, vals Values) error {
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if c.IsSet(n) {
			continue
		}
		if err := c.Set(n, vals[n].Text); err != nil {
			return fmt.Errorf("config key %s (line %d): %w", n, vals[n].Line, err)
		}
	}
	return nil
}

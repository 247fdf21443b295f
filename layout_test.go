// The layering of the module, checked from `go list -deps -json`: which
// packages may depend on which. Add a package or a rule by adding a row.
package momgate_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/momgate/momgate"

// mod names a package pattern of this module: "proto", or "internal/..."
// for internal and everything under it.
func mod(p string) string { return module + "/" + p }

// corePackages are the pure core: no I/O, no daemon, nothing of internal/.
var corePackages = []string{"proto", "keys", "ping", "migration", "rotation", "strictjson", "statecheck", "handshake", "session", "reasons", "group", "replica", "pbsauth"}

// notYet are core packages that another branch adds; a missing one is not
// an error. Drop a name once its package has landed.
var notYet = map[string]bool{}

// layerRule forbids every package matching from (and not except) to depend,
// directly or through others, on a package matching forbid. Test files do
// not count: tests may use what production code may not.
type layerRule struct {
	name   string
	from   []string
	except []string
	forbid []string
	// through are third-party packages whose own imports the rule does not
	// follow, each with its reason at the rule. Keep it to named packages.
	through []string
}

func layerRules() []layerRule {
	var core []string
	for _, p := range corePackages {
		core = append(core, mod(p))
	}
	production := []string{mod("...")}
	tools := []string{mod("tools/...")}
	return []layerRule{
		{name: "the core imports nothing above it", from: core,
			forbid: []string{mod("internal/..."), mod("server/..."), mod("mom/..."), mod("qmgr/..."), mod("cmd/..."), mod("tools/...")}},
		{name: "production code never imports the tools tree", from: production, except: tools, forbid: tools},
		// hashicorp/raft ships its cluster test helpers (testing.go) in the
		// library itself; since Go 1.13 importing testing registers no
		// flags, so the cost is binary size. Our own code still may not.
		{name: "production code never imports testing", from: production, except: tools, forbid: []string{"testing"},
			through: []string{"github.com/hashicorp/raft"}},
		{name: "the server does not import the MOM", from: []string{mod("server/...")}, forbid: []string{mod("mom/...")}},
		{name: "the MOM does not import the server", from: []string{mod("mom/...")}, forbid: []string{mod("server/...")}},
	}
}

// listedPackage is what the rules read of one `go list -json` record.
type listedPackage struct {
	ImportPath string
	Imports    []string
	DepOnly    bool
}

// match reports whether path matches pattern; "x/..." matches x and
// everything under it, as in the go command.
func match(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return match(p, path) })
}

// violations returns, for each package the rule covers, the shortest
// import chain to each forbidden package it reaches, as "a -> b -> c".
func violations(r layerRule, pkgs map[string]listedPackage) []string {
	var out []string
	for _, path := range sortedKeys(pkgs) {
		p := pkgs[path]
		if p.DepOnly || !matchAny(r.from, path) || matchAny(r.except, path) {
			continue
		}
		// Breadth first, so each chain found is a shortest one.
		via := map[string]string{path: ""}
		queue := []string{path}
		for len(queue) > 0 {
			cur := queue[0]
			queue = queue[1:]
			for _, imp := range pkgs[cur].Imports {
				if _, seen := via[imp]; seen {
					continue
				}
				via[imp] = cur
				if matchAny(r.forbid, imp) {
					chain := []string{imp}
					for at := cur; at != ""; at = via[at] {
						chain = append(chain, at)
					}
					slices.Reverse(chain)
					out = append(out, strings.Join(chain, " -> "))
					continue
				}
				if matchAny(r.through, imp) {
					continue
				}
				queue = append(queue, imp)
			}
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// listPackages runs `go list -deps -json ./...` in the module root.
func listPackages(t *testing.T) map[string]listedPackage {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports,DepOnly", "./...")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(&stdout)
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) == 0 {
		t.Fatal("go list listed no packages")
	}
	return pkgs
}

func TestLayering(t *testing.T) {
	pkgs := listPackages(t)
	for _, p := range corePackages {
		if _, ok := pkgs[mod(p)]; !ok && !notYet[p] {
			t.Errorf("core package %s does not exist: update corePackages in layout_test.go", p)
		}
	}
	for _, r := range layerRules() {
		t.Run(r.name, func(t *testing.T) {
			covered := 0
			for path, p := range pkgs {
				if !p.DepOnly && matchAny(r.from, path) && !matchAny(r.except, path) {
					covered++
				}
			}
			if covered == 0 {
				t.Fatalf("the rule covers no package: from %v", r.from)
			}
			for _, v := range violations(r, pkgs) {
				t.Errorf("forbidden dependency: %s", v)
			}
		})
	}
}

// The checker itself finds an indirect forbidden import and names the
// chain, and leaves packages outside the rule alone.
func TestLayeringFindsViolations(t *testing.T) {
	pkgs := map[string]listedPackage{
		mod("proto"):              {ImportPath: mod("proto"), Imports: []string{mod("strictjson")}},
		mod("strictjson"):         {ImportPath: mod("strictjson"), Imports: []string{mod("internal/statefile"), "encoding/json"}},
		mod("internal/statefile"): {ImportPath: mod("internal/statefile"), Imports: []string{"os"}},
		mod("tools/sim"):          {ImportPath: mod("tools/sim"), Imports: []string{mod("internal/statefile")}},
		"encoding/json":           {ImportPath: "encoding/json", DepOnly: true},
		"os":                      {ImportPath: "os", DepOnly: true},
	}
	r := layerRule{from: []string{mod("proto"), mod("strictjson")}, forbid: []string{mod("internal/...")}}
	got := violations(r, pkgs)
	want := []string{
		fmt.Sprintf("%s -> %s -> %s", mod("proto"), mod("strictjson"), mod("internal/statefile")),
		fmt.Sprintf("%s -> %s", mod("strictjson"), mod("internal/statefile")),
	}
	if !slices.Equal(got, want) {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	r = layerRule{from: []string{mod("...")}, except: []string{mod("tools/...")}, forbid: []string{"os"}}
	if got := violations(r, pkgs); len(got) != 3 || slices.ContainsFunc(got, func(v string) bool { return strings.HasPrefix(v, mod("tools/")) }) {
		t.Fatalf("except not honoured or a chain missed: %q", got)
	}
	// through stops the search below a named package, and only there.
	r = layerRule{from: []string{mod("proto")}, forbid: []string{"os"}, through: []string{mod("strictjson")}}
	if got := violations(r, pkgs); len(got) != 0 {
		t.Fatalf("through not honoured: %q", got)
	}
	r.through = []string{"encoding/json"}
	if got := violations(r, pkgs); len(got) != 1 {
		t.Fatalf("through hid a chain that does not pass through it: %q", got)
	}
	for _, c := range []struct {
		pattern, path string
		want          bool
	}{
		{mod("server/..."), mod("server"), true},
		{mod("server/..."), mod("server/x"), true},
		{mod("server/..."), mod("serverx"), false},
		{mod("mom"), mod("mom/x"), false},
		{"testing", "testing/quick", false},
	} {
		if got := match(c.pattern, c.path); got != c.want {
			t.Errorf("match(%q, %q) = %v", c.pattern, c.path, got)
		}
	}
}

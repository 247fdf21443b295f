package dist

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/momgate/momgate/internal/connlimit"
	"github.com/momgate/momgate/internal/swap"
	"github.com/momgate/momgate/migration"
	"github.com/momgate/momgate/ping"
)

// emittedReasons collects the audit rejection reasons the code emits: the
// PING checks, the pre-authentication failures, the rate limit, the
// migration refusals, and the labels the daemons pass to reject() or set
// on an audit entry.
func emittedReasons(t *testing.T) []string {
	t.Helper()
	set := map[string]bool{connlimit.Reason: true}
	for _, r := range ping.Reasons() {
		set[r] = true
	}
	for _, r := range []string{swap.ReasonTimeout, swap.ReasonMalformed, swap.ReasonClosed, swap.ReasonHandshake,
		migration.RefuseNotListed, migration.RefuseDowngrade, migration.RefuseV1, migration.RefuseV2, migration.RefuseRevoked} {
		set[r] = true
	}
	labels := regexp.MustCompile(`reject\(swap\.\w+, "([a-z_]+)"|"rejected", "([a-z_]+)"|reason = "([a-z_]+)"`)
	for _, dir := range []string{"../server", "../mom"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range labels.FindAllStringSubmatch(string(b), -1) {
				for _, g := range m[1:] {
					if g != "" {
						set[g] = true
					}
				}
			}
		}
	}
	var out []string
	for r := range set {
		out = append(out, r)
	}
	slices.Sort(out)
	return out
}

// TestReadmeListsEveryRejectionReason: README's list of rejection reasons
// is the list the code emits, no more, no less.
func TestReadmeListsEveryRejectionReason(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(b), "ADDR\" lines. The reasons:")
	if !ok {
		t.Fatal("README lost its list of rejection reasons")
	}
	list, _, _ = strings.Cut(strings.TrimLeft(list, "\n"), "\n\n")
	var documented []string
	for _, m := range regexp.MustCompile("`([a-z0-9_]+)`").FindAllStringSubmatch(list, -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(documented)
	documented = slices.Compact(documented)
	emitted := emittedReasons(t)
	for _, r := range emitted {
		if !slices.Contains(documented, r) {
			t.Errorf("README does not list the rejection reason %q", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(emitted, r) {
			t.Errorf("README lists %q, which the code never emits", r)
		}
	}
}

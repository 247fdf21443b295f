package dist

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/momgate/momgate/reasons"
)

// emittedReasons are the audit rejection reasons the code emits: every
// counted reason of the registry (package reasons, whose own test checks
// that production code names each one and makes up none).
func emittedReasons(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, r := range reasons.Counted() {
		out = append(out, string(r))
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

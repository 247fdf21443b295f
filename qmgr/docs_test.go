package qmgr

import (
	"os"
	"strings"
	"testing"
)

// TestGuideShowsEveryDirective: docs/QMGR.md has a JSON example section
// for every directive of the table.
func TestGuideShowsEveryDirective(t *testing.T) {
	b, err := os.ReadFile("../docs/QMGR.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	for _, e := range entries {
		name := e.command + " " + e.object
		found := false
		for _, line := range strings.Split(doc, "\n") {
			if strings.HasPrefix(line, "### ") && strings.Contains(line, name) {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/QMGR.md has no \"### ... %s\" section", name)
		}
		if !strings.Contains(doc, "--json -c \""+name) {
			t.Errorf("docs/QMGR.md shows no --json example of %s", name)
		}
	}
}

package reasons

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/momgate/momgate/proto"
)

func TestRegistry(t *testing.T) {
	defined := map[proto.RejectCode]bool{}
	for _, c := range proto.RejectCodes() {
		defined[c] = true
	}
	seen := map[Reason]bool{}
	for _, in := range All() {
		if seen[in.Reason] {
			t.Errorf("%s registered twice", in.Reason)
		}
		seen[in.Reason] = true
		if !regexp.MustCompile(`^[a-z0-9_]+$`).MatchString(string(in.Reason)) {
			t.Errorf("label %q is not a metric label value of [a-z0-9_]", in.Reason)
		}
		if in.Code != 0 && !defined[in.Code] {
			t.Errorf("%s: code %d is not a Reject code", in.Reason, in.Code)
		}
		if in.IMCode != 0 && !defined[in.IMCode] {
			t.Errorf("%s: IM code %d is not a Reject code", in.Reason, in.IMCode)
		}
		if in.Meaning == "" {
			t.Errorf("%s: no meaning", in.Reason)
		}
		if got, ok := Lookup(in.Reason); !ok || got.Reason != in.Reason {
			t.Errorf("Lookup(%s) = %+v, %v", in.Reason, got, ok)
		}
	}
	if V2Refused.Code() != proto.RejectNotAllowed || V2Refused.IMCode() != proto.RejectVersion || Replay.IMCode() != proto.RejectReplay {
		t.Errorf("codes: v2_refused %d/%d, replay IM %d", V2Refused.Code(), V2Refused.IMCode(), Replay.IMCode())
	}
	if Reason("no_such").Code() != proto.RejectInternal {
		t.Error("an unregistered reason is not internal")
	}
	if _, ok := Lookup("no_such"); ok {
		t.Error("Lookup found an unregistered reason")
	}
}

// TestDocsTable: docs/PROTOCOL.md section 4.10 lists exactly the registry,
// in its order, with its codes.
func TestDocsTable(t *testing.T) {
	b, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "### 4.10 Rejection reasons")
	if start < 0 {
		t.Fatal("docs/PROTOCOL.md has no section 4.10 Rejection reasons")
	}
	doc = doc[start:]
	if end := strings.Index(doc, "\n## "); end > 0 {
		doc = doc[:end]
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\| (none|\\d+)(?: \\(IM: (\\d+)\\))? \\|")
	rows := row.FindAllStringSubmatch(doc, -1)
	all := All()
	if len(rows) != len(all) {
		t.Fatalf("docs table has %d rows, the registry %d", len(rows), len(all))
	}
	for i, r := range rows {
		in := all[i]
		code := "none"
		if in.Code != 0 {
			code = strconv.Itoa(int(in.Code))
		}
		im := ""
		if in.IMCode != 0 {
			im = strconv.Itoa(int(in.IMCode))
		}
		if r[1] != string(in.Reason) || r[2] != code || r[3] != im {
			t.Errorf("docs row %d: %s %s %s; registry: %s %s %s", i, r[1], r[2], r[3], in.Reason, code, im)
		}
	}
}

// TestEveryReasonIsEmitted: production code outside this package names
// every registered reason, and none makes a label of its own.
func TestEveryReasonIsEmitted(t *testing.T) {
	named := map[string]bool{}
	fset := token.NewFileSet()
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path != ".." && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			filepath.Dir(path) == filepath.Join("..", "reasons") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); ok && x.Name == "reasons" {
				named[sel.Sel.Name] = true
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Reason" {
				if x, ok := sel.X.(*ast.Ident); ok && x.Name == "reasons" {
					if _, lit := call.Args[0].(*ast.BasicLit); lit {
						t.Errorf("%s: a label of its own: %s", fset.Position(call.Pos()), fset.Position(call.Args[0].Pos()))
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("reasons.go")
	if err != nil {
		t.Fatal(err)
	}
	decl := regexp.MustCompile(`(?m)^\t(\w+)\s+Reason = "(\w+)"`)
	for _, m := range decl.FindAllStringSubmatch(string(src), -1) {
		if !named[m[1]] {
			t.Errorf("reasons.%s (%s) is named by no production code", m[1], m[2])
		}
	}
}

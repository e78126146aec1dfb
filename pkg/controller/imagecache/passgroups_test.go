package imagecache

import (
	"fmt"
	"go/ast"
	"go/token"
	"go/types"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// passGroups are the groups of the per-pass value (pass.Pass), each
// written only in the file that declares it, next to its methods.
var passGroups = []string{"In", "Book", "Seen", "Look"}

// passPackage declares them.
const passPackage = "kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"

// TestPassGroupsHaveOneWriter parses the controller's packages, with their
// types, and fails on any write to a field of a per-pass group outside the
// file that declares the group: an assignment to the field or to one of its
// elements, ++ or --, delete or clear of it, its address taken, or a group
// built by a composite literal.
func TestPassGroupsHaveOneWriter(t *testing.T) {
	writes, err := groupWrites(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range writes {
		t.Errorf("%s", w)
	}
}

// TestPassGroupsCheckFindsAStrayWrite: the check is not blind. A file that
// writes each group's field from outside fails it.
func TestPassGroupsCheckFindsAStrayWrite(t *testing.T) {
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(dir, "stray_write.go")
	writes, err := groupWrites(map[string][]byte{stray: []byte(`package imagecache

import "kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"

func strayWrites(s *pass.Pass) {
	s.Led = nil
	s.Busy["node-a"] = true
	s.CheckAt = s.Now
	_ = &s.Started
	_ = pass.Look{}
}
`)})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range writes {
		if strings.HasPrefix(w, "stray_write.go:") {
			got = append(got, w)
		}
	}
	if len(got) != 5 {
		t.Errorf("found %d stray writes, want 5: %q", len(got), got)
	}
}

// groupWrites lists, as "file:line: ...", the writes to the per-pass groups
// outside their files, in the controller's packages with overlay.
func groupWrites(overlay map[string][]byte) ([]string, error) {
	cfg := &packages.Config{Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes |
		packages.NeedTypesInfo, Overlay: overlay}
	pkgs, err := packages.Load(cfg, "kubefledged.io/kube-fledged/pkg/controller/imagecache/...")
	if err != nil {
		return nil, err
	}
	var errs []string
	packages.Visit(pkgs, nil, func(p *packages.Package) {
		for _, e := range p.Errors {
			errs = append(errs, e.Error())
		}
	})
	if len(errs) > 0 {
		return nil, fmt.Errorf("loading the packages: %s", strings.Join(errs, "; "))
	}
	// The groups' fields, and the file that owns each.
	owner := map[*types.Var]string{}
	groups := map[types.Type]string{}
	for _, p := range pkgs {
		if p.PkgPath != passPackage {
			continue
		}
		for _, f := range p.Syntax {
			file := filepath.Base(p.Fset.Position(f.Pos()).Filename)
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.TYPE {
					continue
				}
				for _, spec := range gd.Specs {
					ts := spec.(*ast.TypeSpec)
					if !slices.Contains(passGroups, ts.Name.Name) {
						continue
					}
					obj := p.TypesInfo.Defs[ts.Name]
					groups[obj.Type()] = file
					st := obj.Type().Underlying().(*types.Struct)
					for i := range st.NumFields() {
						owner[st.Field(i)] = file
					}
				}
			}
		}
	}
	if len(groups) != len(passGroups) {
		return nil, fmt.Errorf("found %d of the %d groups %v", len(groups), len(passGroups), passGroups)
	}
	var out []string
	for _, p := range pkgs {
		for _, f := range p.Syntax {
			file := filepath.Base(p.Fset.Position(f.Pos()).Filename)
			report := func(n ast.Node, what string) {
				out = append(out, fmt.Sprintf("%s:%d: %s", file, p.Fset.Position(n.Pos()).Line, what))
			}
			// written reports e when it is a group's field (or one of its
			// elements) written outside the group's file.
			written := func(e ast.Expr) {
				for {
					switch x := e.(type) {
					case *ast.ParenExpr:
						e = x.X
						continue
					case *ast.IndexExpr:
						e = x.X
						continue
					case *ast.StarExpr:
						e = x.X
						continue
					}
					break
				}
				sel, ok := e.(*ast.SelectorExpr)
				if !ok {
					return
				}
				s := p.TypesInfo.Selections[sel]
				if s == nil || s.Kind() != types.FieldVal {
					return
				}
				v, _ := s.Obj().(*types.Var)
				if own, ok := owner[v]; ok && (own != file || p.PkgPath != passPackage) {
					report(sel, fmt.Sprintf("writes %s, which only %s writes", v.Name(), own))
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch x := n.(type) {
				case *ast.AssignStmt:
					for _, l := range x.Lhs {
						written(l)
					}
				case *ast.IncDecStmt:
					written(x.X)
				case *ast.UnaryExpr:
					if x.Op == token.AND {
						written(x.X)
					}
				case *ast.CallExpr:
					if id, ok := x.Fun.(*ast.Ident); ok && (id.Name == "delete" || id.Name == "clear") && len(x.Args) > 0 {
						if _, builtin := p.TypesInfo.Uses[id].(*types.Builtin); builtin {
							written(x.Args[0])
						}
					}
				case *ast.CompositeLit:
					if tv, ok := p.TypesInfo.Types[x]; ok {
						if own, ok := groups[tv.Type]; ok && (own != file || p.PkgPath != passPackage) {
							report(x, fmt.Sprintf("builds a %s, which only %s builds", tv.Type, own))
						}
					}
				}
				return true
			})
		}
	}
	return out, nil
}

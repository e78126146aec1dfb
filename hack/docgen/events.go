package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// eventsPage lists the Events the controller records (from its
// recorder.Event and Eventf calls) and the reasons it writes in conditions,
// failures and skips (from its reason constants).
func eventsPage(root string) (string, error) {
	type constant struct{ name, value, doc, file string }
	var consts []constant
	values := map[string]string{} // package dir + name -> value
	type event struct{ reason, typ, object, message, file string }
	var events []event
	fset := token.NewFileSet()
	type file struct {
		f    *ast.File
		name string // its path from root
		pkg  string // the directory of its package
	}
	var files []file
	// The controllers' packages, their internal ones among them, the
	// reasons they share, and the puller's.
	for _, top := range []string{"pkg/reasons", "pkg/plan", "pkg/controller", "pkg/puller"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			files = append(files, file{f, rel, filepath.Dir(rel)})
			return nil
		})
		if err != nil {
			return "", err
		}
	}
	// The string constants first, for the calls that name them: by their
	// package's directory, and by its name for the other packages' calls.
	for _, fl := range files {
		shared := fl.pkg == "pkg/reasons"
		for _, d := range fl.f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for j, n := range vs.Names {
					if j >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[j].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, _ := strconv.Unquote(lit.Value)
					values[fl.pkg+"."+n.Name] = v
					values[fl.f.Name.Name+"."+n.Name] = v
					if !shared && !strings.HasPrefix(strings.ToLower(n.Name), "reason") {
						continue
					}
					doc := vs.Doc.Text()
					if doc == "" {
						doc = vs.Comment.Text()
					}
					if doc == "" && len(gd.Specs) == 1 {
						doc = gd.Doc.Text()
					}
					consts = append(consts, constant{n.Name, v, meaning(n.Name, doc), fl.name})
				}
			}
		}
	}
	for _, fl := range files {
		str := func(e ast.Expr) (string, bool) {
			switch e := e.(type) {
			case *ast.BasicLit:
				v, err := strconv.Unquote(e.Value)
				return v, err == nil
			case *ast.Ident:
				v, ok := values[fl.pkg+"."+e.Name]
				return v, ok
			case *ast.SelectorExpr:
				if pkg, ok := e.X.(*ast.Ident); ok {
					v, ok := values[pkg.Name+"."+e.Sel.Name]
					return v, ok
				}
			}
			return "", false
		}
		var concat func(e ast.Expr) (string, bool)
		concat = func(e ast.Expr) (string, bool) {
			if b, ok := e.(*ast.BinaryExpr); ok && b.Op == token.ADD {
				l, ok1 := concat(b.X)
				r, ok2 := concat(b.Y)
				return l + r, ok1 && ok2
			}
			if v, ok := str(e); ok {
				return v, true
			}
			return "%v", true // a value the code computes
		}
		ast.Inspect(fl.f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || (sel.Sel.Name != "Event" && sel.Sel.Name != "Eventf") || len(call.Args) < 4 {
				return true
			}
			// c.recorder.Event(...), or recorder.Event(...) where it is
			// passed on.
			switch x := sel.X.(type) {
			case *ast.SelectorExpr:
				if x.Sel.Name != "recorder" {
					return true
				}
			case *ast.Ident:
				if x.Name != "recorder" {
					return true
				}
			default:
				return true
			}
			reason, ok := str(call.Args[2])
			if !ok {
				return true
			}
			typ := "Normal"
			if t, ok := call.Args[1].(*ast.SelectorExpr); ok && t.Sel.Name == "EventTypeWarning" {
				typ = "Warning"
			}
			object := "ImageCache"
			if id, ok := call.Args[0].(*ast.Ident); ok && strings.Contains(strings.ToLower(id.Name), "node") {
				object = "Node"
			}
			msg, _ := concat(call.Args[3])
			if msg == "%v" {
				msg = "(composed in the code)"
			}
			events = append(events, event{reason, typ, object, msg, fl.name})
			return true
		})
	}
	sort.SliceStable(events, func(i, j int) bool {
		return events[i].object+events[i].reason < events[j].object+events[j].reason
	})
	sort.SliceStable(consts, func(i, j int) bool { return consts[i].value < consts[j].value })

	var b strings.Builder
	b.WriteString("# Events and reasons\n\n")
	b.WriteString("## Events\n\n")
	b.WriteString("What `kubectl describe imagecache` and `kubectl describe node` show, from the controller's calls " +
		"(`%s`, `%d`, `%v` stand for what it fills in).\n\n")
	b.WriteString("| Reason | Type | On | Message | Source |\n| --- | --- | --- | --- | --- |\n")
	seen := map[string]bool{}
	for _, e := range events {
		key := e.reason + e.typ + e.object + e.message
		if seen[key] {
			continue
		}
		seen[key] = true
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", code(e.reason), e.typ, e.object, cell(e.message), code(e.file))
	}
	b.WriteString("\n## Reasons\n\n")
	b.WriteString("Every reason the code names: in Events (above), in the conditions' `reason`, in `status.failures`, " +
		"`status.kept` and `status.unpinned`, and for skipped nodes.\n\n")
	b.WriteString("| Reason | Meaning | Source |\n| --- | --- | --- |\n")
	seen = map[string]bool{}
	for _, c := range consts {
		if seen[c.value] {
			continue
		}
		seen[c.value] = true
		fmt.Fprintf(&b, "| %s | %s | %s |\n", code(c.value), cell(c.doc), code(c.file))
	}
	return b.String(), nil
}

// meaning is a constant's doc comment without its name in front.
func meaning(name, doc string) string {
	doc = strings.TrimSpace(doc)
	for _, p := range []string{name + ": ", name + " is ", name + " says "} {
		if rest, ok := strings.CutPrefix(doc, p); ok {
			doc = rest
			break
		}
	}
	if doc != "" {
		doc = strings.ToUpper(doc[:1]) + doc[1:]
	}
	return doc
}

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
	for _, dir := range []string{"pkg/controller/imagecache", "pkg/controller/warming", "pkg/puller"} {
		entries, err := os.ReadDir(filepath.Join(root, dir))
		if err != nil {
			return "", err
		}
		var files []*ast.File
		var names []string
		for _, e := range entries {
			if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(root, dir, e.Name()), nil, parser.ParseComments)
			if err != nil {
				return "", err
			}
			files, names = append(files, f), append(names, filepath.Join(dir, e.Name()))
		}
		// The string constants first, for the calls that name them.
		for i, f := range files {
			for _, d := range f.Decls {
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
						values[dir+"."+n.Name] = v
						if !strings.HasPrefix(strings.ToLower(n.Name), "reason") {
							continue
						}
						doc := vs.Doc.Text()
						if doc == "" {
							doc = vs.Comment.Text()
						}
						if doc == "" && len(gd.Specs) == 1 {
							doc = gd.Doc.Text()
						}
						consts = append(consts, constant{n.Name, v, meaning(n.Name, doc), names[i]})
					}
				}
			}
		}
		str := func(e ast.Expr) (string, bool) {
			switch e := e.(type) {
			case *ast.BasicLit:
				v, err := strconv.Unquote(e.Value)
				return v, err == nil
			case *ast.Ident:
				v, ok := values[dir+"."+e.Name]
				return v, ok
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
		for i, f := range files {
			ast.Inspect(f, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok || (sel.Sel.Name != "Event" && sel.Sel.Name != "Eventf") || len(call.Args) < 4 {
					return true
				}
				if x, ok := sel.X.(*ast.SelectorExpr); !ok || x.Sel.Name != "recorder" {
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
				events = append(events, event{reason, typ, object, msg, names[i]})
				return true
			})
		}
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

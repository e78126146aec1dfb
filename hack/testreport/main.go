// Command testreport reads `go test -json` on standard input and prints what
// `go test` prints without -v, less the packages with no test files: a line
// per package, and the whole output of each test that failed. It ends with a
// summary that names every skipped test with its reason, so that no suite is
// skipped silently. It exits 1 when a test or a build failed.
//
//	go test -json ./... | go run ./hack/testreport
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
)

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action     string
	Package    string
	Test       string
	Output     string
	ImportPath string
}

type skip struct {
	pkg, test, reason string
}

// testKey names a test within its package.
type testKey struct{ pkg, test string }

// fileLine is the "file_test.go:12: " prefix t.Log and t.Skip put on a line.
var fileLine = regexp.MustCompile(`^\s*[\w.-]+\.go:\d+: `)

func main() {
	failed, skips, err := report(os.Stdin, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
	printSkips(os.Stdout, skips)
	if failed {
		os.Exit(1)
	}
}

// report copies the results to w as it reads them, and returns whether
// something failed and what was skipped.
func report(r io.Reader, w io.Writer) (bool, []skip, error) {
	out := map[testKey][]string{}
	var skips []skip
	failed := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if err := json.Unmarshal(line, &e); err != nil || e.Action == "" {
			// Not an event (go vet or the linker may print): pass it on.
			fmt.Fprintln(w, string(line))
			continue
		}
		k := testKey{e.Package, e.Test}
		switch {
		case e.Action == "build-output":
			fmt.Fprint(w, e.Output)
		case e.Action == "build-fail":
			failed = true
		case e.Test == "" && e.Action == "output":
			// The package's own lines: "ok  pkg 1.2s", "FAIL pkg", and what
			// TestMain prints.
			if !strings.HasPrefix(e.Output, "PASS") && !strings.HasPrefix(e.Output, "FAIL\n") &&
				!strings.HasSuffix(e.Output, "[no test files]\n") {
				fmt.Fprint(w, e.Output)
			}
		case e.Test == "" && e.Action == "fail":
			failed = true
		case e.Action == "output":
			out[k] = append(out[k], e.Output)
		case e.Action == "fail":
			failed = true
			for _, l := range out[k] {
				fmt.Fprint(w, l)
			}
			delete(out, k)
		case e.Test == "":
			// A package's start, pass or skip (no test files).
		case e.Action == "skip":
			skips = append(skips, skip{pkg: e.Package, test: e.Test, reason: skipReason(out[k])})
			delete(out, k)
		case e.Action == "pass":
			delete(out, k)
		}
	}
	return failed, skips, sc.Err()
}

// skipReason is what the test said before it skipped, without go test's own
// lines and the file:line prefix.
func skipReason(lines []string) string {
	var said []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- ") {
			continue
		}
		said = append(said, strings.TrimSpace(fileLine.ReplaceAllString(l, "")))
	}
	if len(said) == 0 {
		return "(no reason given)"
	}
	return strings.Join(said, " ")
}

func printSkips(w io.Writer, skips []skip) {
	if len(skips) == 0 {
		fmt.Fprintln(w, "\nNo test was skipped.")
		return
	}
	sort.Slice(skips, func(i, j int) bool {
		if skips[i].pkg != skips[j].pkg {
			return skips[i].pkg < skips[j].pkg
		}
		return skips[i].test < skips[j].test
	})
	fmt.Fprintf(w, "\nSKIPPED: %d %s, and why:\n", len(skips), plural(len(skips), "test", "tests"))
	for _, s := range skips {
		fmt.Fprintf(w, "  %s %s: %s\n", strings.TrimPrefix(s.pkg, "kubefledged.io/kube-fledged/"), s.test, s.reason)
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

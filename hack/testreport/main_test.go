package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A stream as `go test -json` writes it: one package passes with a skipped
// test, another fails one test.
const stream = `{"Action":"start","Package":"kubefledged.io/kube-fledged/test/cri"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/pkg/client","Output":"?   \tkubefledged.io/kube-fledged/pkg/client\t[no test files]\n"}
{"Action":"skip","Package":"kubefledged.io/kube-fledged/pkg/client","Elapsed":0}
{"Action":"run","Package":"kubefledged.io/kube-fledged/test/cri","Test":"TestRemoverAgainstContainerd"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/test/cri","Test":"TestRemoverAgainstContainerd","Output":"=== RUN   TestRemoverAgainstContainerd\n"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/test/cri","Test":"TestRemoverAgainstContainerd","Output":"    cri_test.go:22: needs root to run containerd (running as uid 1000): run ` + "`make test`" + ` as root\n"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/test/cri","Test":"TestRemoverAgainstContainerd","Output":"--- SKIP: TestRemoverAgainstContainerd (0.00s)\n"}
{"Action":"skip","Package":"kubefledged.io/kube-fledged/test/cri","Test":"TestRemoverAgainstContainerd","Elapsed":0}
{"Action":"output","Package":"kubefledged.io/kube-fledged/test/cri","Output":"PASS\n"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/test/cri","Output":"ok  \tkubefledged.io/kube-fledged/test/cri\t0.01s\n"}
{"Action":"pass","Package":"kubefledged.io/kube-fledged/test/cri","Elapsed":0.01}
{"Action":"run","Package":"kubefledged.io/kube-fledged/pkg/x","Test":"TestGood"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/pkg/x","Test":"TestGood","Output":"=== RUN   TestGood\n"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/pkg/x","Test":"TestGood","Output":"--- PASS: TestGood (0.00s)\n"}
{"Action":"pass","Package":"kubefledged.io/kube-fledged/pkg/x","Test":"TestGood","Elapsed":0}
{"Action":"run","Package":"kubefledged.io/kube-fledged/pkg/x","Test":"TestBad"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/pkg/x","Test":"TestBad","Output":"=== RUN   TestBad\n"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/pkg/x","Test":"TestBad","Output":"    x_test.go:9: got 1, want 2\n"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/pkg/x","Test":"TestBad","Output":"--- FAIL: TestBad (0.00s)\n"}
{"Action":"fail","Package":"kubefledged.io/kube-fledged/pkg/x","Test":"TestBad","Elapsed":0}
{"Action":"output","Package":"kubefledged.io/kube-fledged/pkg/x","Output":"FAIL\n"}
{"Action":"output","Package":"kubefledged.io/kube-fledged/pkg/x","Output":"FAIL\tkubefledged.io/kube-fledged/pkg/x\t0.02s\n"}
{"Action":"fail","Package":"kubefledged.io/kube-fledged/pkg/x","Elapsed":0.02}
`

func TestReport(t *testing.T) {
	var out bytes.Buffer
	failed, skips, err := report(strings.NewReader(stream), &out)
	if err != nil {
		t.Fatal(err)
	}
	if !failed {
		t.Error("a failed test was not reported as a failure")
	}
	want := "ok  \tkubefledged.io/kube-fledged/test/cri\t0.01s\n" +
		"=== RUN   TestBad\n    x_test.go:9: got 1, want 2\n--- FAIL: TestBad (0.00s)\n" +
		"FAIL\tkubefledged.io/kube-fledged/pkg/x\t0.02s\n"
	if diff := cmp.Diff(want, out.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	wantSkips := []skip{{pkg: "kubefledged.io/kube-fledged/test/cri", test: "TestRemoverAgainstContainerd",
		reason: "needs root to run containerd (running as uid 1000): run `make test` as root"}}
	if diff := cmp.Diff(wantSkips, skips, cmp.AllowUnexported(skip{})); diff != "" {
		t.Errorf("skips (-want +got):\n%s", diff)
	}

	out.Reset()
	printSkips(&out, skips)
	if want := "\nSKIPPED: 1 test, and why:\n  test/cri TestRemoverAgainstContainerd: needs root to run containerd (running as uid 1000): run `make test` as root\n"; out.String() != want {
		t.Errorf("summary:\n%q\nwant\n%q", out.String(), want)
	}
}

func TestReportAllPassed(t *testing.T) {
	var out bytes.Buffer
	failed, skips, err := report(strings.NewReader(strings.Join(strings.Split(stream, "\n")[:15], "\n")), &out)
	if err != nil || failed || len(skips) != 1 {
		t.Fatalf("failed %v, skips %v, err %v; want a pass with one skip", failed, skips, err)
	}
}

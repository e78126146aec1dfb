package imagecache

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	core "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/ptr"
)

// The golden traces prove a refactor leaves the controller's behaviour as
// it was: every pass a scenario test runs (fixture.pass) adds to its test's
// trace the writes it made, in order, with their objects, the events it
// recorded, and the requeue and error it returned. At the end of the test
// the trace must equal testdata/trace/<test>.trace byte for byte;
// `go test -run X -update-traces` writes it anew.
//
// Two things a pass does are not deterministic, and are normalised: the
// Jobs it creates or deletes at once (slowStart) reach the API server in
// any order, so a run of writes alike is sorted; and the fake API server
// gives created Jobs UIDs in that order, so a UID is written as the name of
// its Job.
var updateTraces = flag.Bool("update-traces", false, "write the golden traces of the scenario tests (testdata/trace)")

// maxTracedObject is the longest object a trace spells out; a longer one is
// written as its size and SHA-256, which still changes with any byte of it.
const maxTracedObject = 4096

// trace is one test's record of its passes.
type trace struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	pass []string // the writes of the pass under way
	evs  []string // its events
	// jobNames maps the UID the fake API server gave a Job to its name.
	jobNames map[types.UID]string
	n        int
}

// traceSeq tells apart the fixtures of one test.
var traceSeq sync.Map // *testing.T -> *int

// newTrace starts the trace of a fixture, and checks it against its golden
// file when the test ends.
func newTrace(t *testing.T) *trace {
	tr := &trace{jobNames: map[types.UID]string{}}
	if strings.HasPrefix(t.Name(), "Fuzz") {
		return tr // the fuzzer's inputs have no golden trace
	}
	v, _ := traceSeq.LoadOrStore(t, new(int))
	seq := v.(*int)
	*seq++
	name := strings.NewReplacer("/", "__", "#", "_", " ", "_").Replace(t.Name())
	if *seq > 1 {
		name += fmt.Sprintf(".%d", *seq)
	}
	path := filepath.Join("testdata", "trace", name+".trace")
	t.Cleanup(func() {
		got := tr.bytes()
		if *updateTraces {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("TRACE: no golden trace %s (go test -run '^%s$' -update-traces writes it): %v", path, t.Name(), err)
			return
		}
		if !bytes.Equal(got, want) {
			t.Errorf("TRACE: the passes differ from %s:\n%s", path, firstDifference(want, got))
		}
	})
	return tr
}

// firstDifference shows the first line where two traces part.
func firstDifference(want, got []byte) string {
	wl, gl := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n  want: %s\n  got:  %s", i+1, w, g)
		}
	}
	return "(no line differs)"
}

// record is the reactor, first on both fake clientsets, that adds each
// write to the pass under way.
func (tr *trace) record(action core.Action) (bool, runtime.Object, error) {
	switch action.GetVerb() {
	case "get", "list", "watch":
		return false, nil, nil
	}
	line := tr.describe(action.DeepCopy())
	tr.mu.Lock()
	tr.pass = append(tr.pass, line)
	tr.mu.Unlock()
	return false, nil, nil
}

// named records the UID the fake API server gave a Job.
func (tr *trace) named(job *batchv1.Job) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.jobNames[job.UID] = job.Namespace + "/" + job.Name
}

func (tr *trace) describe(a core.Action) string {
	what := a.GetVerb() + " " + a.GetResource().Resource
	if a.GetSubresource() != "" {
		what += "/" + a.GetSubresource()
	}
	what += " " + a.GetNamespace()
	switch a := a.(type) {
	case core.CreateAction:
		return what + " " + object(a.GetObject())
	case core.UpdateAction:
		return what + " " + object(a.GetObject())
	case core.PatchAction:
		return fmt.Sprintf("%s/%s %s %s", what, a.GetName(), a.GetPatchType(), object(a.GetPatch()))
	case core.DeleteAction:
		opts := a.GetDeleteOptions()
		if p := opts.Preconditions; p != nil && p.UID != nil {
			tr.mu.Lock()
			name := tr.jobNames[*p.UID]
			tr.mu.Unlock()
			if name != "" {
				opts.Preconditions = &metav1.Preconditions{UID: ptr.To(types.UID("uid of " + name)), ResourceVersion: p.ResourceVersion}
			}
		}
		return fmt.Sprintf("%s/%s %s", what, a.GetName(), object(opts))
	}
	return what
}

// object is an object as one line of JSON, or, when long, its size and hash.
func object(o any) string {
	var data []byte
	if b, ok := o.([]byte); ok {
		data = b
	} else {
		var err error
		if data, err = json.Marshal(o); err != nil {
			return "(" + err.Error() + ")"
		}
	}
	if len(data) > maxTracedObject {
		return fmt.Sprintf("(%d bytes, sha256 %x)", len(data), sha256.Sum256(data))
	}
	return string(data)
}

// event records an event of the pass under way.
func (tr *trace) event(line string) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.evs = append(tr.evs, line)
}

// begin starts a pass: what happened before it (the test's own writes) is
// not the pass's.
func (tr *trace) begin() {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.pass, tr.evs = nil, nil
}

// end adds the pass under way to the trace.
func (tr *trace) end(key string, requeue time.Duration, err error) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.n++
	fmt.Fprintf(&tr.buf, "pass %d %s: requeue %v", tr.n, key, requeue)
	if err != nil {
		fmt.Fprintf(&tr.buf, ", error %q", err.Error())
	}
	tr.buf.WriteString("\n")
	for _, w := range sortRuns(tr.pass) {
		fmt.Fprintf(&tr.buf, "  write %s\n", w)
	}
	evs := append([]string(nil), tr.evs...)
	sort.Strings(evs)
	for _, e := range evs {
		fmt.Fprintf(&tr.buf, "  event %s\n", e)
	}
	tr.pass, tr.evs = nil, nil
}

func (tr *trace) bytes() []byte {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]byte(nil), tr.buf.Bytes()...)
}

// sortRuns sorts each run of writes of the same verb and resource, which
// one pass may make at once, in any order.
func sortRuns(lines []string) []string {
	out := append([]string(nil), lines...)
	kind := func(s string) string {
		f := strings.SplitN(s, " ", 3)
		return f[0] + " " + f[1]
	}
	for i := 0; i < len(out); {
		j := i
		for j < len(out) && kind(out[j]) == kind(out[i]) {
			j++
		}
		sort.Strings(out[i:j])
		i = j
	}
	return out
}

// tracingRecorder passes the controller's events on to the test's
// recorder, and adds each to the trace.
type tracingRecorder struct {
	*record.FakeRecorder
	tr *trace
}

func (r tracingRecorder) Event(obj runtime.Object, eventtype, reason, message string) {
	r.tr.event(eventtype + " " + reason + " " + message)
	r.FakeRecorder.Event(obj, eventtype, reason, message)
}

func (r tracingRecorder) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	r.Event(obj, eventtype, reason, fmt.Sprintf(messageFmt, args...))
}

func (r tracingRecorder) AnnotatedEventf(obj runtime.Object, _ map[string]string, eventtype, reason, messageFmt string, args ...any) {
	r.Eventf(obj, eventtype, reason, messageFmt, args...)
}

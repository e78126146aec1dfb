package imagecache

import (
	"fmt"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
)

// caller names the test line that called the fixture.
func (f *fixture) caller() string {
	for i := 1; i < 8; i++ {
		if _, file, n, ok := goruntime.Caller(i); ok && !strings.HasSuffix(file, "fixture_test.go") {
			return fmt.Sprintf("%s:%d", filepath.Base(file), n)
		}
	}
	return ""
}

// expectWrites fails the test, naming the test line that synced, when the
// writes are not those wanted.
func (f *fixture) expectWrites(writes []core.Action, want ...string) {
	f.t.Helper()
	if got, wanted := writeList(writes), expandWrites(want); !slices.Equal(got, wanted) {
		f.t.Errorf("WRITES %s: got [%s], want [%s]", f.caller(), strings.Join(compactWrites(got), " | "), strings.Join(want, " | "))
	}
}

// writeList describes each write, sorted, but those of the ledger's slices:
// the traces record them, and the tests of the slices look at them
// (sliceWrites).
func writeList(writes []core.Action) []string {
	out := make([]string, 0, len(writes))
	for _, a := range writes {
		if a.GetResource().Resource == "imagecacheslices" {
			continue
		}
		d := a.GetVerb() + " " + a.GetResource().Resource
		if a.GetSubresource() != "" {
			d += "/" + a.GetSubresource()
		}
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

// sliceWrites returns the writes of the ledger's slices.
func sliceWrites(writes []core.Action) []core.Action {
	var out []core.Action
	for _, a := range writes {
		if a.GetResource().Resource == "imagecacheslices" {
			out = append(out, a)
		}
	}
	return out
}

// expandWrites expands "X*N" into N times X, sorted.
func expandWrites(want []string) []string {
	var out []string
	for _, w := range want {
		d, n := w, 1
		if i := strings.LastIndex(w, "*"); i >= 0 {
			if k, err := strconv.Atoi(w[i+1:]); err == nil {
				d, n = w[:i], k
			}
		}
		for range n {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// compactWrites is the inverse of expandWrites, for messages.
func compactWrites(list []string) []string {
	var out []string
	for i := 0; i < len(list); {
		j := i
		for j < len(list) && list[j] == list[i] {
			j++
		}
		if j-i > 1 {
			out = append(out, fmt.Sprintf("%s*%d", list[i], j-i))
		} else {
			out = append(out, list[i])
		}
		i = j
	}
	return out
}

// syncStarted runs the sync that starts an operation, checks that it only
// recorded the start (Jobs are named after it, so none may exist before it
// is recorded), and returns the writes of the sync after it, checked
// against want.
func (f *fixture) syncStarted(name string, want ...string) ([]core.Action, time.Duration) {
	f.t.Helper()
	writes, after := f.sync(name, f.startWrites(name)...)
	if st := statusUpdates(writes); len(st) == 1 && st[0].Status.Status == v1alpha2.ImageCacheActionStatusProcessing && after != 0 {
		f.t.Errorf("after starting an operation: requeue after %v, want none (the informer's update event brings it back)", after)
	}
	return f.sync(name, want...)
}

// syncStartedOnly is syncStarted, with the pass after it checked as
// syncOnly checks it.
func (f *fixture) syncStartedOnly(name string, kinds ...string) ([]core.Action, time.Duration) {
	f.t.Helper()
	f.sync(name, f.startWrites(name)...)
	return f.syncOnly(name, kinds...)
}

// startWrites are the writes of the pass that starts an operation: its
// status, and, for a refresh its annotation asked for, the annotation taken
// by it (status.TakeRequest).
func (f *fixture) startWrites(name string) []string {
	ic := f.imageCache(name)
	value, refresh := ic.Annotations[v1alpha2.AnnotationRefresh]
	_, purge := ic.Annotations[v1alpha2.AnnotationPurge]
	if refresh && !purge && ic.Status.StartTime != nil && ic.Generation == ic.Status.ObservedGeneration &&
		!strings.HasPrefix(value, "taken by") {
		return []string{wAnnotation, wStatus}
	}
	return []string{wStatus}
}

// events returns the events recorded since the last call.
func (f *fixture) events() []string { return fledgedtest.Events(f.recorder) }

// expectEvent fails the test, with what was recorded, unless an event
// starting with prefix was recorded since the last call.
func (f *fixture) expectEvent(prefix string) {
	f.t.Helper()
	evs := f.events()
	for _, e := range evs {
		if strings.HasPrefix(e, prefix) {
			return
		}
	}
	f.t.Errorf("no event %q; recorded %q", prefix, evs)
}

// The writes a sync makes, for expectWrites.
const (
	wStatus      = "update imagecaches/status"
	wCreateJob   = "create jobs"
	wDeleteJob   = "delete jobs"
	wPatchJob    = "patch jobs"
	wAnnotation  = "patch imagecaches"
	wCreateEvent = "create events"
)

// writes returns the write actions both clients saw since the last call.
func (f *fixture) writes() []core.Action {
	var out []core.Action
	for _, a := range append(f.kube.Actions(), f.client.Actions()...) {
		switch a.GetVerb() {
		case "get", "list", "watch":
			continue
		}
		out = append(out, a)
	}
	f.clearActions()
	return out
}

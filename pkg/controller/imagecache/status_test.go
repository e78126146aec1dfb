package imagecache

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

func TestStatusMessage(t *testing.T) {
	counts := func(desired, succeeded, present, failed, pending, skipped int32) pullCounts {
		return pullCounts{PullCounts: v1alpha2.PullCounts{Desired: desired, Succeeded: succeeded, AlreadyPresent: present,
			Failed: failed, Pending: pending, Skipped: skipped}}
	}
	with := func(c pullCounts, change func(*pullCounts)) pullCounts { change(&c); return c }
	for _, tc := range []struct {
		name   string
		verb   string
		counts pullCounts
		nodes  int
		want   string
	}{
		{"no node, pull", "Pulled", pullCounts{}, 0, "No node matches the cache's node selectors; nothing to pull"},
		{"no node, purge", "Removed", pullCounts{}, 0, "No node matches the cache's node selectors; nothing to remove"},
		{"all pulled, one node", "Pulled", counts(2, 2, 0, 0, 0, 0), 1, "Pulled 2 of 2 images on 1 node"},
		{"some present", "Pulled", counts(4, 4, 1, 0, 0, 0), 2, "Pulled 4 of 4 images on 2 nodes (1 already present)"},
		{"failed and pending", "Pulled", counts(6, 2, 0, 1, 3, 0), 3, "Pulled 2 of 6 images on 3 nodes; 1 failed; 3 pending"},
		{"failures not listed", "Pulled", with(counts(6, 5, 0, 1, 0, 0), func(c *pullCounts) { c.omitted = 1 }), 3,
			"Pulled 5 of 6 images on 3 nodes; 1 failed (1 not listed in status.failures)"},
		{"skipped", "Pulled", with(counts(4, 2, 0, 0, 0, 2), func(c *pullCounts) {
			c.skippedNodes, c.skippedBy = 1, map[string]int{reasons.NodeNotReady: 1}
		}), 2, "Pulled 2 of 4 images on 2 nodes; 2 skipped on 1 node not ready"},
		{"skipped for two reasons", "Pulled", with(counts(8, 2, 0, 0, 0, 6), func(c *pullCounts) {
			c.skippedNodes, c.skippedBy = 4, map[string]int{reasons.NodeNotReady: 1, reasons.PurgeEnded: 1, reasons.UnsupportedOS: 2}
		}), 5, "Pulled 2 of 8 images on 5 nodes; 6 skipped on 4 nodes (2 not Linux, 2 not ready)"},
		{"skipped, cordoned", "Pulled", with(counts(2, 0, 0, 0, 0, 2), func(c *pullCounts) {
			c.skippedNodes, c.skippedBy = 1, map[string]int{reasons.NodeUnschedulable: 1}
		}), 1, "Pulled 0 of 2 images on 1 node; 2 skipped on 1 node cordoned"},
		{"removals left", "Pulled", with(counts(2, 2, 0, 0, 0, 0), func(c *pullCounts) { c.removals = 3 }), 1,
			"Pulled 2 of 2 images on 1 node; removing 3 dropped from the spec"},
		{"purge, kept for both reasons", "Removed", with(counts(5, 5, 3, 0, 0, 0), func(c *pullCounts) {
			c.keptBy = map[string]int{reasons.WantedByOtherCache: 1, reasons.NotPulledByThisCache: 2}
		}), 2, "Removed 2 of 5 images on 2 nodes; 3 kept (1 wanted by another ImageCache, 2 not pulled there by this cache)"},
		{"purge, kept with no reason counted", "Removed", counts(2, 2, 1, 0, 0, 0), 1, "Removed 1 of 2 images on 1 node; 1 kept"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := statusMessage(tc.verb, tc.counts, tc.nodes); got != tc.want {
				t.Errorf("statusMessage:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestCountPulls(t *testing.T) {
	ic := newImageCache("web", withImages("a", "b"), withSelectedImages(map[string]string{"gpu": "yes"}, "c", "INVALID:x"))
	nodes := []*corev1.Node{newNode("n1"), newNode("n2", withLabels("gpu", "yes")), newNode("n3", notReady())}
	p := plan.Compute(ic, nodes, testConfig().NodeFilter(), false)
	key := func(img string) string { return p.Nodes["n1"].Images[map[string]int{"a": 0, "b": 1}[img]].Key }
	for _, tc := range []struct {
		name   string
		states map[string]map[string]ledger.State // node -> image (as the spec spells it) -> state
		want   v1alpha2.PullCounts
		failed map[string]int
		skip   int
	}{{
		name: "nothing settled",
		want: v1alpha2.PullCounts{Desired: 8, Failed: 1, Pending: 5, Skipped: 2},
		// the invalid image, on n2
		failed: map[string]int{"INVALID:x": 1}, skip: 1,
	}, {
		name: "pulled, present, failed",
		states: map[string]map[string]ledger.State{
			"n1": {"a": ledger.Pulled, "b": ledger.Present},
			"n2": {"a": ledger.Failed},
			"n3": {"a": ledger.Pulled}, // settled before it turned NotReady
		},
		want:   v1alpha2.PullCounts{Desired: 8, Succeeded: 3, AlreadyPresent: 1, Failed: 2, Pending: 2, Skipped: 1},
		failed: map[string]int{"INVALID:x": 1, "a": 1}, skip: 1,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			led := ledger.New(1)
			for node, m := range tc.states {
				for img, s := range m {
					led.Set(node, key(img), s)
				}
			}
			got := countPulls(p, led)
			if diff := cmp.Diff(tc.want, got.PullCounts); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.failed, got.failedByImage); diff != "" {
				t.Errorf("failed by image (-want +got):\n%s", diff)
			}
			if got.skippedNodes != tc.skip {
				t.Errorf("skipped nodes %d, want %d", got.skippedNodes, tc.skip)
			}
		})
	}
}

// TestTimeLeftInTheMessage: while a create runs, its message says about how
// long is left once enough has settled; a pass that settles nothing keeps
// the estimate (no write for the clock alone); the finished operation says
// nothing of it.
func TestTimeLeftInTheMessage(t *testing.T) {
	var nodes []*corev1.Node
	for i := range 20 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%02d", i)))
	}
	cfg := testConfig()
	cfg.Puller.PullDeadline = 10 * time.Minute
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, nodes...)
	f.syncStarted("web", times(wCreateJob, 20))
	jobs := f.jobs()
	for _, j := range jobs[:10] {
		f.completeJob(j)
	}
	f.clock.Step(time.Minute)
	f.syncOnly("web", wDeleteJob, wStatus)
	if got, want := f.imageCache("web").Status.Message, "Pulled 10 of 20 images on 20 nodes; 10 pending; about 1 minute left"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	f.clock.Step(time.Minute)
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("a pass that settled nothing wrote %s", describe(writes))
	}
	for _, j := range jobs[10:] {
		f.completeJob(j)
	}
	f.syncOnly("web", wDeleteJob, wStatus)
	if got, want := f.imageCache("web").Status.Message, "Pulled 20 of 20 images on 20 nodes"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}

package status

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

const testNS = "team-a"

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// testFilter is the controller's node filter with its default flags.
var testFilter = plan.NodeFilter{Architectures: []string{"amd64", "arm64"}, Tolerations: puller.DefaultTolerations()}

func newImageCache(name string, opts ...fledgedtest.CacheOption) *v1alpha2.ImageCache {
	return fledgedtest.NewImageCache(testNS, name, opts...)
}

var (
	withImages         = fledgedtest.WithImages
	withSelectedImages = fledgedtest.WithSelectedImages
	newNode            = fledgedtest.NewNode
	withLabels         = fledgedtest.WithLabels
	notReady           = fledgedtest.NotReady
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
	p := plan.Compute(ic, nodes, testFilter, false)
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

// TestEverySliceFits: a cache's ledger has no bound tied to nodes × images:
// 1 image on 5,000 nodes and 512 images on 10 GPU nodes (about 1.8 MiB in
// one object, refused before slices) is accepted, and each of its slices,
// every pair settled, owned and pinned, stays under 1 MiB; so do those of
// 1,024 images, the most a cache may list, on 2,000 nodes of the longest
// names. One image more is refused.
func TestEverySliceFits(t *testing.T) {
	images := func(prefix string, n int) []string {
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("registry.example/%s-%04d:v1", prefix, i))
		}
		return out
	}
	withEntries := func(ic *v1alpha2.ImageCache, sel map[string]v1alpha2.LabelValue, imgs []string) *v1alpha2.ImageCache {
		for i := 0; i < len(imgs); i += v1alpha2.MaxImagesPerEntry {
			ic.Spec.CacheSpec = append(ic.Spec.CacheSpec, v1alpha2.CacheSpecImages{
				Images: imgs[i:min(len(imgs), i+v1alpha2.MaxImagesPerEntry)], NodeSelector: sel})
		}
		return ic
	}
	gpu := map[string]v1alpha2.LabelValue{"gpu": "h100"}
	mixed := withEntries(newImageCache("mixed", withImages("registry.example/agent:v1")), gpu, images("models/m", 512))
	var nodes, long []*corev1.Node
	for i := range 5000 {
		n := newNode(fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", i/256, i%256))
		if i < 10 {
			n.Labels["gpu"] = "h100"
		}
		nodes = append(nodes, n)
	}
	for i := range 2000 {
		long = append(long, newNode(fmt.Sprintf("%s-%04d", strings.Repeat("n", 248), i)))
	}
	for _, tc := range []struct {
		name    string
		ic      *v1alpha2.ImageCache
		nodes   []*corev1.Node
		refused bool
	}{
		{"1 image on 5,000 nodes, 512 on 10", mixed, nodes, false},
		{"1,024 images on 2,000 nodes of 253 characters", withEntries(newImageCache("big"), nil, images("app", plan.MaxImages)), long, false},
		{"1,025 images", withEntries(newImageCache("over"), nil, images("app", plan.MaxImages+1)), nodes[:10], true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plan.Compute(tc.ic, tc.nodes, testFilter, false)
			if why := plan.TooLarge(p); (why != "") != tc.refused {
				t.Fatalf("refused %q, want refused %v", why, tc.refused)
			}
			if tc.refused {
				return
			}
			led := ledger.New(1764000000)
			for _, n := range tc.nodes {
				if p.Nodes[n.Name] != nil {
					led.ForgetReplaced(map[string]*corev1.Node{n.Name: n})
				}
			}
			for name, w := range p.Nodes {
				for _, wi := range w.Images {
					led.Set(name, wi.Key, ledger.Failed)
					led.SetOwned(name, wi.Key, true)
					led.SetPin(name, wi.Key, ledger.PinUnsure)
				}
			}
			writes := ledger.PlanSlices(led, nil, func(i int) string { return fmt.Sprintf("s-%d", i) })
			largest := 0
			for _, c := range writes.Put {
				raw, err := json.Marshal(c.Ledger)
				if err != nil {
					t.Fatal(err)
				}
				// Each node's name again in managedFields, twice.
				size := len(raw) + c.Nodes*2*(len(tc.nodes[0].Name)+len(ledger.ManagedFieldsEntry))
				largest = max(largest, size)
			}
			t.Logf("%d slices, the largest %d KiB", len(writes.Put), largest>>10)
			if largest > 1<<20 {
				t.Errorf("a slice takes %d KiB, over 1 MiB", largest>>10)
			}
		})
	}
}

// TestFitStatusDegrades: a status over its budget (here, from a ledger near
// its limit and long messages) is trimmed under it, counting what it left out.
func TestFitStatusDegrades(t *testing.T) {
	f, total := failingSet(100, 5000)
	st := &v1alpha2.ImageCacheStatus{Ledger: &v1alpha2.PullLedger{Nodes: map[string]string{}}}
	for n := range 9000 {
		st.Ledger.Nodes[fmt.Sprintf("node-%05d", n)] = strings.Repeat("A", 60)
	}
	st.Failures, st.OmittedFailures = renderFailures(f, total)
	if statusSize(st) <= statusBudget {
		t.Fatalf("the test status is only %d bytes", statusSize(st))
	}
	if !fitStatus(st) {
		t.Fatal("fitStatus did not trim")
	}
	if size := statusSize(st); size > statusBudget {
		t.Errorf("still %d bytes, over %d", size, statusBudget)
	}
	if n := omittedTotal(st); n < 100*5000-v1alpha2.MaxFailures || len(st.Failures) == 0 {
		t.Errorf("omitted %d, listed for %d images", n, len(st.Failures))
	}
	listed := 0
	for _, list := range st.Failures {
		listed += len(list)
		for _, nrm := range list {
			if len(nrm.Message) > shortFailureMessage {
				t.Fatalf("message of %d bytes", len(nrm.Message))
			}
		}
	}
	if listed+omittedTotal(st) != 100*5000 {
		t.Errorf("%d listed + %d omitted, want %d", listed, omittedTotal(st), 100*5000)
	}
	if fitStatus(st) {
		t.Error("a status that fits was trimmed again")
	}
}

// TestFailuresAreBoundedInAll: per image and in all, with every image shown,
// the messages shortened, and what is left out counted.
func TestFailuresAreBoundedInAll(t *testing.T) {
	for _, tc := range []struct{ images, nodes, perImage int }{
		{images: 3, nodes: 300, perImage: 100}, // the per-image cap
		{images: 10, nodes: 300, perImage: 50}, // the total cap, shared
		{images: 100, nodes: 5000, perImage: 5},
	} {
		t.Run(fmt.Sprintf("%dx%d", tc.images, tc.nodes), func(t *testing.T) {
			f, total := failingSet(tc.images, tc.nodes)
			out, omitted := renderFailures(f, total)
			listed, left := 0, 0
			for img, list := range out {
				if len(list) != tc.perImage {
					t.Errorf("%s: %d listed, want %d", img, len(list), tc.perImage)
				}
				if list[0].Node != "node-00000" || len(list[0].Message) > maxFailureMessage || !strings.HasSuffix(list[0].Message, " not found") {
					t.Errorf("%s: first entry %+v", img, list[0])
				}
				listed += len(list)
				left += int(omitted[img])
			}
			if len(out) != tc.images || listed > v1alpha2.MaxFailures || listed+left != tc.images*tc.nodes {
				t.Errorf("%d images listed, %d failures listed and %d left out; want %d images, at most %d listed, %d in all",
					len(out), listed, left, tc.images, v1alpha2.MaxFailures, tc.images*tc.nodes)
			}
		})
	}
}

// TestConditionsOfARefusedPurge: a purge refused as too large reads
// TooLarge, as RefusedTooLarge (which the warming controller asks) needs,
// not Purged.
func TestConditionsOfARefusedPurge(t *testing.T) {
	ic := newImageCache("web", withImages("nginx"))
	ic.Generation = 3
	st := &v1alpha2.ImageCacheStatus{Status: v1alpha2.ImageCacheActionStatusFailed, Reason: v1alpha2.ImageCacheReasonPurge,
		Message: "The cache is too large"}
	setConditions(ic, st, reasons.TooLarge, t0)
	ic.Status = *st
	for _, kind := range []string{v1alpha2.ConditionReady, v1alpha2.ConditionStalled} {
		if c := meta.FindStatusCondition(st.Conditions, kind); c == nil || c.Reason != reasons.TooLarge {
			t.Errorf("%s: %+v, want reason TooLarge", kind, c)
		}
	}
	if !plan.RefusedTooLarge(ic) {
		t.Error("RefusedTooLarge says no")
	}
}

// failingSet is a failure set of images × nodes, each with a long message.
func failingSet(images, nodes int) (pass.Failures, map[string]int) {
	f := pass.Failures{}
	total := map[string]int{}
	for i := range images {
		img := fmt.Sprintf("registry.example/team/app-%03d:v1", i)
		for n := range nodes {
			f.Add(img, fmt.Sprintf("node-%05d", n), "ErrImagePull", strings.Repeat("x", 400)+" not found")
		}
		total[img] = nodes
	}
	return f, total
}

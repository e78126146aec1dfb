package imagecache

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
)

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

// hugeCache wants 2,048 images on every node: on 1,000 nodes, more than
// one object can record.
func hugeCache() *v1alpha2.ImageCache {
	var imgs []string
	for i := range 2048 {
		imgs = append(imgs, fmt.Sprintf("registry.example/app-%04d:v1", i))
	}
	ic := newImageCache("huge")
	for i := 0; i < len(imgs); i += v1alpha2.MaxImagesPerEntry {
		ic.Spec.CacheSpec = append(ic.Spec.CacheSpec, v1alpha2.CacheSpecImages{Images: imgs[i : i+v1alpha2.MaxImagesPerEntry]})
	}
	return ic
}

func thousandNodes() []*corev1.Node {
	var nodes []*corev1.Node
	for i := range 1000 {
		nodes = append(nodes, newNode(fmt.Sprintf("node-%04d", i)))
	}
	return nodes
}

// TestTooLargeCacheIsRefused: a cache whose ledger could not fit in one
// object is Failed at once with the reason, and gets no Job.
func TestTooLargeCacheIsRefused(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{hugeCache()}, thousandNodes()...)
	f.sync("huge", wStatus) // starts the operation
	writes, _ := f.sync("huge")
	if len(createdJobs(writes)) != 0 {
		t.Errorf("a too large cache made %d Jobs", len(createdJobs(writes)))
	}
	st := f.imageCache("huge").Status
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || !strings.HasPrefix(st.Message, "The cache is too large: 1000 nodes and 2048 images need about ") {
		t.Errorf("status %s %q", st.Status, st.Message)
	}
	f.expectEvent("Warning TooLarge The cache is too large")
	if w, _ := f.sync("huge"); len(w) != 0 {
		t.Errorf("a second sync wrote %s", describe(w))
	}
}

// TestTooLargeCacheConsumesItsAnnotations: a refresh asked of a cache that
// is too large ends as the create did, refused, and the annotation goes
// with it (an event says so), so that no operation starts again on every
// pass; a purge asked of it runs (nothing was pulled, so it removes nothing)
// and ends.
func TestTooLargeCacheConsumesItsAnnotations(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{hugeCache()}, thousandNodes()...)
	f.sync("huge", wStatus) // refused at once
	f.events()

	f.annotate("huge", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	f.sync("huge", wAnnotation, wStatus)
	if _, ok := f.imageCache("huge").Annotations[v1alpha2.AnnotationRefresh]; ok {
		t.Error("the refresh annotation stays on a cache refused as too large")
	}
	f.expectEvent("Warning TooLarge The cache is too large")
	f.clock.Step(2 * time.Second)
	if w, _ := f.sync("huge"); len(w) != 0 {
		t.Errorf("a pass after the refused refresh wrote %s", describe(w))
	}

	f.annotate("huge", v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
	f.syncOnly("huge", wAnnotation, wStatus)
	f.syncOnly("huge", wAnnotation, wStatus)
	st := f.imageCache("huge").Status
	if st.Reason != v1alpha2.ImageCacheReasonPurge || st.Status == v1alpha2.ImageCacheActionStatusProcessing {
		t.Errorf("the purge of a too large cache: %s %s %q", st.Reason, st.Status, st.Message)
	}
	if _, ok := f.imageCache("huge").Annotations[v1alpha2.AnnotationPurge]; ok {
		t.Error("the purge annotation stays")
	}
	f.clock.Step(2 * time.Second)
	if w, _ := f.sync("huge"); len(w) != 0 {
		t.Errorf("a pass after the purge wrote %s", describe(w))
	}
}

// TestLedgerSizeIsAnUpperBound: the size check's estimate is at least what
// the ledger takes once every wanted pair is settled and owned, for mixed
// caches too: the encoder sizes every node's entry by the whole image table,
// so 1 image on 5,000 nodes and 512 images on 10 GPU nodes takes about
// 1.8 MiB, over etcd's bound, and must be refused at once rather than
// accepted and fail its status writes later.
func TestLedgerSizeIsAnUpperBound(t *testing.T) {
	var gpu []string
	for i := range 512 {
		gpu = append(gpu, fmt.Sprintf("registry.example/models/m-%03d:v1", i))
	}
	mixed := newImageCache("mixed", withImages("registry.example/agent:v1"))
	for i := 0; i < len(gpu); i += v1alpha2.MaxImagesPerEntry {
		mixed.Spec.CacheSpec = append(mixed.Spec.CacheSpec, v1alpha2.CacheSpecImages{Images: gpu[i : i+v1alpha2.MaxImagesPerEntry],
			NodeSelector: map[string]v1alpha2.LabelValue{"gpu": "h100"}})
	}
	var nodes []*corev1.Node
	for i := range 5000 {
		n := newNode(fmt.Sprintf("ip-10-0-%d-%d.eu-west-1.compute.internal", i/256, i%256))
		if i < 10 {
			n.Labels["gpu"] = "h100"
		}
		nodes = append(nodes, n)
	}
	for _, tc := range []struct {
		name  string
		ic    *v1alpha2.ImageCache
		nodes []*corev1.Node
	}{
		{"1 image on 5,000 nodes, 512 on 10", mixed, nodes},
		{"512 images on 10 nodes", newImageCache("gpu", withSelectedImages(map[string]string{"gpu": "h100"}, gpu[:v1alpha2.MaxImagesPerEntry]...)), nodes[:20]},
		{"1 image on 5,000 nodes", newImageCache("agent", withImages("registry.example/agent:v1")), nodes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plan.Compute(tc.ic, tc.nodes, testConfig().NodeFilter(), false)
			led := ledger.New(1764000000)
			for name, w := range p.Nodes {
				for _, wi := range w.Images {
					led.Set(name, wi.Key, ledger.Failed)
					led.SetOwned(name, wi.Key, true)
				}
			}
			for _, n := range tc.nodes {
				if p.Nodes[n.Name] != nil {
					led.ForgetReplaced(map[string]*corev1.Node{n.Name: n})
				}
			}
			st := &v1alpha2.ImageCacheStatus{Ledger: led.Encode()}
			real := statusSize(st)
			if est := plan.LedgerSize(p, ledger.New(0)); est < real {
				t.Errorf("estimated %d KiB, the ledger takes %d KiB", est>>10, real>>10)
			}
			if plan.TooLarge(p, ledger.New(0)) == "" && real > 1<<20 {
				t.Errorf("accepted with a ledger of %d KiB, over 1 MiB", real>>10)
			}
		})
	}
}

// TestStatusRefusedAsTooLargeDegrades: should the API server refuse a
// status write as too large all the same, the status is written again
// without its failure list (counted in omittedFailures), with a Warning,
// instead of failing every write.
func TestStatusRefusedAsTooLargeDegrades(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	refused := 0
	f.client.PrependReactor("update", "imagecaches", func(a core.Action) (bool, runtime.Object, error) {
		if ic := a.(core.UpdateAction).GetObject().(*v1alpha2.ImageCache); len(ic.Status.Failures) > 0 {
			refused++
			return true, nil, apierrors.NewRequestEntityTooLargeError("limit is 3145728")
		}
		return false, nil, nil
	})
	for _, j := range f.jobs() {
		f.podWith(j, map[string]corev1.ContainerState{puller.ContainerName(0): waiting("ErrImagePull", "401 Unauthorized")})
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue})
		f.updateJob(&j)
	}
	f.sync("web", wDeleteJob, times(wStatus, 2)) // the refused write, then the one without the list
	st := f.imageCache("web").Status
	if refused != 1 || st.Status != v1alpha2.ImageCacheActionStatusFailed || len(st.Failures) != 0 || st.OmittedFailures["nginx"] != 1 {
		t.Errorf("refused %d; status %s failures %v omitted %v", refused, st.Status, st.Failures, st.OmittedFailures)
	}
	f.expectEvent("Warning StatusTrimmed The API server refused the status as too large")
}

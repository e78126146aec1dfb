//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/test/framework"
)

// hangOn is a cacheSpec entry whose pulls never end, on one kwok node: its
// Job of four images keeps an operation Processing for four pull deadlines
// (80s with the real-node tests' 20s).
func hangOn(node string) string {
	return "  - images: [hang.invalid/e2e/slow:v1, hang.invalid/e2e/slow:v2, hang.invalid/e2e/slow:v3, hang.invalid/e2e/slow:v4]\n" +
		"    nodeSelector: {kubernetes.io/hostname: " + node + "}\n"
}

// settledWithout says whether the cache's latest generation has pulls done
// and no failure of the image.
func settledWithout(img string) func(*v1alpha2.ImageCache) bool {
	return func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.ObservedGeneration == ic.Generation && len(ic.Status.Failures[img]) == 0 && ic.Status.Pulls.Succeeded > 0
	}
}

// TestRealNodeFixedPullSecret: a private image fails with 401 under a wrong
// pull secret; an update that names the right one pulls it, with no manual
// refresh and with Jobs retained (the 401 of the earlier Job does not come
// back): once after the first operation ended, once while it still ran.
func TestRealNodeFixedPullSecret(t *testing.T) {
	rn := needRealNode(t)
	for _, whileRunning := range []bool{false, true} {
		name := map[bool]string{false: "after-the-operation", true: "while-it-runs"}[whileRunning]
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t, "real-fix-secret")
			img := rn.image(t, "shell", "e2e/private:fixed-"+name, true)
			rn.pullSecret(t, ns, "wrong", "not-the-password")
			rn.pullSecret(t, ns, "right", rn.password)
			// While running: pulls that hang on a kwok node keep the first
			// operation going.
			rn.controller(t, "--job-retention-policy=retain")
			entries := imageList(img) + onRealNode(rn)
			if whileRunning {
				entries += hangOn("kwok-node-0")
			}
			applyCacheSpec(t, ns, "  imagePullSecrets: [{name: wrong}]\n  cacheSpec:\n"+entries)
			failed := func(ic *v1alpha2.ImageCache) bool { return len(ic.Status.Failures[img]) == 1 }
			ic := waitIC(t, ns, "app", 3*time.Minute, "the 401 recorded", failed)
			if whileRunning != (ic.Status.Status == v1alpha2.ImageCacheActionStatusProcessing) {
				t.Fatalf("when the 401 was recorded the cache was %s (%s)", ic.Status.Status, ic.Status.Message)
			}
			t.Logf("first operation: %s (%s): %s", ic.Status.Status, ic.Status.Message, ic.Status.Failures[img][0].Message)

			applyCacheSpec(t, ns, "  imagePullSecrets: [{name: right}]\n  cacheSpec:\n"+entries)
			ic = waitIC(t, ns, "app", 2*time.Minute, img+" pulled by the update", func(ic *v1alpha2.ImageCache) bool {
				return settledWithout(img)(ic) && rn.present(t, img)
			})
			if ic.Status.Reason != v1alpha2.ImageCacheReasonUpdate {
				t.Errorf("pulled by %s, want the update", ic.Status.Reason)
			}
			if whileRunning && ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing {
				t.Errorf("the hanging pulls ended before the fixed image was pulled: %s (%s)", ic.Status.Status, ic.Status.Message)
			}
			t.Logf("update: %s (%s)", ic.Status.Status, ic.Status.Message)
		})
	}
}

// TestRealNodeDropAndAddBack: an image dropped from the spec is removed from
// the node; added back before that update ends, it ends on the node.
func TestRealNodeDropAndAddBack(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-readd")
	keep := rn.image(t, "shell", "e2e/readd-keep:v1", false)
	back := rn.image(t, "noshell", "e2e/readd-back:v1", false)
	rn.controller(t, "--job-retention-policy=retain")
	applyCache(t, ns, imageList(keep, back)+onRealNode(rn))
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if !rn.present(t, back) {
		t.Fatalf("%s is not on the node", back)
	}
	// Update 1 drops it; a hanging pull on a kwok node keeps it going.
	applyCache(t, ns, imageList(keep)+onRealNode(rn)+hangOn("kwok-node-1"))
	waitFor(t, 2*time.Minute, back+" removed from the node", func() bool { return !rn.present(t, back) })
	if ic := getIC(t, ns, "app"); ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing {
		t.Fatalf("update 1 ended before the image was added back: %s (%s)", ic.Status.Status, ic.Status.Message)
	}
	// Update 2 adds it back.
	applyCache(t, ns, imageList(keep, back)+onRealNode(rn)+hangOn("kwok-node-1"))
	ic := waitIC(t, ns, "app", 2*time.Minute, back+" on the node again", func(ic *v1alpha2.ImageCache) bool {
		return settledWithout(back)(ic) && ic.Status.Pulls.Succeeded >= 2 && rn.present(t, back)
	})
	if f := ic.Status.Failures[back]; len(f) != 0 {
		t.Errorf("%s failed: %+v", back, f)
	}
	t.Logf("update 2: %s (%s)", ic.Status.Status, ic.Status.Message)
}

// TestRealNodePurgeIsOneOperation: after a purge over the real node and a
// kwok node, a node that joins and matches the cache gets no delete Job.
// A second cache over the new node shows that the controller has seen it.
func TestRealNodePurgeIsOneOperation(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-purge-once")
	img := rn.image(t, "shell", "e2e/purge-once:v1", false)
	addNodes(t, []string{"purge-once-0"}, map[string]string{"e2e": "purge-once"})
	rn.controller(t)
	deletes := watchJobs(t, sampleNS)
	applyCache(t, ns, imageList(img)+onRealNode(rn)+imageList("docker.io/library/nginx:1.27")+"    nodeSelector: {e2e: purge-once}\n")
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	ic := annotateAndWait(t, ns, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || rn.present(t, img) {
		t.Fatalf("purge: %s (%s), image still there %v", ic.Status.Status, ic.Status.Message, rn.present(t, img))
	}
	before := deletes.Count()
	addNodes(t, []string{"purge-once-1"}, map[string]string{"e2e": "purge-once"})
	probeNS := newNamespace(t, "real-purge-probe")
	applyCache(t, probeNS, "  - images: [docker.io/library/redis:7]\n    nodeSelector: {kubernetes.io/hostname: purge-once-1}\n")
	waitIC(t, probeNS, "app", 2*time.Minute, "the probe cache Succeeded on the new node", done(v1alpha2.ImageCacheActionStatusSucceeded))
	for _, j := range deletes.Jobs() {
		if puller.IsDeleteJob(&j) && j.Annotations[puller.AnnotationNode] == "purge-once-1" {
			t.Errorf("the node that joined after the purge got delete Job %s", j.Name)
		}
	}
	if after := getIC(t, ns, "app"); after.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || after.Status.Message != ic.Status.Message {
		t.Errorf("the purged cache changed after the node joined: %s (%s), was %q", after.Status.Status, after.Status.Message, ic.Status.Message)
	}
	t.Logf("purge: %s; delete Jobs: %d, none after the join (%d in all)", ic.Status.Message, before, deletes.Count())
}

// pullOnNode pulls an image into the node's containerd through CRI, as
// something other than a cache would (a workload, the machine's image).
func (rn *realNode) pullOnNode(t *testing.T, image string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cri.Dial(ctx, rn.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.PullImage(ctx, image); err != nil {
		t.Fatal(err)
	}
}

// TestRealNodePurgeKeepsWhatWasThere: an image on the node before any cache,
// listed by a cache that is then purged, is still on the node, checked
// through CRI; status.kept says why.
func TestRealNodePurgeKeepsWhatWasThere(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-purge-before")
	before := rn.image(t, "shell", "e2e/there-before:v1", false)
	ours := rn.image(t, "noshell", "e2e/pulled-by-cache:v1", false)
	rn.pullOnNode(t, before)
	rn.controller(t)
	applyCache(t, ns, imageList(before, ours)+onRealNode(rn))
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	ic := annotateAndWait(t, ns, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	t.Logf("purge: %s; kept %v", ic.Status.Message, ic.Status.Kept)
	if !rn.present(t, before) {
		t.Errorf("%s, on the node before the cache, was removed by its purge", before)
	}
	if rn.present(t, ours) {
		t.Errorf("%s, pulled by the cache, is still on the node after the purge", ours)
	}
	if k := ic.Status.Kept[before]; len(k) != 1 || k[0].Node != rn.name || k[0].Reason != "NotPulledByThisCache" {
		t.Errorf("status.kept of %s: %+v, want NotPulledByThisCache on %s", before, k, rn.name)
	}
}

// TestRealNodePurgeKeepsWhatAnotherWants: two caches share an image on the
// node; when one is purged, the image stays, checked through CRI, and the
// purge's status names the other cache.
func TestRealNodePurgeKeepsWhatAnotherWants(t *testing.T) {
	rn := needRealNode(t)
	first, second := newNamespace(t, "real-share-a"), newNamespace(t, "real-share-b")
	shared := rn.image(t, "shell", "e2e/shared:v1", false)
	rn.controller(t)
	applyCache(t, first, imageList(shared)+onRealNode(rn))
	waitIC(t, first, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	applyCache(t, second, imageList(shared)+onRealNode(rn))
	waitIC(t, second, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	ic := annotateAndWait(t, first, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	t.Logf("purge: %s; kept %v", ic.Status.Message, ic.Status.Kept)
	if !rn.present(t, shared) {
		t.Errorf("%s, which %s/app wants, was removed by the purge of %s/app", shared, second, first)
	}
	k := ic.Status.Kept[shared]
	if len(k) != 1 || k[0].Reason != "WantedByOtherCache" || !strings.Contains(k[0].Message, second+"/app") {
		t.Errorf("status.kept of %s: %+v, want WantedByOtherCache naming %s/app", shared, k, second)
	}
}

// TestRealNodePurgeKeepsAnImageAnotherCacheNamesOtherwise: one image pushed
// under two names; one cache wants it as e2e/team-a/one:v1, another as
// e2e/mirror/one:v1, and each pulled its name onto the node. containerd
// removes an image, not a name, so removing the first name would take the
// second too. The purge of the first cache keeps the image, says it kept it
// for another cache, and both names stay on the node.
func TestRealNodePurgeKeepsAnImageAnotherCacheNamesOtherwise(t *testing.T) {
	rn := needRealNode(t)
	first, second := newNamespace(t, "real-name-a"), newNamespace(t, "real-name-b")
	img, err := framework.WithLabel(testImages["shell"], "kubefledged.io/e2e-ref", "one image, two names")
	if err != nil {
		t.Fatal(err)
	}
	a, b := rn.registry+"/e2e/team-a/one:v1", rn.registry+"/e2e/mirror/one:v1"
	for _, ref := range []string{a, b} {
		if err := framework.PushImage(img, ref, "", ""); err != nil {
			t.Fatal(err)
		}
	}
	rn.controller(t)
	applyCache(t, first, imageList(a)+onRealNode(rn))
	waitIC(t, first, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	applyCache(t, second, imageList(b)+onRealNode(rn))
	waitIC(t, second, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if !rn.present(t, a) || !rn.present(t, b) {
		t.Fatalf("before the purge: %s present %v, %s present %v", a, rn.present(t, a), b, rn.present(t, b))
	}
	ic := annotateAndWait(t, first, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	t.Logf("purge: %s; kept %v", ic.Status.Message, ic.Status.Kept)
	if !rn.present(t, b) || !rn.present(t, a) {
		t.Errorf("after the purge of %s/app: %s present %v, %s present %v; want both, the image %s/app wants", first,
			a, rn.present(t, a), b, rn.present(t, b), second)
	}
	if k := ic.Status.Kept[a]; len(k) != 1 || k[0].Reason != "WantedByOtherCache" {
		t.Errorf("status.kept of %s: %+v, want it kept for another cache", a, k)
	}
	if len(ic.Status.Failures) != 0 {
		t.Errorf("failures %v", ic.Status.Failures)
	}
}

//go:build e2e

package e2e

import (
	"testing"
	"time"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// hangOn is a cacheSpec entry whose pull never ends, on one kwok node: it
// keeps an operation Processing until the pull deadline.
func hangOn(node string) string {
	return "  - images: [hang.invalid/e2e/slow:v1]\n    nodeSelector: {kubernetes.io/hostname: " + node + "}\n"
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
			// While running: a pull that hangs for a minute on a kwok node
			// keeps the first operation going.
			rn.controller(t, "--job-retention-policy=retain", "--image-pull-deadline-duration=60s")
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
			pulled := func(ic *v1alpha2.ImageCache) bool {
				return ic.Status.ObservedGeneration == ic.Generation && ic.Status.Reason == v1alpha2.ImageCacheReasonUpdate &&
					ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing
			}
			ic = waitIC(t, ns, "app", 3*time.Minute, "the update to end", pulled)
			if f := ic.Status.Failures[img]; len(f) != 0 {
				t.Errorf("after the update, %s still fails: %+v", img, f)
			}
			if !rn.present(t, img) {
				t.Errorf("%s is not in the node's containerd after the update", img)
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
	rn.controller(t, "--job-retention-policy=retain", "--image-pull-deadline-duration=60s")
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
	ic := waitIC(t, ns, "app", 3*time.Minute, "update 2 to end", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.ObservedGeneration == ic.Generation && ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing
	})
	if !rn.present(t, back) {
		t.Errorf("%s, added back, is not on the node: %s (%s)", back, ic.Status.Status, ic.Status.Message)
	}
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

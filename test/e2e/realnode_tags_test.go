//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/test/framework"
)

// pushVersion pushes the shell test image, made distinct by a label, under
// a reference of the plain registry, and returns its digest.
func (rn *realNode) pushVersion(t *testing.T, ref, version string) v1.Hash {
	t.Helper()
	img, err := framework.WithLabel(testImages["shell"], "kubefledged.io/e2e-version", ref+" "+version)
	if err != nil {
		t.Fatal(err)
	}
	if err := framework.PushImage(img, ref, "", ""); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// hasDigest says whether the node's containerd has the image under this
// digest (its repo digests, through CRI).
func (rn *realNode) hasDigest(t *testing.T, image string, d v1.Hash) bool {
	t.Helper()
	img := rn.imageStatus(t, image)
	if img == nil {
		return false
	}
	for _, rd := range img.RepoDigests {
		if strings.HasSuffix(rd, "@"+d.String()) {
			return true
		}
	}
	return false
}

// TestRealNodeRefreshFollowsAMovedTag: a cache of a ":latest" image and of
// an image by digest. The tag is pushed again with new content; the
// refresh after it pulls the tag (Always, as a Pod's container would), so
// the node's containerd has the new digest, status.digests and the message
// say it moved on the node, and the image by digest is not pulled again.
func TestRealNodeRefreshFollowsAMovedTag(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-tags")
	moving := rn.registry + "/e2e/moving:latest"
	first := rn.pushVersion(t, moving, "1")
	pinnedDigest := rn.pushVersion(t, rn.registry+"/e2e/pinned:v1", "1")
	pinned := rn.registry + "/e2e/pinned@" + pinnedDigest.String()
	rn.controller(t)
	jw := watchJobs(t, ns)
	applyCache(t, ns, imageList(moving, pinned)+onRealNode(rn))
	ic := waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if !rn.hasDigest(t, moving, first) || !rn.present(t, pinned) {
		t.Fatalf("after the create the node lacks %s at %s, or %s", moving, first, pinned)
	}
	if d := ic.Status.Digests[moving]; d.Digest != first.String() || d.Moved != 0 {
		t.Errorf("after the create: status.digests[%s] = %+v, want %s, not moved", moving, d, first)
	}
	if _, ok := ic.Status.Digests[pinned]; ok {
		t.Errorf("status.digests lists %s, an image by digest", pinned)
	}
	created := pairs(t, jw)

	// The kubelet lists images some 10-40 s after it has them.
	waitFor(t, 90*time.Second, "node.status.images to list the image by digest", func() bool { return rn.reported(t, pinned) })

	second := rn.pushVersion(t, moving, "2")
	if second == first {
		t.Fatal("the second push has the first's digest")
	}
	jw.Reset()
	start := time.Now()
	ic = annotateAndWait(t, ns, "app", v1alpha2.AnnotationRefresh, v1alpha2.ImageCacheReasonRefresh)
	t.Logf("refresh: %s in %v: %s; digests %+v", ic.Status.Status, time.Since(start).Round(100*time.Millisecond), ic.Status.Message, ic.Status.Digests)
	if !rn.hasDigest(t, moving, second) {
		t.Errorf("after the refresh the node's containerd does not have %s at %s", moving, second)
	}
	want := v1alpha2.ImageDigest{Digest: second.String(), Previous: first.String(), Moved: 1, Nodes: []string{rn.name}}
	if d := ic.Status.Digests[moving]; d.Digest != want.Digest || d.Previous != want.Previous || d.Moved != 1 ||
		len(d.Nodes) != 1 || d.Nodes[0] != rn.name {
		t.Errorf("status.digests[%s] = %+v, want %+v", moving, d, want)
	}
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || !strings.Contains(ic.Status.Message, "1 moved to a new digest") {
		t.Errorf("refresh: %s %q, want Succeeded, saying the tag moved", ic.Status.Status, ic.Status.Message)
	}
	refreshed := pairs(t, jw)
	if refreshed[rn.name+" "+pinned] != 0 {
		t.Errorf("the refresh pulled %s, an image by digest the node has, again", pinned)
	}
	if refreshed[rn.name+" "+moving] != 1 {
		t.Errorf("the refresh's Jobs pulled %v, want %s once", refreshed, moving)
	}
	if p := ic.Status.Pulls; p.Succeeded != 2 || p.AlreadyPresent != 1 {
		t.Errorf("refresh pulls %+v, want 2 done, the one by digest already present", p)
	}
	t.Logf("the create's Jobs pulled %v; the refresh's %v", created, refreshed)
}

//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
)

// removeFromNode removes an image from the node's containerd through CRI,
// if it has it.
func (rn *realNode) removeFromNode(t *testing.T, image string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := cri.Dial(ctx, rn.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Remove(ctx, image); err != nil {
		t.Fatal(err)
	}
}

// maxHelperImageBytes is the most the helper image may take on a node: the
// one image every node that warms pulls.
const maxHelperImageBytes = 10 << 20

// TestRealNodeWarmsWithTheSmallImages: a node that warms pulls the small
// helper image, and a node that is purged the CRI remover image, never the
// controller's: checked through CRI, after the node is rid of all three (an
// in-cluster test may have run the controller there).
func TestRealNodeWarmsWithTheSmallImages(t *testing.T) {
	rn := needRealNode(t)
	for _, img := range []string{rn.controllerImage, rn.helperImage, rn.criImage} {
		rn.removeFromNode(t, img)
	}
	ns := newNamespace(t, "real-small-images")
	img := rn.image(t, "shell", "e2e/shell:small-images", false)
	rn.controller(t)
	applyCache(t, ns, imageList(img)+onRealNode(rn))
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if !rn.present(t, img) {
		t.Fatalf("%s is not on the node after the cache Succeeded", img)
	}
	if rn.present(t, rn.controllerImage) {
		t.Errorf("the controller's image %s is on the node: the pull Jobs pulled it", rn.controllerImage)
	}
	helper := rn.imageStatus(t, rn.helperImage)
	if helper == nil {
		t.Fatalf("the helper image %s is not on the node after its pull Job ran", rn.helperImage)
	}
	t.Logf("the helper image %s takes %d bytes on the node", rn.helperImage, helper.GetSize())
	if helper.GetSize() > maxHelperImageBytes {
		t.Errorf("the helper image takes %d bytes, over %d", helper.GetSize(), maxHelperImageBytes)
	}

	annotateAndWait(t, ns, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	if rn.present(t, img) {
		t.Errorf("%s is still on the node after the purge", img)
	}
	if !rn.present(t, rn.criImage) {
		t.Errorf("the CRI remover image %s is not on the node after its delete Job ran", rn.criImage)
	}
	if rn.present(t, rn.controllerImage) {
		t.Errorf("the controller's image %s is on the node: the delete Jobs pulled it", rn.controllerImage)
	}
}

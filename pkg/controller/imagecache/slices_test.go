package imagecache

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// succeededOnThreeNodes is a cache of nginx and redis that succeeded on
// node-a, node-b and node-c, its pulls owned.
func succeededOnThreeNodes(t *testing.T) *fixture {
	t.Helper()
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))},
		newNode("node-a", withRuntime(ctd), listsBusybox), newNode("node-b", withRuntime(ctd), listsBusybox),
		newNode("node-c", withRuntime(ctd), listsBusybox))
	writes, _ := f.syncStarted("web", times(wCreateJob, 3))
	for _, job := range createdJobs(writes) {
		f.pulledBy(*job, "nginx", "redis")
		f.completeJob(*job)
	}
	f.sync("web", times(wDeleteJob, 3), wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("%s %q", st.Status, st.Message)
	}
	return f
}

// listsBusybox: the node lists the images it has, busybox alone, and its
// kubelet pulls only what it lacks: an image it does not list was not there
// (the cache's pull brings it, and owns it).
func listsBusybox(n *corev1.Node) {
	withNodeImages("docker.io/library/busybox:latest")(n)
	n.Status.NodeInfo.KubeletVersion = "v1.32.9"
}

// jobNodes lists the nodes of the pull Jobs a pass created.
func jobNodes(writes []core.Action) []string {
	var out []string
	for _, j := range createdJobs(writes) {
		out = append(out, j.Annotations[puller.AnnotationNode])
	}
	slices.Sort(out)
	return out
}

// TestLedgerLivesInASlice: the cache's ledger is in one slice of its own,
// owned by the cache and labelled with it; the status holds only the
// header; a pass that changes nothing writes no slice.
func TestLedgerLivesInASlice(t *testing.T) {
	f := succeededOnThreeNodes(t)
	list := f.sliceObjects("web")
	if len(list) != 1 {
		t.Fatalf("%d slices, want 1", len(list))
	}
	sl, ic := list[0], f.imageCache("web")
	if sl.NodeCount != 3 || sl.Labels[v1alpha2.LabelSliceCache] != "web" || sl.Labels[v1alpha2.LabelSliceCacheUID] != string(ic.UID) {
		t.Errorf("slice %s: %d nodes, labels %v", sl.Name, sl.NodeCount, sl.Labels)
	}
	if ref := metav1.GetControllerOf(sl); ref == nil || ref.UID != ic.UID || ref.Kind != "ImageCache" {
		t.Errorf("slice owner %+v, want the cache", ref)
	}
	if h := ic.Status.Ledger; h == nil || h.Format != ledger.FormatVersion || len(h.Nodes)+len(h.Pins)+len(h.Images) != 0 {
		t.Errorf("status.ledger %+v, want only the header", h)
	}
	if led := f.ledger("web"); !led.Owned("node-b", "docker.io/library/redis:latest") || led.Get("node-c", "docker.io/library/nginx:latest") != ledger.Pulled {
		t.Error("the slice does not hold the pulls")
	}
	if w, _ := f.sync("web"); len(w) != 0 {
		t.Errorf("a pass with nothing new wrote %s", describe(w))
	}
}

// TestSliceEditedByHand: a slice whose entry of a node is damaged, or that
// is deleted, is read as the pulls it no longer proves: those are done again,
// on those nodes only, and the cache owns nothing there it cannot prove.
func TestSliceEditedByHand(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edit  func(f *fixture, sl *v1alpha2.ImageCacheSlice)
		nodes []string
	}{
		{"an entry damaged", func(f *fixture, sl *v1alpha2.ImageCacheSlice) {
			sl.Ledger.Nodes["node-b"] = "!!not base64!!.uidnodeb.!!"
			if _, err := f.client.KubefledgedV1alpha2().ImageCacheSlices(sl.Namespace).Update(f.ctx, sl, metav1.UpdateOptions{}); err != nil {
				f.t.Fatal(err)
			}
		}, []string{"node-b"}},
		{"the slice deleted", func(f *fixture, sl *v1alpha2.ImageCacheSlice) {
			if err := f.client.KubefledgedV1alpha2().ImageCacheSlices(sl.Namespace).Delete(f.ctx, sl.Name, metav1.DeleteOptions{}); err != nil {
				f.t.Fatal(err)
			}
		}, []string{"node-a", "node-b", "node-c"}},
		{"a copy of it made by hand", func(f *fixture, sl *v1alpha2.ImageCacheSlice) {
			cp := sl.DeepCopy()
			cp.Name, cp.ResourceVersion, cp.UID = "copy", "", ""
			cp.Ledger.Nodes["node-c"] = "AA.uidnodec" // says nothing settled on node-c
			if _, err := f.client.KubefledgedV1alpha2().ImageCacheSlices(sl.Namespace).Create(f.ctx, cp, metav1.CreateOptions{}); err != nil {
				f.t.Fatal(err)
			}
		}, []string{"node-c"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := succeededOnThreeNodes(t)
			tc.edit(f, f.sliceObjects("web")[0])
			f.catchUp()
			led := f.ledger("web")
			for _, n := range tc.nodes {
				if led.Owned(n, "docker.io/library/nginx:latest") {
					t.Errorf("%s: nginx still owned where the slices no longer prove it", n)
				}
			}
			writes, _ := f.syncOnly("web", wCreateJob, wStatus)
			if got := jobNodes(writes); !slices.Equal(got, tc.nodes) {
				t.Errorf("pulled again on %v, want %v", got, tc.nodes)
			}
			f.completeAll()
			f.syncOnly("web", wDeleteJob, wStatus)
			if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Succeeded != 6 {
				t.Errorf("%s %+v %q", st.Status, st.Pulls, st.Message)
			}
			led = f.ledger("web")
			for _, n := range []string{"node-a", "node-b", "node-c"} {
				if led.Get(n, "docker.io/library/redis:latest") == ledger.Unsettled {
					t.Errorf("%s: redis unsettled after the pulls again", n)
				}
			}
		})
	}
}

// TestASliceWriteNotShownHoldsThePass: a pass waits for the informer to
// show the slices the last one wrote, as it waits for its status write: it
// would work from an older ledger, and only meet a conflict.
func TestASliceWriteNotShownHoldsThePass(t *testing.T) {
	f := succeededOnThreeNodes(t)
	if err := f.kube.CoreV1().Nodes().Delete(f.ctx, "node-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
	if _, err := f.pass("web"); err != nil {
		t.Fatal(err)
	}
	if w := sliceWrites(f.writes()); len(w) != 1 || w[0].GetVerb() != "update" {
		t.Fatalf("a node gone: slice writes %s, want one update", describe(w))
	}
	// The informer shows the nodes now, and the slice as before the write.
	if err := f.kube.CoreV1().Nodes().Delete(f.ctx, "node-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	nodesNow, _ := f.kube.CoreV1().Nodes().List(f.ctx, metav1.ListOptions{})
	replace(t, f.kubeInf.Core().V1().Nodes().Informer().GetIndexer(), trimmed(nodesNow.Items))
	f.clearActions()
	if _, err := f.pass("web"); err != nil {
		t.Fatal(err)
	}
	if w := f.writes(); len(w) != 0 {
		t.Errorf("a pass over a slice older than its write wrote %s", describe(w))
	}
	f.catchUp()
	f.clearActions()
	if _, err := f.pass("web"); err != nil {
		t.Fatal(err)
	}
	if w := sliceWrites(f.writes()); len(w) != 1 {
		t.Errorf("once the informer shows the write: slice writes %s", describe(w))
	}
	if got := f.ledger("web").Nodes(); !slices.Equal(got, []string{"node-c"}) {
		t.Errorf("the ledger has entries of %v, want node-c's only", got)
	}
}

// TestSliceRefusedSaysWhy: a slice the API server refuses to create (a
// quota of objects) stops the pass before the status write, with a
// Warning event that says why; once the quota allows it, the next pass
// writes the slice and the status, with nothing pulled again.
func TestSliceRefusedSaysWhy(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a"), newNode("node-b"))
	writes, _ := f.syncStarted("web", times(wCreateJob, 2))
	quota := apierrors.NewForbidden(schema.GroupResource{Group: "kubefledged.io", Resource: "imagecacheslices"}, "web-x-0",
		errors.New("exceeded quota: objects, requested: count/imagecacheslices.kubefledged.io=1, used: count/imagecacheslices.kubefledged.io=10, limited: count/imagecacheslices.kubefledged.io=10"))
	refuse := true
	f.client.PrependReactor("create", "imagecacheslices", func(core.Action) (bool, runtime.Object, error) {
		return refuse, nil, quota
	})
	for _, job := range createdJobs(writes) {
		f.completeJob(*job)
	}
	f.clearActions()
	if _, err := f.pass("web"); err == nil || !strings.Contains(err.Error(), "exceeded quota") {
		t.Fatalf("sync error %v, want the quota's", err)
	}
	if got := writeList(f.writes()); len(got) != 0 {
		t.Errorf("a pass whose slice was refused wrote %v, want nothing (the status would claim what the ledger does not hold)", got)
	}
	f.expectEvent("Warning LedgerNotWritten The ledger's slice web-")
	refuse = false
	f.catchUp()
	f.sync("web", times(wDeleteJob, 2), wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Pulls.Succeeded != 2 {
		t.Errorf("once the quota allows it: %s %q", st.Status, st.Message)
	}
}

package imagecache

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// TestPurgeIsOneOperation: a purge works on the nodes of its start. Once it
// is complete, a node it skipped (not Ready then) that turns Ready, and a
// node that joins, get no delete Job, and the status does not change: the
// cache is idle until refreshed or edited. A node that joins while the purge
// runs is not the purge's either.
func TestPurgeIsOneOperation(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a", withRuntime("containerd://2.0.0")), newNode("node-b", withRuntime("containerd://2.0.0"), notReady()))
	writes := f.createThenPurge("web")
	if jobs := createdJobs(writes); len(jobs) != 1 || jobs[0].Annotations[puller.AnnotationNode] != "node-a" || !puller.IsDeleteJob(jobs[0]) {
		t.Fatalf("purge: %s; want one delete Job, for node-a", describe(writes))
	}
	join := func(name string) {
		t.Helper()
		f.clock.Step(2 * time.Second)
		n := newNode(name, withRuntime("containerd://2.0.0"))
		n.CreationTimestamp = metav1.NewTime(f.clock.Now())
		if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, n, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		f.catchUp()
		f.clearActions()
	}
	// node-c joins while the purge runs.
	join("node-c")
	if writes, _ := f.sync("web"); len(createdJobs(writes)) != 0 {
		t.Fatalf("a node that joined during the purge: %s; want no delete Job", describe(writes))
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	st := f.imageCache("web").Status
	if st.Reason != v1alpha2.ImageCacheReasonPurge || st.Status != v1alpha2.ImageCacheActionStatusSucceeded ||
		st.Message != "Removed 1 of 2 images on 2 nodes; 1 skipped on 1 node not ready" {
		t.Fatalf("purge done: %s %s %q", st.Reason, st.Status, st.Message)
	}

	// node-b turns Ready, node-d joins: the purge is over.
	f.makeReady("node-b")
	join("node-d")
	if writes, _ := f.sync("web"); len(writes) != 0 {
		t.Errorf("after the purge, a node turned Ready and one joined: %s; want no write", describe(writes))
	}

	// A refresh pulls again, on every node of now.
	f.annotate("web", v1alpha2.AnnotationRefresh)
	f.clock.Step(2 * time.Second)
	writes, _ = f.syncStarted("web", times(wCreateJob, 4))
	if jobs := createdJobs(writes); len(jobs) != 4 {
		t.Errorf("refresh after the purge: %s; want a pull Job on each of the 4 nodes", describe(writes))
	}
}

// TestDeleteJobsRunInTheControllerNamespace: a purge's delete Jobs are
// created in the controller's namespace, with their own service account and
// no owner, and are followed like the cache's own; none is created in the
// cache's namespace. Once the cache is deleted (no owner reference can do
// it), and for an earlier cache of the same name, the controller deletes them.
func TestDeleteJobsRunInTheControllerNamespace(t *testing.T) {
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a", withRuntime("containerd://2.0.0")))
	writes := f.createThenPurge("web")
	jobs := createdJobs(writes)
	if len(jobs) != 1 {
		t.Fatalf("purge: %s; want one delete Job", describe(writes))
	}
	j := jobs[0]
	if j.Namespace != testControllerNS || len(j.OwnerReferences) != 0 || j.Spec.Template.Spec.ServiceAccountName != "kube-fledged-image-delete" ||
		j.Annotations[puller.AnnotationCacheNamespace] != testNS {
		t.Fatalf("delete Job %s/%s: owners %v, service account %q, cache namespace %q", j.Namespace, j.Name, j.OwnerReferences,
			j.Spec.Template.Spec.ServiceAccountName, j.Annotations[puller.AnnotationCacheNamespace])
	}
	inCacheNS, _ := f.kube.BatchV1().Jobs(testNS).List(f.ctx, metav1.ListOptions{})
	for i := range inCacheNS.Items {
		if puller.IsDeleteJob(&inCacheNS.Items[i]) {
			t.Errorf("a delete Job in the cache's namespace: %s", inCacheNS.Items[i].Name)
		}
	}
	// It is followed: running, it keeps the purge Processing; then the
	// purge completes from it. With retention, it stays.
	cfg := testConfig()
	cfg.RetainJobs = true
	f.restart(cfg)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusProcessing {
		t.Fatalf("with the delete Job running: %s", st.Status)
	}
	f.completeAll()
	f.sync("web", wAnnotation, wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded || st.Message != "Removed 1 of 1 images on 1 node" {
		t.Fatalf("after the delete Job completed: %s %q", st.Status, st.Message)
	}

	// A delete Job of an earlier cache of the same name is deleted.
	stale := j.DeepCopy()
	stale.Name, stale.UID, stale.ResourceVersion = "web-earlier", "", ""
	stale.Labels = map[string]string{}
	for k, v := range j.Labels {
		stale.Labels[k] = v
	}
	stale.Labels[puller.LabelCacheUID] = "uid-of-an-earlier-web"
	if _, err := f.kube.BatchV1().Jobs(testControllerNS).Create(f.ctx, stale, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
	writes, _ = f.sync("web", wDeleteJob)
	if deleted := deletedJobNames(writes); len(deleted) != 1 || deleted[0] != testControllerNS+"/web-earlier" {
		t.Errorf("with an earlier cache's delete Job: %s; want it deleted, and only it", describe(writes))
	}

	// The cache is deleted: its delete Job goes too.
	if err := f.client.KubefledgedV1alpha2().ImageCaches(testNS).Delete(f.ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	f.clearActions()
	writes, _ = f.sync("web", wDeleteJob)
	if deleted := deletedJobNames(writes); len(deleted) != 1 || deleted[0] != testControllerNS+"/"+j.Name {
		t.Errorf("after the cache was deleted: %s; want its delete Job deleted", describe(writes))
	}
}

// deletedJobNames returns namespace/name of each Job deleted.
func deletedJobNames(actions []core.Action) []string {
	var out []string
	for _, a := range actions {
		if d, ok := a.(core.DeleteAction); ok && a.GetResource().Resource == "jobs" {
			out = append(out, d.GetNamespace()+"/"+d.GetName())
		}
	}
	return out
}

// createThenSetImages runs a cache's create to its end, then starts an
// update that sets the images of its first entry, and returns the writes
// of the update's first pass.
func (f *fixture) createThenSetImages(name string, images ...string) []core.Action {
	f.t.Helper()
	f.syncStartedOnly(name, wCreateJob)
	f.completeAll()
	f.syncOnly(name, wDeleteJob, wStatus)
	f.edit(name, func(ic *v1alpha2.ImageCache) {
		ic.Spec.CacheSpec[0].Images = images
		ic.Generation++
	})
	f.clock.Step(time.Second)
	writes, _ := f.syncStartedOnly(name, wCreateJob)
	return writes
}

// createThenPurge runs a cache's create to its end, then starts a purge,
// and returns the writes of the purge's first pass.
func (f *fixture) createThenPurge(name string) []core.Action {
	f.t.Helper()
	f.createThenAskPurge(name)
	writes, _ := f.syncStartedOnly(name, wCreateJob, wStatus)
	return writes
}

// createThenAskPurge runs a cache's create to its end, then annotates it to
// be purged, a second later.
func (f *fixture) createThenAskPurge(name string) {
	f.t.Helper()
	f.syncStartedOnly(name, wCreateJob)
	f.completeAll()
	f.syncOnly(name, wDeleteJob, wStatus)
	f.annotate(name, v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
}

// TestPurgeRemovesOnlyWhatItPulled: a purge removes an image from a node
// only where this cache's own pull brought it (the kubelet's "Pulling"
// event) and no other cache wants it. It keeps one the node listed before
// the cache, one the kubelet found present, and one another cache wants, and
// says per node what it kept and why.
func TestPurgeRemovesOnlyWhatItPulled(t *testing.T) {
	other := newImageCache("other", withSelectedImages(map[string]string{"team": "b"}, "redis"))
	other.Status.StartTime = &metav1.Time{Time: t0} // settled long ago; not synced here
	f := newFixture(t, testConfig(), []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis")), other},
		newNode("node-a", withRuntime("containerd://2.0.0"), withNodeImages("docker.io/library/nginx:latest")),
		newNode("node-b", withRuntime("containerd://2.0.0"), withLabels("team", "b")))
	f.syncStarted("web", times(wCreateJob, 2))
	for _, j := range f.jobs() {
		switch j.Annotations[puller.AnnotationNode] {
		case "node-a": // redis only: nginx is listed by the node
			f.completeJob(j)
		case "node-b": // the kubelet pulls redis, and finds nginx present
			f.pulledBy(j, "redis")
			f.finishJob(j)
		}
	}
	f.sync("web", times(wDeleteJob, 2), wStatus)
	if st := f.imageCache("web").Status; st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("create: %s %q", st.Status, st.Message)
	}
	f.annotate("web", v1alpha2.AnnotationPurge)
	f.clock.Step(2 * time.Second)
	writes, _ := f.syncStarted("web", wCreateJob)
	jobs := createdJobs(writes)
	if len(jobs) != 1 || jobs[0].Annotations[puller.AnnotationNode] != "node-a" {
		t.Fatalf("purge: %s; want one delete Job, on node-a", describe(writes))
	}
	if diff := cmp.Diff([]string{"redis"}, jobImages(t, jobs[0])); diff != "" {
		t.Errorf("node-a's removal (-want +got):\n%s", diff)
	}
	f.completeAll()
	f.sync("web", wDeleteJob, wAnnotation, wStatus)
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded ||
		st.Message != "Removed 1 of 4 images on 2 nodes; 3 kept (1 wanted by another ImageCache, 2 not pulled there by this cache)" {
		t.Errorf("purge: %s %q", st.Status, st.Message)
	}
	notOurs := "this cache's own pull did not bring it onto this node: it was there before, or that could not be shown"
	want := map[string]v1alpha2.KeptOnNodes{
		"nginx": {{Node: "node-a", Reason: reasons.NotPulledByThisCache, Message: notOurs},
			{Node: "node-b", Reason: reasons.NotPulledByThisCache, Message: notOurs}},
		"redis": {{Node: "node-b", Reason: reasons.WantedByOtherCache, Message: "ImageCache team-a/other wants it on this node"}},
	}
	if diff := cmp.Diff(want, st.Kept); diff != "" {
		t.Errorf("status.kept (-want +got):\n%s", diff)
	}
	if len(st.Failures) != 0 {
		t.Errorf("failures %v", st.Failures)
	}
	// What the cache still owns: redis on node-b (kept for the other cache).
	led := f.ledger("web")
	if !led.Owned("node-b", "docker.io/library/redis:latest") || led.Owned("node-a", "docker.io/library/redis:latest") {
		t.Errorf("owned after the purge: on %v", led.OwnedNodes())
	}
}

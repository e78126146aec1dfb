package imagecache

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	core "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestReplacedNodeIsWarmedAgain: after the cache succeeded, node-a is
// deleted and re-created under the same name while the controller is down
// (a reimaged VM, a replaced instance). The ledger knows the old node's UID,
// so the restarted controller warms the new node-a, and only it.
func TestReplacedNodeIsWarmedAgain(t *testing.T) {
	cfg := testConfig()
	cfg.RetainJobs = true // the old node's Jobs stay, and must not count for the new one
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx", "redis"))},
		newNode("node-a"), newNode("node-b"))
	f.syncStarted("web", times(wCreateJob, 2))
	f.completeAll()
	f.sync("web", wStatus)
	st := f.imageCache("web").Status
	if st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
		t.Fatalf("status %s, want Succeeded", st.Status)
	}
	if enc := f.entry("web", "node-a"); f.ledger("web").Tag("node-a") != "uidnodea" {
		t.Fatalf("ledger entry of node-a %q does not carry its UID tag", enc)
	}
	f.events()

	if err := f.kube.CoreV1().Nodes().Delete(f.ctx, "node-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(time.Minute)
	again := newNode("node-a")
	again.UID = types.UID("0f9e8d7c-6b5a-4321-8765-43210fedcba9")
	again.CreationTimestamp = metav1.NewTime(f.clock.Now())
	oldJob := f.jobs()[0]
	if oldJob.Annotations[puller.AnnotationNode] != "node-a" {
		t.Fatalf("first Job is for %s", oldJob.Annotations[puller.AnnotationNode])
	}
	if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, again, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.restart(cfg)
	writes, _ := f.sync("web", wCreateJob, wDeleteJob, wStatus)
	var on []string
	for _, j := range createdJobs(writes) {
		on = append(on, j.Annotations[puller.AnnotationNode])
		if diff := cmp.Diff([]string{"nginx", "redis"}, sortStrings(jobImages(t, j))); diff != "" {
			t.Errorf("Job images (-want +got):\n%s", diff)
		}
	}
	if diff := cmp.Diff([]string{"node-a"}, on); diff != "" {
		t.Errorf("nodes given a Job (-want +got):\n%s", diff)
	}
	var deleted bool
	for _, a := range writes {
		if d, ok := a.(core.DeleteAction); ok && d.GetName() == oldJob.Name {
			deleted = true
		}
	}
	if !deleted {
		t.Errorf("the old node-a's Job %s was not deleted: %s", oldJob.Name, describe(writes))
	}
	st = f.imageCache("web").Status
	if enc := f.entry("web", "node-a"); enc != "" {
		t.Errorf("the new node-a keeps the old one's entries: %q", enc)
	}
	if p := st.Pulls; p.Succeeded != 2 || p.Pending != 2 {
		t.Errorf("pulls %+v, want node-b's 2 done and the new node-a's 2 pending", p)
	}
	f.expectEvent("Normal NodesReplaced 1 node was re-created under the same name, to be warmed again: node-a")
	f.completeAll()
	f.sync("web", wStatus)
	if enc := f.entry("web", "node-a"); !strings.HasSuffix(enc, ".0f9e8d7c") {
		t.Errorf("ledger entry of the new node-a %q, want its own tag", enc)
	}
}

// TestLedgerWithoutTagsTrustsItsNodes: a ledger written before entries
// carried a UID tag (all of it in status.ledger, as releases before slices
// wrote it) takes the nodes of now as the ones it recorded: it pulls
// nothing again, and moves into a slice, its entries tagged.
func TestLedgerWithoutTagsTrustsItsNodes(t *testing.T) {
	cfg := testConfig()
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))}, newNode("node-a"))
	f.syncStarted("web", wCreateJob)
	f.completeAll()
	f.sync("web", wDeleteJob, wStatus)
	f.asEarlierRelease("web", func(l *v1alpha2.PullLedger) {
		enc, _, _ := strings.Cut(l.Nodes["node-a"], ".")
		l.Nodes["node-a"] = enc
	})
	f.restart(cfg)
	writes, _ := f.sync("web", wStatus)
	if len(createdJobs(writes)) != 0 {
		t.Errorf("an untagged ledger made Jobs: %s", describe(writes))
	}
	if enc := f.entry("web", "node-a"); !strings.HasSuffix(enc, ".uidnodea") {
		t.Errorf("ledger entry %q, want it tagged", enc)
	}
	if l := f.imageCache("web").Status.Ledger; l.Format != ledger.FormatVersion || len(l.Nodes) != 0 {
		t.Errorf("status.ledger %+v, want only the header", l)
	}
}

// TestReplacedNodeDoesNotInheritOwnership: the cache pulled nginx onto
// node-a and node-b (owned there). While the controller is down, node-a is
// deleted and re-created under the same name, and the new node-a has nginx
// before any cache pulls it. The first pass that sees the new node starts a
// purge: the old node's ownership is forgotten with the node, so the purge
// removes nginx from node-b only, keeps it on the new node-a as not pulled
// there by this cache, and says the node was replaced.
func TestReplacedNodeDoesNotInheritOwnership(t *testing.T) {
	cfg := testConfig()
	f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx"))},
		newNode("node-a", withRuntime("containerd://2.0.0")), newNode("node-b", withRuntime("containerd://2.0.0")))
	f.createThenAskPurge("web")
	led := f.ledger("web")
	if !led.Owned("node-a", "docker.io/library/nginx:latest") || !led.Owned("node-b", "docker.io/library/nginx:latest") {
		t.Fatalf("after the create, nginx is not owned on both nodes: on %v", led.OwnedNodes())
	}
	f.events()

	if err := f.kube.CoreV1().Nodes().Delete(f.ctx, "node-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again := newNode("node-a", withRuntime("containerd://2.0.0"), withNodeImages("nginx:latest", "docker.io/library/nginx:latest"))
	again.UID = types.UID("0f9e8d7c-6b5a-4321-8765-43210fedcba9")
	again.CreationTimestamp = metav1.NewTime(f.clock.Now().Add(-time.Second)) // before the purge starts
	if _, err := f.kube.CoreV1().Nodes().Create(f.ctx, again, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.restart(cfg)
	writes, _ := f.syncStarted("web", wCreateJob)
	for _, j := range createdJobs(writes) {
		if n := j.Annotations[puller.AnnotationNode]; n != "node-b" {
			t.Errorf("the purge made a delete Job for %s; want node-b's only", n)
		}
	}
	f.expectEvent("Normal NodesReplaced 1 node was re-created under the same name")
	if led := f.ledger("web"); led.Owned("node-a", "docker.io/library/nginx:latest") {
		t.Error("the new node-a inherited the old one's ownership of nginx")
	}
}

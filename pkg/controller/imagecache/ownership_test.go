package imagecache

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// TestPullingProvesAbsenceWhereTheNodeListsEveryImage: a kubelet of 1.33
// or later may pull an image it has again, with the same Pulling event, to
// check the pod's credentials (KubeletEnsureSecretPulledImages). The event
// then proves the image absent only where the node, which did not list the
// image, lists every image it has: fewer than the kubelets' most
// (--node-status-max-images). Elsewhere the cache owns nothing it pulled,
// and a purge keeps it, saying why. A kubelet older than 1.33 pulls only
// what it does not have.
func TestPullingProvesAbsenceWhereTheNodeListsEveryImage(t *testing.T) {
	listing := func(n int) nodeOption {
		return func(node *corev1.Node) {
			for i := range n {
				node.Status.Images = append(node.Status.Images, corev1.ContainerImage{
					Names: []string{fmt.Sprintf("registry.example/other-%d:v1", i)}, SizeBytes: int64(50_000_000 - i)})
			}
		}
	}
	kubelet := func(v string) nodeOption {
		return func(node *corev1.Node) { node.Status.NodeInfo.KubeletVersion = v }
	}
	cases := []struct {
		name      string
		maxImages int
		node      []nodeOption
		owned     bool
	}{
		{"a full list, kubelet 1.37", 50, []nodeOption{listing(50), kubelet("v1.37.2")}, false},
		{"a full list, kubelet 1.33", 50, []nodeOption{listing(50), kubelet("v1.33.0")}, false},
		{"a full list, a kubelet version that does not parse", 50, []nodeOption{listing(50), kubelet("fake")}, false},
		{"a full list of the kubelets' 10", 10, []nodeOption{listing(10), kubelet("v1.37.2")}, false},
		{"room in the list, kubelet 1.37", 50, []nodeOption{listing(49), kubelet("v1.37.2")}, true},
		{"a full list, kubelet 1.32", 50, []nodeOption{listing(50), kubelet("v1.32.9")}, true},
		{"kubelets that list every image", -1, []nodeOption{listing(500), kubelet("v1.37.2")}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.NodeStatusMaxImages = c.maxImages
			f := newFixture(t, cfg, []*v1alpha2.ImageCache{newImageCache("web", withImages("nginx:1.27"))},
				newNode("node-a", append([]nodeOption{withRuntime("containerd://2.0.0")}, c.node...)...))
			writes, _ := f.syncStarted("web", wCreateJob)
			want := puller.OwnershipNone
			if c.owned {
				want = puller.OwnershipPulling
			}
			if jobs := createdJobs(writes); len(jobs) != 1 || jobs[0].Annotations[puller.AnnotationOwnership] != want {
				t.Fatalf("create: %s; want one pull Job annotated %s=%s", describe(writes), puller.AnnotationOwnership, want)
			}
			// The kubelet says it pulled nginx.
			f.completeAll()
			f.syncOnly("web", wDeleteJob, wStatus)
			st := f.imageCache("web").Status
			if st.Status != v1alpha2.ImageCacheActionStatusSucceeded {
				t.Fatalf("create: %s %q", st.Status, st.Message)
			}
			if got := f.ledger("web").Owned("node-a", "docker.io/library/nginx:1.27"); got != c.owned {
				t.Errorf("nginx owned on node-a: %v, want %v", got, c.owned)
			}

			f.annotate("web", v1alpha2.AnnotationPurge)
			f.clock.Step(2 * time.Second)
			if !c.owned {
				// With nothing to remove, the pass that starts the purge ends it.
				f.sync("web", wAnnotation, wStatus)
			} else {
				f.sync("web", wStatus)
				writes, _ = f.sync("web", wCreateJob)
				if jobs := createdJobs(writes); !puller.IsDeleteJob(jobs[0]) {
					t.Errorf("purge: %s; want a delete Job", describe(writes))
				}
				return
			}
			st = f.imageCache("web").Status
			if st.Status != v1alpha2.ImageCacheActionStatusSucceeded ||
				st.Message != "Removed 0 of 1 images on 1 node; 1 kept (1 not pulled there by this cache)" {
				t.Errorf("purge: %s %q", st.Status, st.Message)
			}
		})
	}
}

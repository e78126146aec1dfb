package imagecache

import (
	"encoding/json"
	"testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// FuzzStatusRead runs the controller over a cache whose status is whatever
// anyone with rights on imagecaches/status could write (the fuzzer's JSON),
// for three passes with the Jobs left running. No pass panics or fails; and
// the status read never makes more than it held: a pair the passes write as
// pulled, present (but a purge's kept) or owned was so in the ledger as
// Decode reads it (a damaged entry reads as nothing), and a delete Job
// removes only images that ledger owned on its node.
func FuzzStatusRead(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{"status":"Processing","reason":"ImageCacheCreate","startTime":"2026-11-23T11:00:00Z","observedGeneration":1,
		  "ledger":{"epoch":1763895600,"images":["docker.io/library/nginx:latest","docker.io/library/redis:latest"],
		  "nodes":{"node-a":"BQ.uidnodea.Aw","node-b":"AQ.uidnodeb"}}}`,
		`{"status":"Succeeded","reason":"ImageCachePurge","startTime":"2026-11-23T11:00:00Z","completionTime":"2026-11-23T11:01:00Z",
		  "observedGeneration":1,"ledger":{"epoch":1763895600,"images":["docker.io/library/nginx:latest"],"nodes":{"node-a":"!!.uidnodea.//"}}}`,
		`{"status":"Processing","reason":"ImageCachePurge","startTime":"2026-11-23T11:00:00Z","observedGeneration":1,
		  "ledger":{"epoch":1763895600,"images":["docker.io/library/nginx:latest","docker.io/library/nginx:latest"],"nodes":{"node-a":"AA..Aw"}}}`,
		`{"status":"Failed","reason":"ImageCacheUpdate","startTime":"2030-01-01T00:00:00Z","observedGeneration":7,
		  "failures":{"nginx":[{"node":"node-z","reason":"ErrImagePull","message":"x"}],"INVALID":[{"node":"node-a"}]},
		  "ledger":{"epoch":-5,"images":[""],"nodes":{"":"...","node-b":"AQ.other.AQ"},"removedAt":99999999999}}`,
		`{"status":"Processing","reason":"ImageCacheRefresh","ledger":{"epoch":0,"nodes":{"node-a":"QUFB"}}}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, purge bool) {
		var st v1alpha2.ImageCacheStatus
		if err := json.Unmarshal(data, &st); err != nil {
			return
		}
		ic := newImageCache("web", withImages("nginx", "redis"))
		ic.Status = st
		if purge {
			ic.Annotations = map[string]string{v1alpha2.AnnotationPurge: ""}
		}
		in := ledger.Decode(st.Ledger)
		fx := newFixture(t, testConfig(), []*v1alpha2.ImageCache{ic},
			newNode("node-a", withRuntime("containerd://2.0.0")), newNode("node-b", withRuntime("containerd://2.0.0")))
		for range 3 {
			fx.syncOnly("web", wStatus, wCreateJob, wDeleteJob, wAnnotation, wPatchJob)
			fx.clock.Step(2e9)
		}
		written := fx.imageCache("web").Status
		out := fx.ledger("web")
		for p, s := range out.Settled() {
			// In a purge, "present" is kept: what it settles with no Job.
			kept := s == ledger.Present && written.Reason == v1alpha2.ImageCacheReasonPurge
			if (s == ledger.Pulled || s == ledger.Present) && !kept && in.Get(p.Node, p.Image) != s {
				t.Fatalf("%s on %s: written %v, read %v", p.Image, p.Node, s, in.Get(p.Node, p.Image))
			}
		}
		for _, node := range out.OwnedNodes() {
			for _, img := range out.OwnedOn(node) {
				if !in.Owned(node, img) {
					t.Fatalf("%s on %s: written owned, not owned as read", img, node)
				}
			}
		}
		for _, job := range fx.jobs() {
			if !puller.IsDeleteJob(&job) {
				continue
			}
			node := job.Annotations[puller.AnnotationNode]
			for _, img := range jobImages(t, &job) {
				key, err := images.Normalize(img)
				if err != nil || !in.Owned(node, key) {
					t.Fatalf("a delete Job removes %s from %s, which the ledger read did not own", img, node)
				}
			}
		}
	})
}

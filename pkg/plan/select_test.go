package plan

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// TestHoldingPulls: the pulls that hold a node's startup taint are the
// wanted images a cache has not settled there, for a cache that wants
// pulls, on a node that can ever take one; an invalid image holds nothing.
func TestHoldingPulls(t *testing.T) {
	cache := func(opts ...fledgedtest.CacheOption) *v1alpha2.ImageCache {
		return fledgedtest.NewImageCache("team-a", "web", append([]fledgedtest.CacheOption{
			fledgedtest.WithImages("nginx:1.27", "redis:7", "Bad Image")}, opts...)...)
	}
	deleting := func(ic *v1alpha2.ImageCache) { ic.DeletionTimestamp = &metav1.Time{Time: t0} }
	purged := func(ic *v1alpha2.ImageCache) { ic.Status.Reason = v1alpha2.ImageCacheReasonPurge }
	tooLarge := func(ic *v1alpha2.ImageCache) {
		ic.Status.Conditions = []metav1.Condition{{Type: v1alpha2.ConditionReady, Status: metav1.ConditionFalse,
			Reason: reasons.TooLarge, ObservedGeneration: ic.Generation}}
	}
	nginx, redis := "docker.io/library/nginx:1.27", "docker.io/library/redis:7"
	for _, tc := range []struct {
		name   string
		ic     *v1alpha2.ImageCache
		node   *corev1.Node
		states map[string]ledger.State
		want   []Wanted
	}{
		{"nothing settled", cache(), newNode("node-a"), nil,
			[]Wanted{{"nginx:1.27", nginx}, {"redis:7", redis}}},
		{"one pulled, one failed", cache(), newNode("node-a"), map[string]ledger.State{nginx: ledger.Pulled, redis: ledger.Failed}, nil},
		{"one present", cache(), newNode("node-a"), map[string]ledger.State{redis: ledger.Present},
			[]Wanted{{"nginx:1.27", nginx}}},
		{"a node not ready yet holds", cache(), newNode("node-a", notReady()), map[string]ledger.State{nginx: ledger.Pulled},
			[]Wanted{{"redis:7", redis}}},
		{"a platform never pulled onto", cache(), newNode("node-a", withLabels(corev1.LabelOSStable, "windows")), nil, nil},
		{"a cache being deleted", cache(deleting), newNode("node-a"), nil, nil},
		{"a purged cache", cache(purged), newNode("node-a"), nil, nil},
		{"a cache refused as too large", cache(tooLarge), newNode("node-a"), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sel, ok := SelectNodes(tc.ic, []*corev1.Node{tc.node}, testFilter)[tc.node.Name]
			if !ok {
				t.Fatal("the cache does not select the node")
			}
			if got := sel.Invalid["Bad Image"]; got == "" {
				t.Errorf("the invalid image is not told: %v", sel.Invalid)
			}
			if diff := cmp.Diff(tc.want, HoldingPulls(tc.ic, sel, tc.states)); diff != "" {
				t.Errorf("holding pulls (-want +got):\n%s", diff)
			}
		})
	}
	other := fledgedtest.NewImageCache("team-a", "gpu", fledgedtest.WithSelectedImages(map[string]string{"gpu": "yes"}, "cuda:12"))
	if _, ok := SelectNodes(other, []*corev1.Node{newNode("node-a")}, testFilter)["node-a"]; ok {
		t.Error("a cache whose selector does not match the node selects it")
	}
}

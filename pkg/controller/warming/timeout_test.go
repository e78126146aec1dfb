package warming

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
)

// TestStartupTaintTimeoutRunsWithoutTheController: the timeout counts from
// the node's creation (it registers with the taint), not from when this
// controller first saw it: a controller that starts late releases at once a
// node whose wait passed meanwhile, and holds a younger one only for what
// is left; a taint added to a node the controller saw without it counts
// from then.
func TestStartupTaintTimeoutRunsWithoutTheController(t *testing.T) {
	created := func(ago time.Duration) fledgedtest.NodeOption {
		return func(n *corev1.Node) { n.CreationTimestamp = metav1.NewTime(t0.Add(-ago)) }
	}
	web := fledgedtest.NewImageCache("team-a", "web", fledgedtest.WithSelectedImages(map[string]string{"tier": "web"}, "nginx"))
	f := newFixture(t, []*v1alpha2.ImageCache{web},
		fledgedtest.NewNode("node-old", fledgedtest.WithLabels("tier", "web"), fledgedtest.WithTaints(testTaint), created(11*time.Minute)),
		fledgedtest.NewNode("node-young", fledgedtest.WithLabels("tier", "web"), fledgedtest.WithTaints(testTaint), created(2*time.Minute)),
		fledgedtest.NewNode("node-later", fledgedtest.WithLabels("tier", "web"), created(time.Hour)))
	if w, _ := f.step("node-old"); len(w) != 1 {
		t.Fatalf("node-old, 11 minutes past its creation: %s; want it released at once", describe(w))
	}
	if evs := f.events(); len(evs) != 1 || !strings.HasPrefix(evs[0], "Warning WarmingTimedOut ") {
		t.Errorf("events %q; want WarmingTimedOut", evs)
	}
	if w, after := f.step("node-young"); len(w) != 0 || after != 8*time.Minute {
		t.Errorf("node-young, 2 minutes old: %s, after %v; want it held 8 more minutes", describe(w), after)
	}

	// node-later, an hour old, gets the taint now: its wait starts now.
	f.clock.Step(time.Minute)
	n, err := f.kube.CoreV1().Nodes().Get(f.ctx, "node-later", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: testTaint, Effect: corev1.TaintEffectNoSchedule})
	if _, err := f.kube.CoreV1().Nodes().Update(f.ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	if w, after := f.step("node-later"); len(w) != 0 || after != 10*time.Minute {
		t.Errorf("node-later, tainted an hour after its creation: %s, after %v; want the whole timeout", describe(w), after)
	}
}

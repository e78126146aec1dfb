package ledger

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// TestStoreRoundTrip: what the controller records through the Store, every
// reader of the Store reads back, on the node it was recorded on only.
func TestStoreRoundTrip(t *testing.T) {
	const img = "docker.io/library/nginx:1.27"
	var store Store
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", UID: "uid-a"}}
	ic := &v1alpha2.ImageCache{}
	if store.HoldsPins(ic) || store.Load(ic).Get("node-a", img) != Unsettled {
		t.Fatal("an empty status reads as holding something")
	}
	l := New(1764000000)
	l.ForgetReplaced(map[string]*corev1.Node{"node-a": node}) // tags its entries
	l.Set("node-a", img, Pulled)
	l.SetOwned("node-a", img, true)
	if !store.Changed(ic, l) {
		t.Error("a new ledger does not count as a change")
	}
	store.Record(&ic.Status, l)
	if store.Changed(ic, l) {
		t.Error("the recorded ledger counts as a change")
	}
	if got := store.Load(ic); got.Get("node-a", img) != Pulled || !got.Owned("node-a", img) {
		t.Errorf("loaded %v, owned %v", got.Get("node-a", img), got.Owned("node-a", img))
	}
	if got := store.Read(ic).Get("node-a", img); got != Pulled {
		t.Errorf("read %v", got)
	}
	if got := store.NodeStates(ic, node)[img]; got != Pulled {
		t.Errorf("node states %v", got)
	}
	replaced := node.DeepCopy()
	replaced.UID = "uid-b"
	if got := store.NodeStates(ic, replaced); len(got) != 0 {
		t.Errorf("a node re-created under the same name reads %v, want nothing", got)
	}
	r, err := store.Nodes(ic)
	if err != nil || r.Node("node-a", UIDTag(node)).States[img] != Pulled {
		t.Errorf("node reader: %v", err)
	}
	l.SetPin("node-a", img, Pinned)
	store.Record(&ic.Status, l)
	if !store.HoldsPins(ic) {
		t.Error("a recorded pin is not held")
	}
}

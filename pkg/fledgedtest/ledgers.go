package fledgedtest

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	clientset "kubefledged.io/kube-fledged/pkg/client/clientset/versioned"
	"kubefledged.io/kube-fledged/pkg/ledger"
)

// Slices lists a cache's ledger slices from the API server.
func Slices(ctx context.Context, client clientset.Interface, ic *v1alpha2.ImageCache) ([]*v1alpha2.ImageCacheSlice, error) {
	list, err := client.KubefledgedV1alpha2().ImageCacheSlices(ic.Namespace).List(ctx,
		metav1.ListOptions{LabelSelector: v1alpha2.LabelSliceCacheUID + "=" + string(ic.UID)})
	if err != nil {
		return nil, fmt.Errorf("listing the slices of %s/%s: %w", ic.Namespace, ic.Name, err)
	}
	out := make([]*v1alpha2.ImageCacheSlice, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// LoadLedger reads a cache's ledger as the controller does, from its
// status and its slices on the API server.
func LoadLedger(ctx context.Context, client clientset.Interface, ic *v1alpha2.ImageCache) (*ledger.Ledger, error) {
	list, err := Slices(ctx, client, ic)
	if err != nil {
		return nil, err
	}
	return ledger.Open(ic.Status.Ledger, ledger.SliceLedgers(list)), nil
}

// MustLoadLedger is LoadLedger that fails the test on an error.
func MustLoadLedger(t testing.TB, client clientset.Interface, ic *v1alpha2.ImageCache) *ledger.Ledger {
	t.Helper()
	l, err := LoadLedger(context.Background(), client, ic)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// RecordLedger writes a cache's ledger as the controller does: its entries
// into the cache's slices, its header into ic's status (the caller writes
// the status). It does not wait for informers.
func RecordLedger(ctx context.Context, client clientset.Interface, ic *v1alpha2.ImageCache, l *ledger.Ledger) error {
	list, err := Slices(ctx, client, ic)
	if err != nil {
		return err
	}
	current := map[string]*v1alpha2.ImageCacheSlice{}
	raw := map[string]*v1alpha2.PullLedger{}
	for _, sl := range list {
		current[sl.Name], raw[sl.Name] = sl, &sl.Ledger
	}
	api := client.KubefledgedV1alpha2().ImageCacheSlices(ic.Namespace)
	w := ledger.PlanSlices(l, raw, func(i int) string { return ledger.SliceName(ic, i) })
	for _, c := range w.Put {
		if sl, ok := current[c.Name]; ok {
			sl.NodeCount, sl.Ledger = int32(c.Nodes), *c.Ledger
			_, err = api.Update(ctx, sl, metav1.UpdateOptions{})
		} else {
			_, err = api.Create(ctx, ledger.NewSlice(ic, c), metav1.CreateOptions{})
		}
		if err != nil {
			return err
		}
	}
	for _, name := range w.Delete {
		if err := api.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			return err
		}
	}
	ic.Status.Ledger = l.Header()
	return nil
}

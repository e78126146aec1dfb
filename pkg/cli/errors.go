package cli

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
)

// errNoCRD says the cluster has no ImageCache API.
var errNoCRD = errors.New("the ImageCache API (imagecaches.kubefledged.io, v1alpha2) is not installed in this cluster: " +
	"install kube-fledged's CRD (kubectl apply -k deploy/, or the Helm chart) first")

// explainCache turns an API error about ImageCaches into a message an
// operator can act on; name is "" for a list.
func (o *options) explainCache(ctx context.Context, err error, verb, namespace, name string) error {
	where := inNamespace(namespace)
	switch {
	case apierrors.IsNotFound(err):
		if o.crdMissing(ctx) {
			return errNoCRD
		}
		if name != "" {
			return fmt.Errorf("imagecache %q not found %s", name, where)
		}
	case apierrors.IsForbidden(err):
		return fmt.Errorf("you may not %s imagecaches.kubefledged.io %s (the kube-fledged-view role of deploy/user-roles.yaml, "+
			"or the chart's userRoles, grants reading them): %w", verb, where, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("the API server did not accept your credentials: %w", err)
	}
	return err
}

// inNamespace says where a namespace ("" for all) is looked in.
func inNamespace(namespace string) string {
	if namespace == "" {
		return "in any namespace"
	}
	return fmt.Sprintf("in namespace %q", namespace)
}

// crdMissing says whether the API server serves no ImageCaches.
func (o *options) crdMissing(ctx context.Context) bool {
	_, err := o.kube.Discovery().ServerResourcesForGroupVersion(v1alpha2.SchemeGroupVersion.String())
	return apierrors.IsNotFound(err)
}

// getCache reads one cache, with errors explained.
func (o *options) getCache(ctx context.Context, namespace, name string) (*v1alpha2.ImageCache, error) {
	ic, err := o.ic.KubefledgedV1alpha2().ImageCaches(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, o.explainCache(ctx, err, "get", namespace, name)
	}
	return ic, nil
}

// readLedger opens a cache's ledger: its header in the status and its
// entries in the cache's slices, listed a page at a time; one in a newer
// format is refused.
func (o *options) readLedger(ctx context.Context, ic *v1alpha2.ImageCache) (*ledger.NodeReader, error) {
	var sliced []*v1alpha2.PullLedger
	if ic.Status.Ledger != nil && ic.Status.Ledger.Format >= 2 {
		lo := metav1.ListOptions{LabelSelector: v1alpha2.LabelSliceCacheUID + "=" + string(ic.UID), Limit: 20}
		for {
			list, err := o.ic.KubefledgedV1alpha2().ImageCacheSlices(ic.Namespace).List(ctx, lo)
			if err != nil {
				return nil, fmt.Errorf("reading the ledger of imagecache %s/%s: %w", ic.Namespace, ic.Name, err)
			}
			for i := range list.Items {
				sliced = append(sliced, &list.Items[i].Ledger)
			}
			if lo.Continue = list.Continue; lo.Continue == "" {
				break
			}
		}
	}
	r, err := ledger.OpenNodes(ic.Status.Ledger, sliced)
	var newer *ledger.NewerFormatError
	if errors.As(err, &newer) {
		return nil, fmt.Errorf("cannot read imagecache %s/%s: its %w; use the kubectl-fledged of the controller's release",
			ic.Namespace, ic.Name, err)
	}
	return r, err
}

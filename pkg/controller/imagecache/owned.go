package imagecache

import (
	"context"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// Which images may a cache remove from a node? Only those its own pull
// brought there. The kubelet, with pull policy IfNotPresent, pulls an image
// only when the node does not have it, and says so in a "Pulling" event on
// the pod, for the container (spec.containers{NAME}). With Always it pulls
// every time, so its events show nothing. node.status.images cannot show it
// either: the kubelet lists 50 images at most, late.
//
// So a pair is owned when its pull container's "Pulling" event is there
// with IfNotPresent. Where the event is missing (the kubelet drops events
// past 25 per pod in a burst, a pod of many images loses some), the pair is
// not owned: the image stays on the node, which is safe.
const reasonPulling = "Pulling"

// pulledHere returns the containers of a pull pod whose image the kubelet
// pulled (was not on the node), read once a pass per pod. With pull policy
// Always, or when events cannot be read, it returns none.
func (c *Controller) pulledHere(ctx context.Context, s *syncCtx, pod *corev1.Pod) map[string]bool {
	if pod == nil || c.cfg.Puller.PullPolicy != corev1.PullIfNotPresent {
		return nil
	}
	if got, ok := s.pulling[pod.UID]; ok {
		return got
	}
	if s.pulling == nil {
		s.pulling = map[types.UID]map[string]bool{}
	}
	pulled := map[string]bool{}
	s.pulling[pod.UID] = pulled
	events, err := c.kubeClient.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.AndSelectors(fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)),
			fields.OneTermEqualSelector("reason", reasonPulling)).String(),
	})
	if err != nil {
		klog.FromContext(ctx).Info("Cannot read whether the kubelet pulled the images, so they will not be removed",
			"pod", klog.KObj(pod), "err", err)
		return pulled
	}
	for i := range events.Items {
		e := &events.Items[i]
		if e.Reason != reasonPulling || e.InvolvedObject.UID != pod.UID {
			continue
		}
		if name, ok := strings.CutPrefix(e.InvolvedObject.FieldPath, "spec.containers{"); ok {
			pulled[strings.TrimSuffix(name, "}")] = true
		}
	}
	return pulled
}

package imagecache

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// Which images may a cache remove from a node? Only those its own pull
// brought there. The kubelet, with pull policy IfNotPresent, pulls an image
// only when the node does not have it, and says so in a "Pulling" event on
// the pod, for the container (spec.containers{NAME}). With Always it pulls
// every time, so its events show nothing. node.status.images cannot show it
// either: the kubelet lists 50 images at most, late.
//
// So a pair is owned when its pull container's "Pulling" event is there
// with IfNotPresent, read from an informer of those events (no request in a
// sync), at any pass while the Job is there. Where the event is missing (the
// kubelet's recorder lets about 25 events per pod through in a burst, so a
// pod of many images loses some), the pair is not owned: the image stays on
// the node, which is safe.
const reasonPulling = "Pulling"

// PullingSelector is the field selector of the events informer that
// pulledHere reads: the kubelet's "Pulling" events on pods.
func PullingSelector() string {
	return fields.AndSelectors(fields.OneTermEqualSelector("reason", reasonPulling),
		fields.OneTermEqualSelector("involvedObject.kind", "Pod")).String()
}

func indexByInvolvedUID(obj any) ([]string, error) {
	e, ok := obj.(*corev1.Event)
	if !ok || e.InvolvedObject.UID == "" {
		return nil, nil
	}
	return []string{string(e.InvolvedObject.UID)}, nil
}

// pulledHere returns the containers of a pull pod whose image the kubelet
// pulled (was not on the node), from the events informer: no request. With
// pull policy Always it returns none.
func (c *Controller) pulledHere(pod *corev1.Pod) map[string]bool {
	if pod == nil || c.cfg.Puller.PullPolicy != corev1.PullIfNotPresent {
		return nil
	}
	objs, err := c.pullingIndexer.ByIndex(eventsByObjectIndex, string(pod.UID))
	if err != nil || len(objs) == 0 {
		return nil
	}
	pulled := map[string]bool{}
	for _, o := range objs {
		e, ok := o.(*corev1.Event)
		if !ok || e.Reason != reasonPulling || e.InvolvedObject.UID != pod.UID {
			continue
		}
		if name, ok := strings.CutPrefix(e.InvolvedObject.FieldPath, "spec.containers{"); ok {
			pulled[strings.TrimSuffix(name, "}")] = true
		}
	}
	return pulled
}

package status

import (
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// setConditions sets Ready, Reconciling, Stalled and Progressing from the
// status just computed (st.Status, st.Reason, st.Message). failedWhy is why
// a Failed operation failed (reasons.PullsFailed, reasons.JobRejected,
// reasons.TooLarge); st's conditions are those the cache had.
//
//	operation runs          Ready True if it was Ready for this generation
//	                        (a refresh, a joining node) else False;
//	                        Reconciling and Progressing True; Stalled False
//	succeeded               Ready True; the others False
//	failed                  Ready False, Stalled True, with failedWhy
//	purged                  Ready False, Stalled True, with Purged (a
//	                        purge refused as too large: TooLarge)
func setConditions(ic *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus, failedWhy string, now time.Time) {
	set := func(kind string, status metav1.ConditionStatus, reason, message string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: kind, Status: status, Reason: reason,
			Message: message, ObservedGeneration: ic.Generation, LastTransitionTime: metav1.NewTime(now)})
	}
	msg := st.Message
	purge := st.Reason == v1alpha2.ImageCacheReasonPurge
	switch {
	case st.Status == v1alpha2.ImageCacheActionStatusProcessing:
		switch {
		case purge:
			set(v1alpha2.ConditionReady, metav1.ConditionFalse, reasons.Removing, msg)
		case wasReady(ic, st):
			// A refresh, or the warming of a joining node: the images
			// are where they were, and more is on its way.
			set(v1alpha2.ConditionReady, metav1.ConditionTrue, reasons.Cached,
				"Every image was on its nodes when the latest operation completed; now: "+msg)
		default:
			set(v1alpha2.ConditionReady, metav1.ConditionFalse, reasons.Pulling, msg)
		}
		set(v1alpha2.ConditionReconciling, metav1.ConditionTrue, st.Reason, msg)
		set(v1alpha2.ConditionStalled, metav1.ConditionFalse, st.Reason, msg)
		set(v1alpha2.ConditionProgressing, metav1.ConditionTrue, st.Reason, msg)
		return
	case purge && failedWhy != reasons.TooLarge:
		stalled := msg + "; the cache pulls again once its spec changes or it is refreshed"
		set(v1alpha2.ConditionReady, metav1.ConditionFalse, reasons.Purged, msg)
		set(v1alpha2.ConditionStalled, metav1.ConditionTrue, reasons.Purged, stalled)
	case st.Status == v1alpha2.ImageCacheActionStatusFailed:
		stalled := msg
		if failedWhy != reasons.TooLarge {
			stalled += "; failed pulls are tried again when the cache's spec changes or it is refreshed"
		}
		set(v1alpha2.ConditionReady, metav1.ConditionFalse, failedWhy, msg)
		set(v1alpha2.ConditionStalled, metav1.ConditionTrue, failedWhy, stalled)
	default:
		set(v1alpha2.ConditionReady, metav1.ConditionTrue, reasons.Cached, msg)
		set(v1alpha2.ConditionStalled, metav1.ConditionFalse, reasons.Cached, msg)
	}
	done := reasons.Complete
	if failedWhy == reasons.TooLarge {
		done = reasons.TooLarge
	}
	set(v1alpha2.ConditionReconciling, metav1.ConditionFalse, done, msg)
	set(v1alpha2.ConditionProgressing, metav1.ConditionFalse, done, msg)
}

// wasReady says whether the cache was Ready for its current generation
// before this operation's pass: the images were cached on every node then.
func wasReady(ic *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus) bool {
	ready := meta.FindStatusCondition(st.Conditions, v1alpha2.ConditionReady)
	return ready != nil && ready.Status == metav1.ConditionTrue && ready.Reason == reasons.Cached &&
		ready.ObservedGeneration == ic.Generation
}

// failedWhy says why an operation failed: every failure a refusal of its
// Job by the API server (reasons.JobRejected), or pulls that failed.
func failedWhy(failures pass.Failures) string {
	rejected := false
	for _, m := range failures {
		for _, nrm := range m {
			if nrm.Reason != reasons.JobRejected {
				return reasons.PullsFailed
			}
			rejected = true
		}
	}
	if rejected {
		return reasons.JobRejected
	}
	return reasons.PullsFailed
}

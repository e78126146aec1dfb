package status

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/reasons"
	"kubefledged.io/kube-fledged/pkg/version"
)

// Write writes the computed status when it changed. When the
// operation is complete and was asked for with an annotation, it first
// removes the annotation, so that a crash after this point cannot start the
// operation again.
func (w *Writer) Write(ctx context.Context, s *pass.Pass, out Computed) error {
	st := out.Status
	var consumed []string
	if annotation, ok := RequestAnnotation[st.Reason]; ok && out.Complete && HasAnnotation(s.IC, annotation) && answered(s.IC, st) {
		consumed = append(consumed, annotation)
	}
	// A refresh asked together with a purge is the purge's to consume.
	ignored := st.Reason == v1alpha2.ImageCacheReasonPurge && HasAnnotation(s.IC, v1alpha2.AnnotationRefresh)
	if ignored {
		consumed = append(consumed, v1alpha2.AnnotationRefresh)
	}
	if err := w.ConsumeAnnotations(ctx, s, consumed...); err != nil {
		return err
	}
	if ignored {
		w.recorder.Event(s.IC, corev1.EventTypeNormal, reasons.RefreshIgnored,
			"A purge was asked too: the purge runs, and the refresh annotation is removed")
	}
	wroteSlices, err := w.writeSlices(ctx, s)
	if err != nil {
		return err
	}
	if progress(s, out) && wroteSlices {
		w.wroteAt(s.Key, s.Now)
	}
	if equality.Semantic.DeepEqual(s.IC.Status, *st) {
		return nil
	}
	if out.Trimmed {
		w.recorder.Event(s.IC, corev1.EventTypeWarning, reasons.StatusTrimmed, "The status would not fit in one object: "+
			"failure messages were shortened and some failures left out (counted in status.omittedFailures)")
	}
	updated := s.IC.DeepCopy()
	updated.Status = *st
	written, err := w.client.KubefledgedV1alpha2().ImageCaches(s.IC.Namespace).UpdateStatus(ctx, updated,
		metav1.UpdateOptions{FieldManager: version.Name})
	if err != nil && isTooLarge(err) && (len(st.Failures) > 0 || len(st.Kept) > 0 || len(st.Unpinned) > 0) {
		// The estimate and the budget should keep this from happening;
		// should the API server refuse the object all the same, the
		// status goes without its lists (counted in omittedFailures)
		// rather than failing every write.
		dropLists(st)
		w.recorder.Event(s.IC, corev1.EventTypeWarning, reasons.StatusTrimmed, "The API server refused the status as too "+
			"large: it is written without its failures and kept images (counted in status.omittedFailures): "+err.Error())
		updated.Status = *st
		written, err = w.client.KubefledgedV1alpha2().ImageCaches(s.IC.Namespace).UpdateStatus(ctx, updated,
			metav1.UpdateOptions{FieldManager: version.Name})
	}
	if err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	w.wrote(s.Key, s.IC, written)
	if progress(s, out) {
		w.wroteAt(s.Key, s.Now)
	}
	w.recordTransition(s.IC, st)
	// Count what this write settled, now that it is recorded.
	before := s.Before
	if before.Epoch() != s.Led.Epoch {
		before = ledger.Reader{}
	}
	s.Op.Recorded(before)
	return nil
}

// ConsumeAnnotations removes the annotations that asked for operations, in
// one patch (nothing when none is given), before the status that records
// their outcome is written: a crash after it cannot start them again.
func (w *Writer) ConsumeAnnotations(ctx context.Context, s *pass.Pass, keys ...string) error {
	if len(keys) == 0 {
		return nil
	}
	remove := map[string]any{}
	for _, k := range keys {
		remove[k] = nil
	}
	return w.PatchMetadata(ctx, s, "annotations", remove, fmt.Sprintf("removing annotations %v", keys))
}

// PatchMetadata sets one field of the cache's metadata with a merge patch
// that carries the cache's resource version, so that no concurrent change
// is lost (a conflict is retried with the sync); s.ic becomes the written
// cache. what says what the patch does, for its error.
func (w *Writer) PatchMetadata(ctx context.Context, s *pass.Pass, field string, value any, what string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		field:             value,
		"resourceVersion": s.IC.ResourceVersion,
	}})
	if err != nil {
		return err
	}
	out, err := w.client.KubefledgedV1alpha2().ImageCaches(s.IC.Namespace).Patch(ctx, s.IC.Name, types.MergePatchType, patch,
		metav1.PatchOptions{FieldManager: version.Name})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	w.wrote(s.Key, s.IC, out)
	s.Rewritten(out)
	return nil
}

// recordTransition emits an event when an operation completes.
func (w *Writer) recordTransition(old *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus) {
	if old.Status.Status == st.Status && old.Status.Reason == st.Reason && old.Status.StartTime.Equal(st.StartTime) {
		return
	}
	switch st.Status {
	case v1alpha2.ImageCacheActionStatusSucceeded:
		w.recorder.Eventf(old, corev1.EventTypeNormal, reasons.Succeeded, "%s succeeded: %s", st.Reason, st.Message)
	case v1alpha2.ImageCacheActionStatusFailed:
		w.recorder.Eventf(old, corev1.EventTypeWarning, reasons.Failed, "%s failed: %s", st.Reason, st.Message)
	default:
		return
	}
	metrics.OperationsTotal.WithLabelValues(st.Reason, string(st.Status)).Inc()
}

// isTooLarge says whether the API server refused a write as too large for
// one object (413, or etcd's own limit passed on as a server error).
func isTooLarge(err error) bool {
	return apierrors.IsRequestEntityTooLargeError(err) || strings.Contains(err.Error(), "request is too large")
}

// dropLists leaves the failures, the kept images and the refused pins out of a
// status, counting the failures in omittedFailures.
func dropLists(st *v1alpha2.ImageCacheStatus) {
	for img, list := range st.Failures {
		if st.OmittedFailures == nil {
			st.OmittedFailures = map[string]int32{}
		}
		st.OmittedFailures[img] += int32(len(list))
	}
	st.Failures, st.Kept, st.Unpinned = nil, nil, nil
}

// Refuse ends the operation of a cache that asks for more than one object
// can record (why says so), its Jobs deleted: its status says Failed, with
// why, keeping what it had recorded.
func (w *Writer) Refuse(ctx context.Context, s *pass.Pass, why string) error {
	st := s.St
	// The operation asked for ends here, refused: its annotation goes.
	if annotation, ok := RequestAnnotation[st.Reason]; ok && HasAnnotation(s.IC, annotation) {
		if err := w.ConsumeAnnotations(ctx, s, annotation); err != nil {
			return err
		}
	}
	if st.Status != v1alpha2.ImageCacheActionStatusFailed || st.CompletionTime == nil {
		st.CompletionTime = ptr.To(metav1.NewTime(s.Now))
	}
	st.Status = v1alpha2.ImageCacheActionStatusFailed
	st.Message = why
	st.NodesMatched = int32(len(s.Plan.Nodes))
	setConditions(s.IC, st, reasons.TooLarge, s.Now)
	if equality.Semantic.DeepEqual(s.IC.Status, *st) {
		return nil
	}
	updated := s.IC.DeepCopy()
	updated.Status = *st
	written, err := w.client.KubefledgedV1alpha2().ImageCaches(s.IC.Namespace).UpdateStatus(ctx, updated,
		metav1.UpdateOptions{FieldManager: version.Name})
	if err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	w.wrote(s.Key, s.IC, written)
	w.recorder.Event(s.IC, corev1.EventTypeWarning, reasons.TooLarge, why)
	return nil
}

// wrote records that a write replaced the version of the cache the informer
// shows, so the next sync waits for the informer to show the write.
func (w *Writer) wrote(key cache.ObjectName, before, after *v1alpha2.ImageCache) {
	if after != nil {
		w.expectations.ExpectWrite(key, before.ResourceVersion, after.ResourceVersion)
	}
}

// WriteLedger writes a deleted cache's ledger (its slices and header) and
// its failed unpins (status.failures keeps the others as they were) where
// they changed.
func (w *Writer) WriteLedger(ctx context.Context, s *pass.Pass) error {
	failures := pass.Failures{}
	for img, list := range s.IC.Status.Failures {
		for _, nrm := range list {
			if nrm.Reason != reasons.UnpinFailed {
				failures.Add(img, nrm.Node, nrm.Reason, nrm.Message)
			}
		}
	}
	for img, m := range s.Failures { // the unpins' (Finalize)
		for node, nrm := range m {
			failures.Add(img, node, nrm.Reason, nrm.Message)
		}
	}
	rendered, _ := renderFailures(failures, nil)
	if len(rendered) == 0 {
		rendered = nil
	}
	if _, err := w.writeSlices(ctx, s); err != nil {
		return err
	}
	updated := s.IC.DeepCopy()
	w.ledgers.Record(&updated.Status, s.Led)
	updated.Status.Failures = rendered
	if equality.Semantic.DeepEqual(updated.Status, s.IC.Status) {
		return nil
	}
	written, err := w.client.KubefledgedV1alpha2().ImageCaches(s.IC.Namespace).UpdateStatus(ctx, updated,
		metav1.UpdateOptions{FieldManager: version.Name})
	if err != nil {
		return fmt.Errorf("writing status: %w", err)
	}
	w.wrote(s.Key, s.IC, written)
	s.Rewritten(written)
	return nil
}

// RequestAnnotation maps an operation to the annotation that asks for it,
// which is removed once the operation is done.
var RequestAnnotation = map[string]string{
	v1alpha2.ImageCacheReasonRefresh: v1alpha2.AnnotationRefresh,
	v1alpha2.ImageCacheReasonPurge:   v1alpha2.AnnotationPurge,
}

func HasAnnotation(ic *v1alpha2.ImageCache, key string) bool {
	_, ok := ic.Annotations[key]
	return ok
}

// TakeRequest marks the refresh annotation, when a refresh it asked for
// starts in this pass, as taken by that refresh: its value becomes the
// refresh's start. The refresh consumes it once done (Write) only if it is
// still so marked: a refresh asked anew while one runs (the annotation set
// again) is not answered by that one, and runs after it; kubectl fledged
// refresh --wait follows the one it asked for.
func (w *Writer) TakeRequest(ctx context.Context, s *pass.Pass) error {
	const annotation = v1alpha2.AnnotationRefresh
	if s.Started != v1alpha2.ImageCacheReasonRefresh || !HasAnnotation(s.IC, annotation) || s.St.StartTime == nil {
		return nil
	}
	return w.PatchMetadata(ctx, s, "annotations", map[string]any{annotation: takenBy(s.St.StartTime)},
		"taking the refresh request")
}

// takenBy is the value of the refresh annotation a refresh took.
func takenBy(start *metav1.Time) string {
	return "taken by the refresh started at " + start.UTC().Format(time.RFC3339)
}

// answered says whether the operation the status records answers the
// request its annotation holds: a refresh, the one it took (TakeRequest);
// any other operation, any request.
func answered(ic *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus) bool {
	if st.Reason != v1alpha2.ImageCacheReasonRefresh {
		return true
	}
	return st.StartTime != nil && ic.Annotations[v1alpha2.AnnotationRefresh] == takenBy(st.StartTime)
}

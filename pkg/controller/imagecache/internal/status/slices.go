package status

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/reasons"
	"kubefledged.io/kube-fledged/pkg/version"
)

// sliceWrites remembers, for each cache, the slices this process wrote that
// the informer may not show yet: a pass waits for them (SlicesOutdated), as
// it waits for the cache's own status write, so that it never works from a
// slice older than what it wrote.
type sliceWrites struct {
	mu      sync.Mutex
	pending map[cache.ObjectName]map[string]bool
	// wroteAt is when a pass last made a progress write of each cache's
	// status or slices (Hold).
	wroteAt map[cache.ObjectName]time.Time
}

// Ledgers is where the ledgers live.
func (w *Writer) Ledgers() *ledger.Store { return w.ledgers }

// writeSlices writes the pass's ledger into the cache's slices, where it
// changed (ledger.PlanSlices): the slices that take on nodes first, then the
// others, then those left empty are deleted. Each write carries the
// resource version it replaces: a slice changed meanwhile is a conflict,
// and the sync is tried again from what the informer then shows.
func (w *Writer) writeSlices(ctx context.Context, s *pass.Pass) (wrote bool, err error) {
	current := map[string]*v1alpha2.ImageCacheSlice{}
	raw := map[string]*v1alpha2.PullLedger{}
	for _, sl := range w.ledgers.Slices(s.IC) {
		current[sl.Name], raw[sl.Name] = sl, &sl.Ledger
	}
	plan := ledger.PlanSlices(s.Led, raw, func(i int) string { return ledger.SliceName(s.IC, i) })
	api := w.client.KubefledgedV1alpha2().ImageCacheSlices(s.IC.Namespace)
	opts := metav1.UpdateOptions{FieldManager: version.Name}
	for _, c := range plan.Put {
		old, ok := current[c.Name]
		var written *v1alpha2.ImageCacheSlice
		var err error
		if ok {
			sl := old.DeepCopy()
			sl.NodeCount, sl.Ledger = int32(c.Nodes), *c.Ledger
			written, err = api.Update(ctx, sl, opts)
		} else {
			written, err = api.Create(ctx, ledger.NewSlice(s.IC, c), metav1.CreateOptions{FieldManager: version.Name})
		}
		if err != nil {
			w.refused(s, c.Name, err)
			return wrote, fmt.Errorf("writing the ledger's slice %s: %w", c.Name, err)
		}
		wrote = true
		w.expectSlice(s.Key, c.Name, old, written.ResourceVersion)
	}
	for _, name := range plan.Delete {
		old := current[name]
		err := api.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{
			UID: ptr.To(old.UID), ResourceVersion: ptr.To(old.ResourceVersion)}})
		if err != nil && !apierrors.IsNotFound(err) {
			return wrote, fmt.Errorf("deleting the ledger's slice %s: %w", name, err)
		}
		wrote = true
		w.expectSlice(s.Key, name, old, "deleted")
	}
	return wrote, nil
}

// refused says, with a Warning event on the cache, that the API server
// refused a write of one of its slices for a reason a retry alone will not
// mend (a quota of objects, the controller's rights, a policy or webhook,
// the object's size), where only the logs would say why. The pass stops
// before the status write, so that the status does not claim what the
// ledger does not record, and is tried again with backoff.
func (w *Writer) refused(s *pass.Pass, name string, err error) {
	if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err) || apierrors.IsBadRequest(err) {
		w.recorder.Eventf(s.IC, corev1.EventTypeWarning, reasons.LedgerNotWritten, "The ledger's slice %s could not be written, "+
			"so the cache records nothing more until it can (tried again with backoff): %v", name, err)
	}
}

// expectSlice records a write of a cache's slice (old: the slice it
// replaced, nil for a create) until the informer shows it.
func (w *Writer) expectSlice(key cache.ObjectName, name string, old *v1alpha2.ImageCacheSlice, written string) {
	replaced := ""
	if old != nil {
		replaced = old.ResourceVersion
	}
	w.expectations.ExpectWrite(cache.ObjectName{Namespace: key.Namespace, Name: name}, replaced, written)
	w.slices.mu.Lock()
	defer w.slices.mu.Unlock()
	if w.slices.pending == nil {
		w.slices.pending = map[cache.ObjectName]map[string]bool{}
	}
	if w.slices.pending[key] == nil {
		w.slices.pending[key] = map[string]bool{}
	}
	w.slices.pending[key][name] = true
}

// SlicesOutdated says whether the informer does not show yet a slice of the
// cache this process wrote; version gives a slice's resource version as the
// informer shows it ("" when it shows none).
func (w *Writer) SlicesOutdated(key cache.ObjectName, version func(name string) string) bool {
	w.slices.mu.Lock()
	defer w.slices.mu.Unlock()
	for name := range w.slices.pending[key] {
		if w.expectations.Outdated(cache.ObjectName{Namespace: key.Namespace, Name: name}, version(name)) {
			return true
		}
		delete(w.slices.pending[key], name)
	}
	delete(w.slices.pending, key)
	return false
}

// SliceSeen tells the writer the informer saw a slice change (deleted: it
// went): a write of it this process expects is then shown, or overtaken.
func (w *Writer) SliceSeen(sl *v1alpha2.ImageCacheSlice, deleted bool) {
	key := cache.ObjectName{Namespace: sl.Namespace, Name: sl.Name}
	if deleted {
		w.expectations.ForgetWrites(key)
		return
	}
	w.expectations.Outdated(key, sl.ResourceVersion)
}

// ForgetSlices forgets the writes of a cache that is gone.
func (w *Writer) ForgetSlices(key cache.ObjectName) {
	w.slices.mu.Lock()
	defer w.slices.mu.Unlock()
	for name := range w.slices.pending[key] {
		w.expectations.ForgetWrites(cache.ObjectName{Namespace: key.Namespace, Name: name})
	}
	delete(w.slices.pending, key)
	delete(w.slices.wroteAt, key)
}

// Hold says how long a pass over a cache waits, so that a busy cache's
// status and slices are written at most once a period: until the period
// after its last progress write (one that went on with an operation: not its
// start, its end or a change of its state) has passed; 0 to go on now. A
// held pass reads nothing, so nothing it would read is lost: the Jobs keep
// their outcomes until a write records them.
func (w *Writer) Hold(key cache.ObjectName, now time.Time, period time.Duration) time.Duration {
	if period <= 0 {
		return 0
	}
	w.slices.mu.Lock()
	last := w.slices.wroteAt[key]
	w.slices.mu.Unlock()
	if last.IsZero() || now.Sub(last) >= period {
		return 0
	}
	return last.Add(period).Sub(now)
}

// progress says whether a pass's write goes on with its operation: no
// start, no end and no change of its state, which are written at once and
// do not hold the next pass.
func progress(s *pass.Pass, out Computed) bool {
	st := out.Status
	return !out.Complete && s.Started == "" && s.IC.Status.Status == st.Status && s.IC.Status.Reason == st.Reason &&
		s.IC.Status.StartTime.Equal(st.StartTime)
}

// wroteAt records when a pass made a progress write of a cache's status or
// slices.
func (w *Writer) wroteAt(key cache.ObjectName, at time.Time) {
	w.slices.mu.Lock()
	defer w.slices.mu.Unlock()
	if w.slices.wroteAt == nil {
		w.slices.wroteAt = map[cache.ObjectName]time.Time{}
	}
	w.slices.wroteAt[key] = at
}

// Package status computes an ImageCache's status from what a pass settled
// and writes it, once a pass, when it changed: the counts, the message and
// the conditions (status.go, conditions.go), the failures kept within one
// object (size.go), the digests of the images pulled Always (digests.go),
// the pairs waiting to be tried again (retries.go); and the writes to the
// cache itself (write.go): its status, its annotations and finalizers, a
// deleted cache's ledger; and the ledger's slices (slices.go).
package status

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	clientset "kubefledged.io/kube-fledged/pkg/client/clientset/versioned"
	"kubefledged.io/kube-fledged/pkg/controller/expectations"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// Writer computes and writes the caches' status.
type Writer struct {
	client       clientset.Interface
	recorder     record.EventRecorder
	expectations *expectations.Expectations
	// ledgers is where the ledgers live: the header in the status, the
	// entries in the caches' slices, which this writer writes too.
	ledgers *ledger.Store
	slices  sliceWrites
}

// New returns the status writer; the expectations hold its writes until the
// informer shows them.
func New(client clientset.Interface, recorder record.EventRecorder, exp *expectations.Expectations, ledgers *ledger.Store) *Writer {
	return &Writer{client: client, recorder: recorder, expectations: exp, ledgers: ledgers}
}

// Computed is the status a pass works out, and what it says of the
// operation.
type Computed struct {
	Status *v1alpha2.ImageCacheStatus
	// Complete says the operation has nothing left to do.
	Complete bool
	// Trimmed says the status had to leave out failures to fit.
	Trimmed bool
}

// Compute works out the status from the plan, the ledger, the
// failures and the removals still to do, on the pass's copy of the status.
func (w *Writer) Compute(s *pass.Pass, removals, pins int) Computed {
	counts := countPulls(s.Plan, s.Led)
	counts.removals = removals
	counts.pins = pins
	counts.retry = summarizeRetries(s)
	if s.Op.Pulls() {
		pruneDigests(s.St, s.Plan)
	}
	counts.moved = movedCount(s.St)
	kept, keptBy := s.Op.Kept()
	counts.keptBy = keptBy
	keptLists, _ := renderFailures(kept, nil)
	s.St.Kept = keptOnNodes(keptLists)
	s.St.Unpinned, _ = renderFailures(s.Unpinned, nil)
	if len(s.St.Unpinned) == 0 {
		s.St.Unpinned = nil
	}
	w.ledgers.Record(s.St, s.Led)
	trimmed := fillStatus(s.IC, s.St, s.Plan, s.Failures, counts, s.Now)
	return Computed{Status: s.St, Complete: counts.Pending == 0 && removals == 0 && pins == 0, Trimmed: trimmed}
}

// NewFailures starts from the failures already in status that still hold
// (the ledger still has the pair failed; a failed unpin, the pin held), and
// the images the normaliser refuses.
func NewFailures(prev map[string]v1alpha2.NodeReasonMessageList, p *plan.Plan, led *ledger.Ledger) pass.Failures {
	f := UnpinFailures(prev, led)
	for img, list := range prev {
		key, err := images.Normalize(img)
		if err != nil {
			continue // invalid images are recomputed below
		}
		for _, nrm := range list {
			switch {
			case nrm.Reason == reasons.UnpinFailed:
			case !p.SpecKeys[key] && key == img:
				// A failed removal of an image dropped from the spec:
				// kept until the next operation starts.
				f.Add(img, nrm.Node, nrm.Reason, nrm.Message)
			case led.Get(nrm.Node, key) == ledger.Failed && p.Wants(nrm.Node, key):
				f.Add(p.Display[key], nrm.Node, nrm.Reason, nrm.Message)
			}
		}
	}
	for img, nodes := range p.InvalidNodes {
		for _, n := range nodes {
			f.Add(img, n, reasons.InvalidImageName, p.Invalid[img])
		}
	}
	return f
}

// UnpinFailures keeps, of the failures in status, the failed unpins of
// pins the ledger still holds: they stay until an unpin takes the pin
// away, through operations and past the cache's deletion.
func UnpinFailures(prev map[string]v1alpha2.NodeReasonMessageList, led *ledger.Ledger) pass.Failures {
	return pass.PinFailures(prev, led, func(nrm v1alpha2.NodeReasonMessage, pin ledger.PinState) bool {
		return nrm.Reason == reasons.UnpinFailed && pin.Held()
	})
}

// StartFailures clears the failures of a status whose operation starts
// but its failed unpins of pins still held, and its refused pins (the new
// operation tries them again).
func StartFailures(st *v1alpha2.ImageCacheStatus, led *ledger.Ledger) {
	st.Failures, _ = renderFailures(UnpinFailures(st.Failures, led), nil)
	st.OmittedFailures = nil
	st.Unpinned = nil
}

// pullCounts is PullCounts plus the failed pulls by image.
type pullCounts struct {
	v1alpha2.PullCounts
	failedByImage map[string]int
	skippedNodes  int
	// skippedBy counts the nodes skipped, by reason.
	skippedBy map[string]int
	// removals is the number of (node, image) removals of images dropped
	// from the spec still to do.
	removals int
	// pins is the number of pins and unpins still to do.
	pins int
	// omitted is the number of failures left out of status.failures.
	omitted int
	// keptBy counts, by reason, the pairs a purge left on their nodes.
	keptBy map[string]int
	// retry sums up the pending pairs that wait to be tried again.
	retry retrySummary
	// moved counts the pulls that found a tag moved (status.digests).
	moved int
}

func countPulls(p *plan.Plan, led *ledger.Ledger) pullCounts {
	c := pullCounts{failedByImage: map[string]int{}, skippedBy: map[string]int{}}
	for name, w := range p.Nodes {
		skipped := false
		for _, wi := range w.Images {
			c.Desired++
			switch led.Get(name, wi.Key) {
			case ledger.Pulled:
				c.Succeeded++
				if led.Pin(name, wi.Key) == ledger.Pinned {
					c.Pinned++
				}
			case ledger.Present:
				c.Succeeded++
				c.AlreadyPresent++
				if led.Pin(name, wi.Key) == ledger.Pinned {
					c.Pinned++
				}
			case ledger.Failed:
				c.Failed++
				c.failedByImage[wi.Image]++
			default:
				if w.Skip != "" {
					c.Skipped++
					skipped = true
				} else {
					c.Pending++
				}
			}
		}
		if skipped {
			c.skippedNodes++
			c.skippedBy[w.Skip]++
		}
	}
	for img, nodes := range p.InvalidNodes {
		c.Desired += int32(len(nodes))
		c.Failed += int32(len(nodes))
		c.failedByImage[img] += len(nodes)
	}
	return c
}

// fillStatus writes the computed state into st. It returns whether
// failures had to be left out for the status to fit (fitStatus).
func fillStatus(ic *v1alpha2.ImageCache, st *v1alpha2.ImageCacheStatus, p *plan.Plan,
	failures pass.Failures, counts pullCounts, now time.Time) bool {
	before, beforeMessage := st.Pulls, st.Message
	st.Pulls = counts.PullCounts
	st.NodesMatched = int32(len(p.Nodes))
	st.Failures, st.OmittedFailures = renderFailures(failures, counts.failedByImage)
	trimmed := fitStatus(st)
	counts.omitted = omittedTotal(st)
	if counts.Pending == 0 && counts.removals == 0 && counts.pins == 0 {
		if st.Status == v1alpha2.ImageCacheActionStatusProcessing || st.Status == "" || st.CompletionTime == nil {
			t := metav1.NewTime(now)
			st.CompletionTime = &t
		}
		st.Status = v1alpha2.ImageCacheActionStatusSucceeded
		if counts.Failed > 0 {
			st.Status = v1alpha2.ImageCacheActionStatusFailed
		}
	} else {
		st.Status = v1alpha2.ImageCacheActionStatusProcessing
		st.CompletionTime = nil
	}
	verb := "Pulled"
	if st.Reason == v1alpha2.ImageCacheReasonPurge {
		verb = "Removed"
	}
	st.Message = statusMessage(verb, counts, len(p.Nodes))
	if left, ok := plan.TimeLeft(counts.PullCounts, st.StartTime, now); ok && verb == "Pulled" &&
		st.Status == v1alpha2.ImageCacheActionStatusProcessing && counts.retry.pairs < int(counts.Pending) {
		if before == counts.PullCounts && strings.HasPrefix(beforeMessage, st.Message+"; ") {
			// Nothing settled since: the estimate stands (and the
			// status is not written for the clock alone).
			st.Message = beforeMessage
		} else {
			st.Message += "; " + plan.LeftPhrase(left)
		}
	}

	setConditions(ic, st, failedWhy(failures), now)
	setJobsRejected(st, failures, ic.Generation, now)
	return trimmed
}

// setJobsRejected sets the JobsRejected condition: True while failures of
// the latest operation are refusals of its Jobs by the API server, False once
// none is (it is left out until the first refusal).
func setJobsRejected(st *v1alpha2.ImageCacheStatus, failures pass.Failures, generation int64, now time.Time) {
	nodes := map[string]string{} // node -> the refusal's message
	for _, m := range failures {
		for node, nrm := range m {
			if nrm.Reason == reasons.JobRejected {
				nodes[node] = nrm.Message
			}
		}
	}
	cond := metav1.Condition{Type: v1alpha2.ConditionJobsRejected, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now)}
	if len(nodes) == 0 {
		if meta.FindStatusCondition(st.Conditions, cond.Type) == nil {
			return
		}
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, reasons.NoneRejected, "The API server refused no Job of the latest operation"
	} else {
		names := sortedKeys(nodes)
		cond.Status, cond.Reason = metav1.ConditionTrue, reasons.JobRejected
		cond.Message = fmt.Sprintf("The API server refused the Jobs for %d %s (%s); for %s: %s",
			len(names), message.Plural(len(names), "node", "nodes"), message.ListSome(names, 3), names[0], message.Shorten(nodes[names[0]], maxFailureMessage))
	}
	meta.SetStatusCondition(&st.Conditions, cond)
}

// statusMessage says, for people, how the operation stands.
func statusMessage(verb string, c pullCounts, nodes int) string {
	if nodes == 0 {
		if verb == "Removed" {
			return "No node matches the cache's node selectors; nothing to remove"
		}
		return "No node matches the cache's node selectors; nothing to pull"
	}
	var b strings.Builder
	done := c.Succeeded
	if verb == "Removed" {
		done -= c.AlreadyPresent // kept, not removed
	}
	fmt.Fprintf(&b, "%s %d of %d images on %d %s", verb, done, c.Desired, nodes, message.Plural(nodes, "node", "nodes"))
	switch {
	case verb == "Removed" && c.AlreadyPresent > 0:
		other, notOurs, off := c.keptBy[reasons.WantedByOtherCache], c.keptBy[reasons.NotPulledByThisCache], c.keptBy[reasons.RemovalDisabled]
		var why []string
		if off > 0 {
			why = append(why, "image removal is off")
		}
		if other > 0 {
			why = append(why, fmt.Sprintf("%d wanted by another ImageCache", other))
		}
		if notOurs > 0 {
			why = append(why, fmt.Sprintf("%d not pulled there by this cache", notOurs))
		}
		fmt.Fprintf(&b, "; %d kept", c.AlreadyPresent)
		if len(why) > 0 {
			fmt.Fprintf(&b, " (%s)", strings.Join(why, ", "))
		}
	case c.AlreadyPresent > 0:
		fmt.Fprintf(&b, " (%d already present)", c.AlreadyPresent)
	}
	if c.Pinned > 0 {
		fmt.Fprintf(&b, "; %d pinned", c.Pinned)
	}
	if c.moved > 0 {
		fmt.Fprintf(&b, "; %d moved to a new digest (status.digests)", c.moved)
	}
	if c.Failed > 0 {
		fmt.Fprintf(&b, "; %d failed", c.Failed)
	}
	if c.omitted > 0 {
		fmt.Fprintf(&b, " (%d not listed in status.failures)", c.omitted)
	}
	if c.Pending > 0 {
		fmt.Fprintf(&b, "; %d pending", c.Pending)
		if c.retry.pairs > 0 {
			fmt.Fprintf(&b, " (%s)", c.retry.phrase())
		}
	}
	if c.Skipped > 0 {
		fmt.Fprintf(&b, "; %d skipped on %d %s %s", c.Skipped, c.skippedNodes, message.Plural(c.skippedNodes, "node", "nodes"),
			skippedWhy(c.skippedBy))
	}
	if c.pins > 0 {
		fmt.Fprintf(&b, "; %d %s to do", c.pins, message.Plural(c.pins, "pin or unpin", "pins and unpins"))
	}
	if c.removals > 0 {
		fmt.Fprintf(&b, "; removing %d dropped from the spec", c.removals)
	}
	return b.String()
}

// skippedWhy says why nodes were skipped: "not ready", or, for more than one
// reason, "(2 not ready, 1 cordoned)", the most common first.
func skippedWhy(by map[string]int) string {
	counts := map[string]int{}
	for reason, n := range by {
		counts[plan.SkipPhrase(reason)] += n
	}
	phrases := sortedKeys(counts)
	if len(phrases) == 1 {
		return phrases[0]
	}
	sort.SliceStable(phrases, func(i, j int) bool { return counts[phrases[i]] > counts[phrases[j]] })
	parts := make([]string, len(phrases))
	for i, p := range phrases {
		parts[i] = fmt.Sprintf("%d %s", counts[p], p)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// keptOnNodes is status.kept from the per-node lists (nil for none).
func keptOnNodes(lists map[string]v1alpha2.NodeReasonMessageList) map[string]v1alpha2.KeptOnNodes {
	if len(lists) == 0 {
		return nil
	}
	out := make(map[string]v1alpha2.KeptOnNodes, len(lists))
	for img, list := range lists {
		k := make(v1alpha2.KeptOnNodes, len(list))
		for i, nrm := range list {
			k[i] = v1alpha2.KeptOnNode(nrm)
		}
		out[img] = k
	}
	return out
}

// sortedKeys lists a map's keys in order.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

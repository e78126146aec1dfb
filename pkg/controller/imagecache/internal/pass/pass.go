// Package pass is what one pass of the ImageCache controller's sync works
// on (Pass), in four groups by owner, and the kinds of values its steps
// share: the operation (Operation), the Jobs it decides to create (NewJob,
// ToCreate), the failures it records (Failures) and the failed tries of a
// pair (PairRetry). It decides nothing: the steps are in the controller's
// other packages.
package pass

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
)

// Pass is what one pass of sync works on, in four groups by owner: what
// the pass read, what its steps settle, what the cache's Jobs say, and when
// to look again. Any step reads any group; each group's fields are written
// only by the methods next to it, in the file of its own (in.go, book.go,
// seen.go, look.go; imagecache's TestPassGroupsHaveOneWriter fails on a
// write from anywhere else). What a step decides beyond them it
// returns.
type Pass struct {
	In
	Book
	Seen
	Look
}

// NewPass starts a pass over the cache at key, read at now, with its
// ledger (led) and the ledger as recorded (before).
func NewPass(key cache.ObjectName, ic *v1alpha2.ImageCache, now time.Time, led *ledger.Ledger, before ledger.Reader) *Pass {
	return &Pass{
		In:   newIn(key, ic, now),
		Book: newBook(ic.Status.DeepCopy(), led, before),
		Seen: newSeen(),
	}
}

// NewJob is a Job a sync decided to create, its throttle slot taken.
type NewJob struct {
	Job    *batchv1.Job
	Kind   string // pull, delete, pin or unpin
	Node   string
	Images int
	// Refused settles the Job's pairs as failed when the API server
	// refuses to create the Job, with its message.
	Refused func(message string)
	// Removals counts the removals of images dropped from the spec that
	// the Job does or, refused, gives up; Pins its pins or unpins.
	Removals int
	Pins     int
}

// GivenUp counts the Jobs the API server refused, and their removals and
// pins: they are settled, with a failure this pass alone knows (its write
// records it).
type GivenUp struct{ Jobs, Removals, Pins int }

// ForNodes calls build for each node of the plan that can take a Job now,
// in name order, and collects the Jobs it returns.
func (s *Pass) ForNodes(build func(w *plan.Node) *NewJob) []NewJob {
	var out []NewJob
	for _, name := range slices.Sorted(maps.Keys(s.Plan.Nodes)) {
		w := s.Plan.Nodes[name]
		if w.Skip != "" {
			continue
		}
		if job := build(w); job != nil {
			out = append(out, *job)
		}
	}
	return out
}

// Operation is the work an operation does on the nodes, behind the steps
// every sync shares. There are two kinds: the pull pulls the spec's images,
// and removes those dropped from it; the purge removes them all. The ledger
// records, per (node, image) pair, what the operation has settled: pulled
// (or removed), already present (or kept), or failed.
//
// Building an operation narrows the plan to the nodes it works on and the
// ledger to the pairs it still cares about. Then a sync reads its Jobs
// (ReadJob), settles what needs no Job (Settle), and asks for the Jobs to
// create (Jobs), which changes nothing.
type Operation interface {
	// Claims says whether one of the cache's Jobs belongs to the
	// operation; those that do not (of an earlier operation, of the other
	// kind, for a node the operation no longer works on) are deleted.
	Claims(job *batchv1.Job) bool
	// ReadJob reads one of its Jobs into the ledger and the failures.
	ReadJob(ctx context.Context, job *batchv1.Job) error
	// Settle settles in the ledger the pairs that need no Job: an image a
	// node already has, one a purge must keep, a removal on a node whose
	// runtime cannot be reached.
	Settle()
	// Jobs returns the Jobs the operation wants created now, each with its
	// throttle slot taken, and what is left to do.
	Jobs() ToCreate
	// ReadEarlier takes from a Job of an earlier operation what holds for
	// this one too (the pull: the images it pulled once this one was due;
	// the purge: the images its pulls brought).
	ReadEarlier(ctx context.Context, job *batchv1.Job)
	// Pulls says whether the operation pulls the spec's images (the pull):
	// only then are they pinned, and their digests followed.
	Pulls() bool
	// Kept lists the pairs the operation chose to leave on their nodes,
	// with why (status.kept), and counts them by reason (the purge; none
	// for the pull).
	Kept() (Failures, map[string]int)
	// Recorded is told that the status recording what this pass settled
	// is written; before is the ledger of this epoch as it was read
	// (the pull: the pulls metrics; the purge: nothing).
	Recorded(before ledger.Reader)
}

// ToCreate is what an operation decided to create in one pass.
type ToCreate struct {
	Jobs []NewJob
	// Throttled says the cache waits for a free Job slot.
	Throttled bool
	// Removals counts the (node, image) removals of images dropped from
	// the spec still to do: the operation is not complete before they are.
	Removals int
	// Pins counts the pins and unpins still to do, which hold
	// the operation too.
	Pins int
}

// Hold says whether a node must not get a new Job now: one of the cache's
// Jobs runs there, the operation has just started, or the cache waits for a
// Job slot.
func (j *ToCreate) Hold(s *Pass, node string) bool {
	return s.Busy[node] || s.Started != "" || j.Throttled
}

// PairRetry is what the failed tries of one (node, image) pair say.
type PairRetry struct {
	// Attempts is the number of failed tries, Next when to try again.
	Attempts int
	Next     time.Time
	// Reason and Message are the latest failure's.
	Reason, Message string
	Ended           time.Time
}

// Failed counts a failed try that ended at ended, and sets when to try
// again: firstRetryWait after the first, doubling with each further try up
// to most. The latest failure's reason and message are kept.
func (p *PairRetry) Failed(ended time.Time, reason, message string, most time.Duration) {
	p.Attempts++
	if !ended.Before(p.Ended) {
		p.Ended, p.Reason, p.Message = ended, reason, message
	}
	wait := firstRetryWait
	for i := 1; i < p.Attempts && wait < most; i++ {
		wait *= 2
	}
	p.Next = p.Ended.Add(min(wait, most))
}

// firstRetryWait is the wait after a first failed try.
const firstRetryWait = 10 * time.Second

// PairKey is the key of a (node, image) pair in Retries and
// RemovedEarlier.
func PairKey(node, key string) string { return node + "\x00" + key }

// SplitPairKey is the node and the image key of a PairKey.
func SplitPairKey(k string) (node, key string) {
	node, key, _ = strings.Cut(k, "\x00")
	return node, key
}

// Failures collects per-node failures by image (as the spec spells it).
type Failures map[string]map[string]v1alpha2.NodeReasonMessage

// PinFailures keeps, of a status's list of failures by image, those whose
// pair's pin in the ledger keep says to keep (an entry's image normalised
// as the ledger keys it).
func PinFailures(prev map[string]v1alpha2.NodeReasonMessageList, led *ledger.Ledger,
	keep func(nrm v1alpha2.NodeReasonMessage, pin ledger.PinState) bool) Failures {
	f := Failures{}
	for img, list := range prev {
		key, err := images.Normalize(img)
		if err != nil {
			continue
		}
		for _, nrm := range list {
			if keep(nrm, led.Pin(nrm.Node, key)) {
				f.Add(img, nrm.Node, nrm.Reason, nrm.Message)
			}
		}
	}
	return f
}

// Drop forgets an image's failure on a node.
func (f Failures) Drop(image, node string) {
	delete(f[image], node)
	if len(f[image]) == 0 {
		delete(f, image)
	}
}

// Add records why an image failed on a node.
func (f Failures) Add(image, node, reason, message string) {
	m := f[image]
	if m == nil {
		m = map[string]v1alpha2.NodeReasonMessage{}
		f[image] = m
	}
	m[node] = v1alpha2.NodeReasonMessage{Node: node, Reason: reason, Message: message}
}

// DisplayOf is how the status spells an image: as the spec does, or as given.
func (s *Pass) DisplayOf(key, fallback string) string {
	if s.Plan == nil {
		return fallback
	}
	if d, ok := s.Plan.Display[key]; ok {
		return d
	}
	return fallback
}

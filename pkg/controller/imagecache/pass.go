package imagecache

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
)

// syncCtx is what one pass of sync works on, in four groups by owner: what
// the pass read, what its steps settle, what the cache's Jobs say, and when
// to look again. Any step reads any group; each group's fields are written
// only by the methods next to it, in this file (TestPassGroupsHaveOneWriter
// fails on a write from anywhere else). What a step decides beyond them it
// returns.
type syncCtx struct {
	passInput
	passBook
	jobsSeen
	lookAgain
}

func newPass(key cache.ObjectName, ic *v1alpha2.ImageCache, now time.Time, led *ledger.Ledger, before ledger.Reader) *syncCtx {
	return &syncCtx{
		passInput: passInput{key: key, ic: ic, now: now},
		passBook:  passBook{st: ic.Status.DeepCopy(), led: led, before: before},
		jobsSeen:  jobsSeen{deleted: map[string]bool{}, busy: map[string]bool{}},
	}
}

// passInput is what the pass read, and what it makes of it: the cache, the
// clock, the nodes, the plan and the operation.
type passInput struct {
	key cache.ObjectName
	// ic is the cache, as this process last wrote it.
	ic  *v1alpha2.ImageCache
	now time.Time
	// started is the operation this pass starts, or "". Its Jobs are
	// named after its epoch: they are created only once its start is
	// recorded, by a later pass.
	started string
	// nodes holds every node of the cluster, by name.
	nodes map[string]*corev1.Node
	plan  *plan.Plan
	op    operation
}

// planned records the nodes, and the plan of the spec on them.
func (in *passInput) planned(nodes map[string]*corev1.Node, p *plan.Plan) {
	in.nodes, in.plan = nodes, p
}

// chose records the operation that works on the plan.
func (in *passInput) chose(op operation) { in.op = op }

// starts records that this pass starts an operation.
func (in *passInput) starts(op string) { in.started = op }

// rewritten records the cache as a write of this pass left it.
func (in *passInput) rewritten(ic *v1alpha2.ImageCache) { in.ic = ic }

// passBook is what the steps settle: the status being computed (a copy of
// the cache's), the ledger, and the failures.
type passBook struct {
	st *v1alpha2.ImageCacheStatus
	// led is the ledger as this pass leaves it; before is as it was read.
	led    *ledger.Ledger
	before ledger.Reader
	// failures are status.failures, unpinned the pins the nodes refused
	// (status.unpinned).
	failures failureSet
	unpinned failureSet
	// retries holds, by pairKey, the unsettled pairs whose pulls failed
	// for a reason that may pass, to try again (retryLater).
	retries map[string]*pairRetry
	// removedEarlier holds the pairKeys of earlier delete Jobs seen this
	// pass (unsettleRemoved).
	removedEarlier map[string]bool
}

// newEpoch records the ledger of an operation that starts, and the ledger
// of its epoch as read.
func (b *passBook) newEpoch(led *ledger.Ledger, before ledger.Reader) { b.led, b.before = led, before }

// holdFailures records the failures and refused pins that still hold.
func (b *passBook) holdFailures(failures, unpinned failureSet) {
	b.failures, b.unpinned = failures, unpinned
}

// retry returns the record of a pair's failed tries, made on first ask.
func (b *passBook) retry(node, key string) *pairRetry {
	if b.retries == nil {
		b.retries = map[string]*pairRetry{}
	}
	p := b.retries[pairKey(node, key)]
	if p == nil {
		p = &pairRetry{}
		b.retries[pairKey(node, key)] = p
	}
	return p
}

// removedBefore records that an earlier delete Job removes an image from a
// node.
func (b *passBook) removedBefore(node, key string) {
	if b.removedEarlier == nil {
		b.removedEarlier = map[string]bool{}
	}
	b.removedEarlier[pairKey(node, key)] = true
}

// jobsSeen is what the cache's Jobs say.
type jobsSeen struct {
	// jobs are the cache's Jobs; deleted names those this pass deleted.
	jobs    []*batchv1.Job
	deleted map[string]bool
	// busy marks the nodes where one of the cache's Jobs runs: they get
	// no other Job now.
	busy map[string]bool
	// failedCreates holds the Job controller's FailedCreate events by
	// namespace and Job UID, each namespace once read (failedCreatesIn).
	failedCreates map[string]map[types.UID]*corev1.Event
	// pinJobsDone are the pin and unpin Jobs read to their end this pass.
	pinJobsDone []*batchv1.Job
}

// seen records the cache's Jobs.
func (j *jobsSeen) seen(jobs []*batchv1.Job) { j.jobs = jobs }

// markBusy records that one of the cache's Jobs runs on a node.
func (j *jobsSeen) markBusy(node string) { j.busy[node] = true }

// markDeleted records that this pass deleted a Job.
func (j *jobsSeen) markDeleted(name string) { j.deleted[name] = true }

// pinJobRead records a pin or unpin Job read to its end.
func (j *jobsSeen) pinJobRead(job *batchv1.Job) { j.pinJobsDone = append(j.pinJobsDone, job) }

// failedCreatesIn returns the FailedCreate events of a namespace's Jobs,
// read with list the first time the pass asks.
func (j *jobsSeen) failedCreatesIn(namespace string, list func() map[types.UID]*corev1.Event) map[types.UID]*corev1.Event {
	if got, ok := j.failedCreates[namespace]; ok {
		return got
	}
	if j.failedCreates == nil {
		j.failedCreates = map[string]map[types.UID]*corev1.Event{}
	}
	got := list()
	j.failedCreates[namespace] = got
	return got
}

// lookAgain is when to look at the cache again.
type lookAgain struct {
	// checkAt is the earliest time a running Job must be looked at again.
	checkAt time.Time
}

// lookAt asks the pass to look at the cache again at t (none when zero),
// unless it looks earlier already.
func (l *lookAgain) lookAt(t time.Time) {
	if !t.IsZero() && (l.checkAt.IsZero() || t.Before(l.checkAt)) {
		l.checkAt = t
	}
}

package pass

import (
	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
)

// Book is what the steps settle: the status being computed (a copy of
// the cache's), the ledger, and the failures.
type Book struct {
	St *v1alpha2.ImageCacheStatus
	// Led is the ledger as this pass leaves it; Before is as it was read.
	Led    *ledger.Ledger
	Before ledger.Reader
	// Failures are status.failures, Unpinned the pins the nodes refused
	// (status.unpinned).
	Failures Failures
	Unpinned Failures
	// Retries holds, by PairKey, the unsettled pairs whose pulls failed
	// for a reason that may pass, to try again.
	Retries map[string]*PairRetry
	// UnpinRetries holds, by node, the failed tries of its unpins.
	UnpinRetries map[string]*PairRetry
	// RemovedEarlier holds the PairKeys of the images earlier delete Jobs
	// remove, seen this pass.
	RemovedEarlier map[string]bool
}

// NewEpoch records the ledger of an operation that starts, and the ledger
// of its epoch as read.
func (b *Book) NewEpoch(led *ledger.Ledger, before ledger.Reader) { b.Led, b.Before = led, before }

// HoldFailures records the failures and refused pins that still hold.
func (b *Book) HoldFailures(failures, unpinned Failures) {
	b.Failures, b.Unpinned = failures, unpinned
}

// Retry returns the record of a pair's failed tries, made on first ask.
func (b *Book) Retry(node, key string) *PairRetry {
	if b.Retries == nil {
		b.Retries = map[string]*PairRetry{}
	}
	p := b.Retries[PairKey(node, key)]
	if p == nil {
		p = &PairRetry{}
		b.Retries[PairKey(node, key)] = p
	}
	return p
}

// UnpinRetry returns the record of a node's failed unpins, made on first
// ask.
func (b *Book) UnpinRetry(node string) *PairRetry {
	if b.UnpinRetries == nil {
		b.UnpinRetries = map[string]*PairRetry{}
	}
	p := b.UnpinRetries[node]
	if p == nil {
		p = &PairRetry{}
		b.UnpinRetries[node] = p
	}
	return p
}

// RemovedBefore records that an earlier delete Job removes an image from a
// node.
func (b *Book) RemovedBefore(node, key string) {
	if b.RemovedEarlier == nil {
		b.RemovedEarlier = map[string]bool{}
	}
	b.RemovedEarlier[PairKey(node, key)] = true
}

func newBook(st *v1alpha2.ImageCacheStatus, led *ledger.Ledger, before ledger.Reader) Book {
	return Book{St: st, Led: led, Before: before, Failures: Failures{}, Unpinned: Failures{}}
}

// RetryingNodes are the nodes with a failed pull to try again.
func (b *Book) RetryingNodes() map[string]bool {
	nodes := map[string]bool{}
	for k := range b.Retries {
		node, _ := SplitPairKey(k)
		nodes[node] = true
	}
	return nodes
}

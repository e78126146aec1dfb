package ops

import (
	"time"

	batchv1 "k8s.io/api/batch/v1"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// A pull that fails for a reason that may pass (puller.Transient: a
// registry or network down, slow or busy) is tried again by itself, with
// exponential backoff, until it succeeds or --pull-retry-deadline after the
// operation's start passes; the operation goes on meanwhile. What a pair's
// tries were is read from the operation's Jobs, which stay until it
// completes (past --max-finished-jobs, the other finished Jobs go first),
// so a restarted controller picks the backoff up where it was:
// the n-th failed try of a pair waits its backoff (pass.PairRetry.Failed) from the end of its
// Job, and the Job of the next try is named after n (puller.Batch.Attempt).
// Under a quota of Jobs the finished ones go early (jobwrite.Writer.DeleteDone): the
// count then starts again, and the waits are shorter.

// retryDeadline is when the operation stops trying failed pulls again
// (zero when it never does).
func (c *Ops) retryDeadline(s *pass.Pass) time.Time {
	if c.cfg.PullRetryDeadline <= 0 || s.St.StartTime == nil {
		return time.Time{}
	}
	return s.St.StartTime.Add(c.cfg.PullRetryDeadline)
}

// retryLater says whether the failure r of a pair, which job reports, is to
// be tried again rather than recorded: it may pass, and the operation still
// retries. It then counts the try in s.retries.
func (c *Ops) retryLater(s *pass.Pass, job *batchv1.Job, node, key string, r puller.Result) bool {
	deadline := c.retryDeadline(s)
	if !puller.Transient(r) || deadline.IsZero() || !s.Now.Before(deadline) {
		return false
	}
	p := s.Retry(node, key)
	p.Failed(puller.EndedAt(job, s.Now), r.Reason, r.Message, c.cfg.PullRetryMaxBackoff)
	if p.Next.After(deadline) {
		// Then its failure is recorded.
		p.Next = deadline
	}
	return true
}

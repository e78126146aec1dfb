package imagecache

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"

	batchv1 "k8s.io/api/batch/v1"

	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// A pull that fails for a reason that may pass (puller.Transient: a
// registry or network down, slow or busy) is tried again by itself, with
// exponential backoff, until it succeeds or --pull-retry-deadline after the
// operation's start passes; the operation goes on meanwhile. What a pair's
// tries were is read from the operation's Jobs, which stay until it
// completes, so a restarted controller picks the backoff up where it was:
// the n-th failed try of a pair waits retryBackoff(n) from the end of its
// Job, and the Job of the next try is named after n (puller.Batch.Attempt).
// Under a quota of Jobs the finished ones go early (deleteJobsDone): the
// count then starts again, and the waits are shorter.

// firstRetryWait is the wait after a pair's first failed try; each further
// failed try doubles it, up to --pull-retry-max-backoff.
const firstRetryWait = 10 * time.Second

// retryBackoff is the wait after the n-th failed try (n >= 1).
func retryBackoff(n int, most time.Duration) time.Duration {
	d := firstRetryWait
	for i := 1; i < n && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}

// retryDeadline is when the operation stops trying failed pulls again
// (zero when it never does).
func (c *Controller) retryDeadline(s *pass.Pass) time.Time {
	if c.cfg.PullRetryDeadline <= 0 || s.St.StartTime == nil {
		return time.Time{}
	}
	return s.St.StartTime.Add(c.cfg.PullRetryDeadline)
}

// retryLater says whether the failure r of a pair, which job reports, is to
// be tried again rather than recorded: it may pass, and the operation still
// retries. It then counts the try in s.retries.
func (c *Controller) retryLater(s *pass.Pass, job *batchv1.Job, node, key string, r puller.Result) bool {
	deadline := c.retryDeadline(s)
	if !puller.Transient(r) || deadline.IsZero() || !s.Now.Before(deadline) {
		return false
	}
	p := s.Retry(node, key)
	p.Attempts++
	ended := puller.EndedAt(job, s.Now)
	if !ended.Before(p.Ended) {
		p.Ended, p.Reason, p.Message = ended, r.Reason, r.Message
	}
	p.Next = p.Ended.Add(retryBackoff(p.Attempts, c.cfg.PullRetryMaxBackoff))
	if p.Next.After(deadline) {
		// Then its failure is recorded.
		p.Next = deadline
	}
	return true
}

// retrySummary is what the status message says of the pairs to try again.
type retrySummary struct {
	pairs int
	nodes []string
	// reason and message are the most common reason and a message of it;
	// next is the earliest next try.
	reason, message string
	next            time.Time
}

// summarizeRetries sums up the pairs waiting to be tried again, of the
// nodes that can take a pull now. Of each reason it keeps the message of
// the first pair in (node, image) order, without sorting them all: a
// registry down under a large cache has a pair per node and image.
func summarizeRetries(s *pass.Pass) retrySummary {
	var out retrySummary
	byReason := map[string]int{}
	first := map[string]string{} // reason -> its first pair
	nodes := map[string]bool{}
	for name, p := range s.Retries {
		node, key, _ := strings.Cut(name, "\x00")
		if w := s.Plan.Nodes[node]; w == nil || w.Skip != "" || s.Led.Get(node, key) != ledger.Unsettled {
			continue
		}
		out.pairs++
		nodes[node] = true
		byReason[p.Reason]++
		if f, ok := first[p.Reason]; !ok || name < f {
			first[p.Reason] = name
		}
		if out.next.IsZero() || p.Next.Before(out.next) {
			out.next = p.Next
		}
	}
	messages := map[string]string{}
	for reason, name := range first {
		messages[reason] = s.Retries[name].Message
	}
	out.nodes = sortedKeys(nodes)
	reasons := sortedKeys(byReason)
	sort.SliceStable(reasons, func(i, j int) bool { return byReason[reasons[i]] > byReason[reasons[j]] })
	if len(reasons) > 0 {
		out.reason, out.message = reasons[0], messages[reasons[0]]
	}
	return out
}

// phrase says in a status message which pairs wait to be tried again, why,
// and when next: "2 retrying on node-a, node-b after ErrImagePull (MESSAGE);
// next try at 10:04:05 UTC". The time is absolute, so that the message does
// not change, and the status is not written, for the clock alone.
func (r retrySummary) phrase() string {
	if r.pairs == 0 {
		return ""
	}
	msg := ""
	if r.message != "" {
		msg = " (" + message.Shorten(r.message, 200) + ")"
	}
	return fmt.Sprintf("%d retrying on %s after %s%s; next try at %s", r.pairs, message.ListSome(r.nodes, 3),
		r.reason, msg, r.next.UTC().Format("15:04:05 MST"))
}

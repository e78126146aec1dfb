package status

import (
	"fmt"
	"sort"
	"time"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
)

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
		node, key := pass.SplitPairKey(name)
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

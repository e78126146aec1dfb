package remover

import (
	"sort"
	"strconv"
	"strings"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/message"
)

// SummaryLimit is the most bytes of a container's termination message the
// kubelet keeps (it cuts the rest).
const SummaryLimit = 4096

// A delete or pin Job reports its outcomes in its container's termination
// message, which must fit in SummaryLimit whatever the images' names: so it
// names no image. Its first line is summaryHeader and one letter per image,
// in the order of the command's arguments; each failed image then has a
// line "INDEX: MESSAGE", as each image with a message (a kept image's other
// name, a refused pin's reason), the messages cut so that all of them fit:
//
//	outcomes rraf
//	3: removing registry.example/app:v1 via /run/...: rpc error: ...
const summaryHeader = "outcomes "

var letters = map[cri.Outcome]byte{cri.Removed: 'r', cri.AlreadyAbsent: 'a', cri.Failed: 'f', cri.Kept: 'k',
	cri.Pinned: 'p', cri.Unpinned: 'u', cri.OverBudget: 'b', cri.Unsupported: 'x'}

// Result is one image's removal outcome, and the runtime's message when it
// failed. An empty Outcome means the summary does not say.
type Result struct {
	Outcome cri.Outcome
	Message string
}

// FormatSummary writes the results, in the order of the images, in at most
// limit bytes as long as the outcome letters fit (one byte per image): the
// failure messages share what is left, the shorter ones whole.
func FormatSummary(results []Result, limit int) string {
	var b strings.Builder
	b.WriteString(summaryHeader)
	var failed []int
	for i, r := range results {
		l, ok := letters[r.Outcome]
		if !ok {
			l = letters[cri.Failed]
		}
		b.WriteByte(l)
		if l == letters[cri.Failed] || r.Message != "" {
			failed = append(failed, i) // a kept or refused image's message says why
		}
	}
	// Share the bytes left among the failures, the shortest first, so a
	// short message never takes room a long one could use.
	sort.SliceStable(failed, func(a, b int) bool { return len(results[failed[a]].Message) < len(results[failed[b]].Message) })
	left := limit - b.Len()
	lines := make([]string, len(results)) // by image, in order
	for k, i := range failed {
		prefix := "\n" + strconv.Itoa(i) + ": "
		share := left/(len(failed)-k) - len(prefix)
		if share <= 0 {
			continue // no room even for its index: it reads as failed, without a message
		}
		lines[i] = prefix + message.Shorten(results[i].Message, share)
		left -= len(lines[i])
	}
	for _, line := range lines {
		b.WriteString(line)
	}
	return b.String()
}

// ParseSummary reads a termination message back into one result per image
// of the Job, in order. It also reads the summary of earlier versions, one
// line per image: "OUTCOME: IMAGE[: MESSAGE]".
func ParseSummary(summary string, images []string) []Result {
	out := make([]Result, len(images))
	head, rest, _ := strings.Cut(summary, "\n")
	if codes, ok := strings.CutPrefix(head, summaryHeader); ok {
		outcomes := map[byte]cri.Outcome{}
		for o, l := range letters {
			outcomes[l] = o
		}
		for i := range min(len(codes), len(out)) {
			out[i].Outcome = outcomes[codes[i]]
		}
		for _, line := range strings.Split(rest, "\n") {
			idx, msg, ok := strings.Cut(line, ": ")
			i, err := strconv.Atoi(idx)
			if ok && err == nil && i >= 0 && i < len(out) {
				out[i].Message = msg
			}
		}
		return out
	}
	byImage := map[string]Result{}
	for _, line := range strings.Split(summary, "\n") {
		outcome, rest, ok := strings.Cut(line, ": ")
		if !ok {
			continue
		}
		img, msg, _ := strings.Cut(rest, ": ")
		byImage[img] = Result{Outcome: cri.Outcome(outcome), Message: msg}
	}
	for i, img := range images {
		out[i] = byImage[img]
	}
	return out
}

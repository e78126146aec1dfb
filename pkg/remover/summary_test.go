package remover

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/version"
)

// TestSummaryOfALargeBatchFits: a delete Job of 100 images with long names,
// a third of them failing with long messages, leaves a summary within the
// kubelet's 4 KiB from which every image's outcome reads back.
func TestSummaryOfALargeBatchFits(t *testing.T) {
	images := make([]string, 100)
	results := make([]Result, len(images))
	for i := range images {
		images[i] = fmt.Sprintf("registry.example.com/%s/app-%03d:v1.2.3", strings.Repeat("team-", 30), i)
		switch i % 3 {
		case 0:
			results[i] = Result{Outcome: cri.Removed}
		case 1:
			results[i] = Result{Outcome: cri.AlreadyAbsent}
		default:
			results[i] = Result{Outcome: cri.Failed, Message: "removing " + images[i] +
				": rpc error: code = Unknown desc = " + strings.Repeat("detail ", 40) + "image is in use"}
		}
	}
	if old := len(oldSummary(images, results)); old <= SummaryLimit {
		t.Fatalf("the batch's old summary takes %d bytes: it does not test the limit", old)
	}
	summary := FormatSummary(results, SummaryLimit)
	if len(summary) > SummaryLimit {
		t.Fatalf("the summary takes %d bytes, over the kubelet's %d", len(summary), SummaryLimit)
	}
	got := ParseSummary(summary, images)
	for i, r := range got {
		if r.Outcome != results[i].Outcome {
			t.Errorf("image %d: outcome %q, want %q", i, r.Outcome, results[i].Outcome)
		}
		if results[i].Outcome == cri.Failed && !strings.HasSuffix(r.Message, "image is in use") {
			t.Errorf("image %d: message %q lost its cause", i, r.Message)
		}
		if results[i].Outcome != cri.Failed && r.Message != "" {
			t.Errorf("image %d: a message %q for an image that did not fail", i, r.Message)
		}
	}
}

// TestSummaryShortMessagesWhole: short messages are kept whole; the long
// one takes what they leave.
func TestSummaryShortMessagesWhole(t *testing.T) {
	results := []Result{
		{Outcome: cri.Failed, Message: strings.Repeat("x", 10000) + " the end"},
		{Outcome: cri.Failed, Message: "short one"},
		{Outcome: cri.Removed},
	}
	summary := FormatSummary(results, SummaryLimit)
	got := ParseSummary(summary, []string{"a", "b", "c"})
	if len(summary) > SummaryLimit || got[1].Message != "short one" || !strings.HasSuffix(got[0].Message, " the end") ||
		len(got[0].Message) < SummaryLimit-100 || got[2].Outcome != cri.Removed {
		t.Errorf("summary of %d bytes read back as %+v", len(summary), got)
	}
}

// TestParseSummaryOfEarlierVersions reads the one-line-per-image summary of
// delete Jobs created before the compact one, as after an upgrade.
func TestParseSummaryOfEarlierVersions(t *testing.T) {
	images := []string{"a:1", "b:1", "c:1", "d:1"}
	got := ParseSummary("removed: a:1\nalready absent: b:1\nfailed: c:1: rpc error: image in use", images)
	want := []Result{{Outcome: cri.Removed}, {Outcome: cri.AlreadyAbsent}, {Outcome: cri.Failed, Message: "rpc error: image in use"}, {}}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("%s: %+v, want %+v", images[i], got[i], want[i])
		}
	}
}

// oldSummary is the summary as earlier versions wrote it.
func oldSummary(images []string, results []Result) string {
	var lines []string
	for i, r := range results {
		l := fmt.Sprintf("%s: %s", r.Outcome, images[i])
		if r.Message != "" {
			l += ": " + r.Message
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// A kept image is a letter of its own, with the message that says which
// other name kept it.
func TestSummaryOfKeptImages(t *testing.T) {
	images := []string{"registry.example/a:v1", "registry.example/b:v1", "registry.example/c:v1"}
	results := []Result{{Outcome: cri.Removed}, {Outcome: cri.Kept, Message: "it is also mirror.example/b:v1, which stays on this node"},
		{Outcome: cri.AlreadyAbsent}}
	s := FormatSummary(results, SummaryLimit)
	if want := "outcomes rka\n1: it is also mirror.example/b:v1, which stays on this node"; s != want {
		t.Fatalf("summary %q, want %q", s, want)
	}
	if got := ParseSummary(s, images); !reflect.DeepEqual(got, results) {
		t.Errorf("parsed %+v, want %+v", got, results)
	}
}

func TestVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Main(context.Background(), []string{"--version"}, &out, &errOut); code != 0 ||
		!strings.HasPrefix(out.String(), "fledged-cri "+version.Get().Version+" (revision ") {
		t.Errorf("--version: exit %d, %q %q", code, out.String(), errOut.String())
	}
}

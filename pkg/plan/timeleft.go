package plan

import (
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/message"
)

// TimeLeft estimates, while an operation pulls, the time until its pending
// pulls settle, from the pace of those settled since it started: once it
// has run 30 s and settled 10 pulls, so that the pace means something.
func TimeLeft(c v1alpha2.PullCounts, start *metav1.Time, now time.Time) (time.Duration, bool) {
	done := c.Succeeded + c.Failed
	if start == nil || c.Pending == 0 || done < 10 {
		return 0, false
	}
	elapsed := now.Sub(start.Time)
	if elapsed < 30*time.Second {
		return 0, false
	}
	return time.Duration(float64(elapsed) * float64(c.Pending) / float64(done)), true
}

// LeftPhrase says an estimate of the time left in a status message.
func LeftPhrase(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "less than a minute left"
	case d < 90*time.Minute:
		n := int((d + time.Minute - 1) / time.Minute)
		return fmt.Sprintf("about %d %s left", n, message.Plural(n, "minute", "minutes"))
	default:
		n := int((d + 30*time.Minute) / time.Hour)
		return fmt.Sprintf("about %d hours left", n)
	}
}

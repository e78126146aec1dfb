package pullevents

import (
	"context"
	"regexp"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"kubefledged.io/kube-fledged/pkg/metrics"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// Pull is what the kubelet's events say of one pull: its result, how
// long it took, and the image's size (0: not said).
type Pull struct {
	Result string
	Took   time.Duration
	Bytes  int64
}

// pulledMessage is the kubelet's Pulled event for an image it pulled:
// `Successfully pulled image "X" in 2.213s (2.213s including waiting). Image
// size: 12345 bytes.` (the size since Kubernetes 1.30). An image found
// present says "already present" instead: no pull.
var pulledMessage = regexp.MustCompile(`^Successfully pulled image ".*" in ([0-9][0-9.a-zµ]*)(?: \([^)]*\))?\.?(?: Image size: ([0-9]+) bytes)?`)

// parsePulled reads a Pulled event's message.
func parsePulled(msg string) (Pull, bool) {
	m := pulledMessage.FindStringSubmatch(msg)
	if m == nil {
		return Pull{}, false
	}
	took, err := time.ParseDuration(m[1])
	if err != nil {
		return Pull{}, false
	}
	p := Pull{Result: metrics.ResultPulled, Took: took}
	if m[2] != "" {
		p.Bytes, _ = strconv.ParseInt(m[2], 10, 64)
	}
	return p, true
}

// PodPulls reads a pull pod's Pulling and Pulled events, by container,
// once, when the pass first settles a pair of the pod.
type PodPulls struct {
	load                        func() (pulling, pulled map[string]*corev1.Event)
	loaded                      bool
	pullingEvents, pulledEvents map[string]*corev1.Event
	now                         time.Time
}

// Pulls returns what reads a pull pod's events for the metrics.
func (w *Watches) Pulls(ctx context.Context, pod *corev1.Pod, now time.Time) *PodPulls {
	return &PodPulls{now: now, load: func() (map[string]*corev1.Event, map[string]*corev1.Event) {
		if pod == nil {
			return nil, nil
		}
		return w.PodEvents(ctx, pod, reasons.Pulling), w.PodEvents(ctx, pod, reasons.Pulled)
	}}
}

func (p *PodPulls) events() {
	if !p.loaded {
		p.loaded = true
		p.pullingEvents, p.pulledEvents = p.load()
	}
}

// Pulled is what the Pulled event of the i-th container says of its pull,
// if the kubelet pulled the image (not when it found it present).
func (p *PodPulls) Pulled(i int) []Pull {
	p.events()
	e := p.pulledEvents[puller.ContainerName(i)]
	if e == nil {
		return nil
	}
	if kp, ok := parsePulled(e.Message); ok {
		return []Pull{kp}
	}
	return nil
}

// Failed is how long the i-th container's pull ran before it failed: from
// the kubelet's Pulling event until now, if there is one.
func (p *PodPulls) Failed(i int) []Pull {
	p.events()
	e := p.pullingEvents[puller.ContainerName(i)]
	if e == nil || e.FirstTimestamp.IsZero() || p.now.Before(e.FirstTimestamp.Time) {
		return nil
	}
	return []Pull{{Result: metrics.ResultFailed, Took: p.now.Sub(e.FirstTimestamp.Time)}}
}

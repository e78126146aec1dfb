package pins

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/throttle"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/plan"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/pkg/reasons"
)

// Jobs returns the pin and unpin Jobs to create now, for the nodes that
// no other Job of the cache holds, and counts the pins and unpins still to
// do, which keep the operation under way.
func (c *Pins) Jobs(s *pass.Pass, todo *pass.ToCreate) {
	pin := c.pinning(s)
	planned := map[string]bool{}
	for _, j := range todo.Jobs {
		planned[j.Node] = true
	}
	nodes := map[string]bool{}
	for _, n := range s.Led.PinNodes() {
		nodes[n] = true
	}
	if pin {
		for n := range s.Plan.Nodes {
			nodes[n] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(nodes)) {
		n := s.Nodes[name]
		if n == nil {
			// The node is gone. It may come back under its name with
			// its disk (drained, deleted, registered again): its pins
			// stay, unsure, until the next operation starts.
			if s.Started != "" {
				for _, key := range s.Led.PinsOn(name) {
					s.Led.SetPin(name, key, ledger.NotPinned)
				}
			} else {
				s.Led.DoubtPins(name)
			}
			continue
		}
		var unpins, pins []string
		for _, key := range s.Led.PinsOn(name) {
			wanted := pin && s.Plan.Wants(name, key)
			switch st := s.Led.Pin(name, key); {
			case st.Held() && !wanted:
				unpins = append(unpins, key)
			case st == ledger.PinRefused && !wanted:
				s.Led.SetPin(name, key, ledger.NotPinned)
			}
		}
		if w := s.Plan.Node(name); pin && w != nil && w.Skip == "" && nodeSettled(s, w) {
			for _, wi := range w.Images {
				_, unknown := s.Unpinned[s.DisplayOf(wi.Key, wi.Key)][name] // not pinned again in this operation
				if st, pin := s.Led.Get(name, wi.Key), s.Led.Pin(name, wi.Key); (st == ledger.Pulled || st == ledger.Present) &&
					(pin == ledger.NotPinned || pin == ledger.PinUnsure && !unknown) {
					pins = append(pins, wi.Key)
				}
			}
		}
		if len(unpins) == 0 && len(pins) == 0 {
			continue
		}
		if reason := c.filter.SkipReason(n); reason != "" && len(pins) == 0 {
			// An unpin waits for the node to take a pod again; it does
			// not hold the operation meanwhile.
			continue
		}
		retry := s.UnpinRetries[name]
		if len(unpins) > 0 && retry != nil && s.Now.Before(retry.Next) {
			// A failed unpin is tried again after its backoff; it
			// does not hold the operation meanwhile.
			s.LookAt(retry.Next)
			continue
		}
		todo.Pins += len(pins)
		for _, key := range unpins {
			// An unpin tried again after a failure does not put the
			// operation back under way: its failure says it is not done.
			if s.Failures[s.DisplayOf(key, key)][name].Reason != reasons.UnpinFailed {
				todo.Pins++
			}
		}
		if len(unpins) > 0 {
			attempt := 0
			if retry != nil {
				attempt = retry.Attempts
			}
			if c.pinJob(s, todo, n, unpins, true, planned[name], attempt) {
				// The new try replaces the failed ones' Jobs.
				for _, job := range s.FailedUnpins[name] {
					s.PinJobRead(job)
				}
			}
		} else if !c.refuseUnsupported(s, n, pins) {
			c.pinJob(s, todo, n, pins, false, planned[name], 0)
		} else {
			todo.Pins -= len(pins)
		}
	}
}

// nodeSettled says whether a node's pulls of the operation are all settled.
func nodeSettled(s *pass.Pass, w *plan.Node) bool {
	for _, wi := range w.Images {
		if s.Led.Get(w.Node.Name, wi.Key) == ledger.Unsettled {
			return false
		}
	}
	return true
}

// refuseUnsupported settles as refused the pins of a node whose runtime
// cannot pin images (not containerd), with no Job, and says so.
func (c *Pins) refuseUnsupported(s *pass.Pass, n *corev1.Node, keys []string) bool {
	runtime := n.Status.NodeInfo.ContainerRuntimeVersion
	if c.cfg.CRISocketPath != "" || strings.HasPrefix(runtime, "containerd://") {
		return false
	}
	for _, key := range keys {
		s.Led.SetPin(n.Name, key, ledger.PinRefused)
		s.Unpinned.Add(s.DisplayOf(key, key), n.Name, puller.ReasonPinUnsupported,
			fmt.Sprintf("the node's runtime %q cannot pin images: only containerd's can; the image is cached, not pinned", runtime))
	}
	return true
}

// pinJob adds the Job that pins (or unpins) images on a node to todo,
// unless the node must wait or the throttle has no slot; it says whether
// it did. The pins it is to set are held, unsure, from now: whatever
// becomes of the Job, they are the cache's to take away until an unpin
// says they are gone.
func (c *Pins) pinJob(s *pass.Pass, todo *pass.ToCreate, n *corev1.Node, keys []string, unpin, planned bool, attempt int) bool {
	if planned || todo.Hold(s, n.Name) {
		return false
	}
	socket := c.cfg.CRISocketPath
	if socket == "" {
		// containerd's socket, or k3s's own; an unpin may meet a node
		// that no longer says: containerd's.
		var err error
		if socket, err = cri.SocketForRuntime(n.Status.NodeInfo.ContainerRuntimeVersion); err != nil {
			socket = containerdSocket
		}
	}
	batch := keys[:min(len(keys), maxImagesPerPinJob)]
	job := puller.NewPinJob(c.cfg.Puller, puller.PinBatch{Cache: s.IC, NodeName: n.Name, Hostname: n.Labels[puller.HostnameLabel],
		Images: batch, Epoch: s.Led.Epoch, Unpin: unpin, Socket: socket, BudgetPercent: c.cfg.PinBudgetPercent,
		Root: c.cfg.ContainerdRoot, Attempt: attempt})
	if c.expectations.ExpectsCreate(throttle.JobKey(job)) {
		return false // created, and not shown by the informer yet
	}
	if !c.throttle.TryAcquire(throttle.JobKey(job), s.Key) {
		todo.Throttled = true
		return false
	}
	kind := "pin"
	if unpin {
		kind = "unpin"
	}
	held := map[string]bool{}
	for _, key := range batch {
		held[key] = s.Led.Pin(n.Name, key).Held()
		if !unpin {
			s.Led.SetPin(n.Name, key, ledger.PinUnsure)
		}
	}
	todo.Jobs = append(todo.Jobs, pass.NewJob{Job: job, Kind: kind, Node: n.Name, Images: len(batch), Pins: len(batch), Refused: func(message string) {
		for _, key := range batch {
			switch {
			case unpin:
				s.Failures.Add(s.DisplayOf(key, key), n.Name, reasons.UnpinFailed, "the image stays pinned on this node: "+message)
			case held[key]:
				s.Unpinned.Add(s.DisplayOf(key, key), n.Name, reasons.JobRejected, message+"; "+mayBeSet)
			default:
				s.Led.SetPin(n.Name, key, ledger.PinRefused)
				s.Unpinned.Add(s.DisplayOf(key, key), n.Name, reasons.JobRejected, message)
			}
		}
	}})
	return true
}

const (
	// containerdSocket is containerd's socket, its CRI's and its own API's.
	containerdSocket = "/run/containerd/containerd.sock"
	// maxImagesPerPinJob bounds one pin or unpin Job's command line.
	maxImagesPerPinJob = 100
)

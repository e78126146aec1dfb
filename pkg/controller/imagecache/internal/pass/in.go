package pass

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/plan"
)

// In is what the pass read, and what it makes of it: the cache, the
// clock, the nodes, the plan and the operation.
type In struct {
	Key cache.ObjectName
	// IC is the cache, as this process last wrote it.
	IC  *v1alpha2.ImageCache
	Now time.Time
	// Started is the operation this pass starts, or "". Its Jobs are
	// named after its epoch: they are created only once its start is
	// recorded, by a later pass.
	Started string
	// Nodes holds every node of the cluster, by name.
	Nodes map[string]*corev1.Node
	// Plan is what the cache wants on them, and Op the operation that
	// works on it; a deleted cache's pass has neither (SawNodes).
	Plan *plan.Plan
	Op   Operation
}

// Planned records the nodes, and the plan of the spec on them.
func (in *In) Planned(nodes map[string]*corev1.Node, p *plan.Plan) {
	in.Nodes, in.Plan = nodes, p
}

// SawNodes records the nodes of a pass that has no plan: a deleted cache's,
// which wants nothing.
func (in *In) SawNodes(nodes map[string]*corev1.Node) { in.Nodes = nodes }

// Chose records the operation that works on the plan.
func (in *In) Chose(op Operation) { in.Op = op }

// Starts records that this pass starts an operation.
func (in *In) Starts(op string) { in.Started = op }

// Rewritten records the cache as a write of this pass left it.
func (in *In) Rewritten(ic *v1alpha2.ImageCache) { in.IC = ic }

func newIn(key cache.ObjectName, ic *v1alpha2.ImageCache, now time.Time) In {
	return In{Key: key, IC: ic, Now: now}
}

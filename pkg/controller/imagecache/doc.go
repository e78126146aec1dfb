// Package imagecache is the ImageCache controller: it turns each ImageCache
// into per-node image-pull Jobs, follows them to completion and writes the
// outcome back to the ImageCache's status.
//
// The files, in the order data flows through them:
//
//   - controller.go: the informers' events become keys on the work queue;
//     workers take a key and call sync.
//   - sync.go: sync, one pass over one cache, as a list of phases over a
//     syncCtx: the cache to sync, the operation, the plan, the Jobs read,
//     what needs no Job settled, the Jobs to create, the status, the
//     clean-up, and when to look again. The later phases return what they
//     decide.
//   - operation.go: which operation starts now (create, update, refresh,
//     purge), its start, and the operation interface behind the phases.
//   - plan.go: the desired (node, image) pairs of the spec on the nodes of
//     now (pkg/plan, which also says which nodes can take a pull, and why
//     the others cannot), and the ledger (pkg/ledger) read for what the
//     operation cares about.
//   - jobs.go: reading the cache's Jobs into the ledger, and following
//     those of earlier operations to their end.
//   - internal/pullevents: the kubelet's "Pulling" events, which show that a
//     pull brought an image onto its node (the image is then owned: this
//     cache's to remove) where the node lists every image it has, and its
//     "Pulled" events, for the metrics; watched only in the namespaces that
//     hold pull Jobs.
//   - pull.go and purge.go: the two operations. pullOp pulls the spec's
//     images and removes those dropped from it; purgeOp removes them all.
//   - removal.go: what the two share to remove images: the delete Job of a
//     node, its runtime socket, and giving a removal up.
//   - pin.go: the pins of a cache with spec.pin: the pin and unpin Jobs of
//     a node, read into the ledger's pins; finalize.go: the finalizer that
//     takes a deleted cache's pins away.
//   - selfheal.go: a refresh of the pairs whose image left a node that
//     lists every image it has (the kubelet's image garbage collection).
//   - internal/throttle: the cluster-wide bound on Jobs in flight, over the
//     creates the expectations (pkg/controller/expectations) hold.
//   - jobwrites.go: creating the Jobs in growing batches, refusals, and
//     ending and deleting Jobs.
//   - status.go: the counts, failures, message and conditions, computed and
//     then written once a pass if they changed.
//   - size.go: keeping the status within one object: the failures it lists
//     (the ledger's bound is pkg/plan's TooLarge).
//
// Every reason the controller writes is in pkg/reasons. The informers'
// transforms are in pkg/trim, the startup-taint release in
// pkg/controller/warming.
package imagecache

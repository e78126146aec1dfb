// Package imagecache is the ImageCache controller: it turns each ImageCache
// into per-node image-pull Jobs, follows them to completion and writes the
// outcome back to the ImageCache's status.
//
// The files, in the order data flows through them:
//
//   - nodes.go: what the Node informer keeps of a node (TrimNode), and the
//     set of images it reports, read back as hashes.
//   - controller.go: the informers' events become keys on the work queue;
//     workers take a key and call sync.
//   - sync.go: sync, one pass over one cache, as a list of phases sharing a
//     syncCtx: the cache to sync, the operation, the plan, the Jobs, the
//     status, the clean-up, and when to look again.
//   - operation.go: which operation starts now (create, update, refresh,
//     purge), its start, and the operation interface behind the phases.
//   - plan.go: the desired (node, image) pairs of the spec on the nodes of
//     now, and the ledger trimmed to what the operation still cares about.
//   - ledger.go: the record in status of the pairs settled so far.
//   - jobs.go: reading the cache's Jobs into the ledger, creating the new
//     ones in growing batches, ending and deleting them.
//   - pull.go and purge.go: the two operations. pullOp pulls the spec's
//     images and removes those dropped from it; purgeOp removes them all.
//   - throttle.go: the cluster-wide bound on Jobs in flight.
//   - status.go: the counts, failures, message and conditions, written once
//     a pass if they changed.
package imagecache

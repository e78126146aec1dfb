// Package imagecache is the ImageCache controller: it turns each ImageCache
// into per-node image-pull Jobs, follows them to completion and writes the
// outcome back to the ImageCache's status.
//
// One controller, one queue, one pass per cache and one status write per
// pass. This package holds the queue and the table of contents; each
// concern is a package of its own under internal/, which the compiler keeps
// in one direction. In the order data flows through them:
//
//   - handlers.go: the informers' events become keys on the work queue;
//     controller.go: workers take a key and call sync; config.go: the
//     controller's flags, and what each concern takes of them.
//   - sync.go: sync, one pass over one cache, as a list of named steps:
//     the cache to sync, the finalizer, the operation's start, the plan,
//     the Jobs read, what needs no Job settled, the Jobs to create, the
//     status, the clean-up, and when to look again; plan.go: the plan of
//     the pass (pkg/plan: what the cache wants on the nodes of now).
//   - internal/pass: what one pass works on, in four groups (what it read,
//     what its steps settle, what the Jobs say, when to look again), each
//     written only in its own file; the operation interface; the Jobs to
//     create; the failures.
//   - internal/ops: which operation starts when, and the two operations:
//     the pull pulls the spec's images and removes those dropped from it,
//     the purge removes them all; the refresh for images gone from their
//     nodes; the failed pulls tried again.
//   - internal/jobread: the cache's Jobs read into the pass, followed to
//     their end; internal/pullevents: the kubelet's Pulling events, which
//     show that a pull brought an image onto its node (the image is then
//     owned: this cache's to remove), and its Pulled events, for the
//     metrics.
//   - internal/pins: the pins of a cache with spec.pin, and the finalizer
//     that takes a deleted cache's pins away.
//   - internal/jobwrite: creating the Jobs in growing batches (refusals
//     failing their pairs), ending and deleting them; internal/throttle:
//     the cluster-wide bound on Jobs in flight, shared fairly between the
//     caches.
//   - internal/status: the counts, failures, message and conditions,
//     computed and then written once a pass if they changed; the status
//     kept within one object.
//
// Every reason the controller writes is in pkg/reasons; the ledger is
// reached through ledger.Store. The informers' transforms are in pkg/trim,
// the startup-taint release in pkg/controller/warming.
package imagecache

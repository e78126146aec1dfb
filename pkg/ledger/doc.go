// Package ledger is the wire format of an ImageCache's ledger, the record
// it keeps of every (node, image) pair: the state of its pull in the current
// operation (unsettled, pulled, already present, failed), the node it was
// recorded on (a UID tag, so that a node re-created under the same name is
// warmed again), whether the cache's own pull brought the image there
// (owned: the only images the cache may remove), and its pins.
//
// The ledger lives in two places: its header (format, epoch, removal time)
// in the cache's status.ledger, and its nodes' entries in the cache's
// ImageCacheSlices, each holding at most MaxNodesPerSlice nodes, as a
// Service's endpoints live in EndpointSlices. The controller reads it back
// at the start of a sync (Store.Open) and writes, once a pass, the slices
// whose nodes changed (PlanSlices) and the header; the node-warming
// controller and command-line tools read one node or one pair without
// decoding it all. Anyone with rights on the status or the slices can write
// them, so reading them trusts nothing: a damaged entry means "pull again",
// never "pulled" or "owned", and a node two slices hold keeps only what both
// say.
//
// The files:
//   - ledger.go: the decoded Ledger, what an operation does to it (Fresh,
//     CarryOver, KeepOnly, ForgetReplaced).
//   - codec.go: Decode and Encode, the encoding of the entries.
//   - read.go: Reader, states read in place from the encoded form;
//     NodeStates, one node's; NodeReader, one node at a time.
//   - slices.go: Part, Join and Assign, the ledger cut into slices and put
//     back together.
//   - sliced.go: the header, PlanSlices (what a pass writes), SliceName,
//     MaxNodesPerSlice and Open.
//   - size.go: EstimateSize, the bytes a ledger's entries take.
//   - store.go: Store, where the ledgers live (the status and an informer's
//     slices), the one way the controllers reach them.
package ledger

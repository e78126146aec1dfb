// Package ledger is the wire format of status.ledger, the record an
// ImageCache keeps of every (node, image) pair: the state of its pull in the
// current operation (unsettled, pulled, already present, failed), the node it
// was recorded on (a UID tag, so that a node re-created under the same name
// is warmed again), and whether the cache's own pull brought the image there
// (owned: the only images the cache may remove).
//
// The controller decodes it at the start of a sync and encodes it once a
// pass; the node-warming controller and command-line tools read one node or
// one pair without decoding it all. Anyone with rights on the status can
// write it, so reading it trusts nothing: a damaged entry means "pull again",
// never "pulled" or "owned".
//
// The files:
//   - ledger.go: the decoded Ledger, what an operation does to it (Fresh,
//     CarryOver, KeepOnly, ForgetReplaced), and Decode and Encode.
//   - read.go: Reader, states read in place from the encoded form, and
//     NodeStates, one node's.
//   - size.go: EstimateSize, the bytes a cache's ledger takes in its object.
//   - store.go: Store, where the ledgers live (their caches' status), the
//     one way the controllers and tools reach them.
package ledger

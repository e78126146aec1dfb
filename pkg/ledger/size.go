package ledger

import "iter"

// ManagedFieldsEntry is what the API server's managedFields hold for each
// key of a map the controller writes, besides the key itself.
const ManagedFieldsEntry = `"f:":{},`

// EstimateSize estimates the bytes the ledger of a cache adds to its
// object, from the images each node wants (nodes yields a node's name and
// how many) and the images of the spec: per node its name, two bits per
// image in base64, its UID tag, a bit per image (owned) in base64 and the
// JSON around them, and its name again in managedFields; and the table of
// images.
func EstimateSize(nodes iter.Seq2[string, int], images iter.Seq[string]) int {
	size := 0
	for name, n := range nodes {
		bits, owned := (n+3)/4, (n+7)/8
		size += len(name) + (bits*4+2)/3 + len(".12345678.") + (owned*4+2)/3 + len(`"":"",`) + len(name) + len(ManagedFieldsEntry)
	}
	for key := range images {
		size += len(key) + 3
	}
	return size
}

package ledger

import "iter"

// ManagedFieldsEntry is what the API server's managedFields hold for each
// key of a map the controller writes, besides the key itself.
const ManagedFieldsEntry = `"f:":{},`

// EstimateSize is an upper bound of the bytes the ledger of a cache adds to
// its object once every pair is settled and owned, as Encode writes it: every
// node's entry is sized by the whole table of images (two bits per image in
// base64, a bit per image for owned, in base64), with its UID tag, the JSON
// around it and its name again in managedFields; then the table itself, and
// the fields around it. nodes yields the nodes with an entry, images the
// table (the spec's images and the owned ones it no longer has).
func EstimateSize(nodes iter.Seq[string], images iter.Seq[string]) int {
	size, table := ledgerOverhead, 0
	for key := range images {
		size += len(key) + len(`"",`)
		table++
	}
	states, owned := ((table+3)/4*4+2)/3, ((table+7)/8*4+2)/3
	for name := range nodes {
		size += len(name) + states + len(".12345678.") + owned + len(`"":"",`) + len(name) + len(ManagedFieldsEntry)
	}
	return size
}

// ledgerOverhead bounds the bytes of the ledger's own fields and braces.
const ledgerOverhead = 128

// EstimatePinsSize is an upper bound of the bytes a pinning cache's ledger
// adds for its pins (status.ledger.pins): per node, two bits per image of a
// table of the given length, in base64, with its name twice (the map's key
// and managedFields).
func EstimatePinsSize(nodes iter.Seq[string], table int) int {
	size := 0
	pins := ((table+3)/4*4 + 2) / 3
	for name := range nodes {
		size += len(name) + pins + len(`"":"",`) + len(name) + len(ManagedFieldsEntry)
	}
	return size
}

package plan

import "fmt"

// MaxImages is the most images one cache may list (after normalisation,
// each once). The ledger itself has no bound tied to nodes × images: its
// entries are in slices of at most 1,000 nodes each, as many as the nodes
// need. The images are bounded because everything per node grows with them:
// each node's entry in its slice (two bits per image, a bit more per image
// owned and pinned), so that past about 1,000 images a slice holds fewer
// nodes (400 at the longest node names) and a cache takes more slices; and
// each node's pull Jobs. A cache of more images is refused (TooLarge):
// several caches, by images, record the same at the same cost.
const MaxImages = 1024

// TooLarge says why a plan is more than a cache can record, or "".
func TooLarge(p *Plan) string {
	if len(p.SpecKeys) <= MaxImages {
		return ""
	}
	return fmt.Sprintf("The cache is too large: it lists %d images, over the %d one ImageCache can hold; "+
		"split it into several caches, by images", len(p.SpecKeys), MaxImages)
}

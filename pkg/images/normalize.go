// Package images normalises container image references, so that two spellings
// of one image compare equal: "nginx" is "docker.io/library/nginx:latest".
package images

import (
	"fmt"

	"github.com/distribution/reference"
)

// Normalize returns the fully qualified form of an image reference: the
// registry and repository spelled out, ":latest" added when there is neither a
// tag nor a digest. A reference with both a tag and a digest keeps both.
func Normalize(image string) (string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", image, err)
	}
	return reference.TagNameOnly(named).String(), nil
}

// Keys returns the normalised names under which a runtime reports the image:
// "name:tag" for a tagged reference, "name@digest" for one with a digest (a
// reference with both is known by its digest, which is what a pull fetches).
func Keys(image string) ([]string, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", image, err)
	}
	if d, ok := named.(reference.Digested); ok {
		withDigest, err := reference.WithDigest(reference.TrimNamed(named), d.Digest())
		if err != nil {
			return nil, err
		}
		return []string{withDigest.String()}, nil
	}
	return []string{reference.TagNameOnly(named).String()}, nil
}

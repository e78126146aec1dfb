// Package images normalises container image references, so that two spellings
// of one image compare equal: "nginx" is "docker.io/library/nginx:latest".
package images

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/distribution/reference"
)

// Normalize returns the fully qualified form of an image reference: the
// registry and repository spelled out, ":latest" added when there is neither a
// tag nor a digest. A reference with both a tag and a digest keeps both.
//
// Results are remembered: a controller normalises the same few references
// for every node at every sync, and parsing one costs a regular expression.
func Normalize(image string) (string, error) {
	if v, ok := normalized.Load(image); ok {
		r := v.(result)
		return r.name, r.err
	}
	var r result
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		r.err = fmt.Errorf("invalid image reference %q: %w", image, err)
	} else {
		r.name = reference.TagNameOnly(named).String()
	}
	if normalizedCount.Add(1) > maxRemembered {
		// Many distinct references (such as digests that change): start over.
		normalized.Clear()
		normalizedCount.Store(1)
	}
	normalized.Store(image, r)
	return r.name, r.err
}

type result struct {
	name string
	err  error
}

// maxRemembered bounds the references Normalize remembers.
const maxRemembered = 16384

var (
	normalized      sync.Map // reference -> result
	normalizedCount atomic.Int64
)

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

// ByDigest says whether a normalised reference names a digest, which never
// moves.
func ByDigest(key string) bool { return strings.Contains(key, "@") }

// Latest says whether a normalised reference is tagged ":latest" (as an
// untagged one is once normalised), and names no digest.
func Latest(key string) bool { return !ByDigest(key) && strings.HasSuffix(key, ":latest") }

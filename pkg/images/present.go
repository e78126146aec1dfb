package images

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
	"sort"
	"strings"
)

// Present is a compact set of normalised image names: the sorted 64-bit
// FNV-1a hashes of the names, packed big-endian in a string. A node's
// status.images (50 images with two names each, about 10 KB in memory) is
// 800 bytes this way. Two distinct names share a hash with a probability of
// about 2^-64 per pair, which at worst counts one pull as already done.
type Present string

// NewPresent builds the set of the normalised forms of names; names the
// normaliser refuses are left out.
func NewPresent(names []string) Present {
	hashes := make([]uint64, 0, len(names))
	for _, name := range names {
		if key, err := Normalize(name); err == nil {
			hashes = append(hashes, hashKey(key))
		}
	}
	slices.Sort(hashes)
	hashes = slices.Compact(hashes)
	buf := make([]byte, 8*len(hashes))
	for i, h := range hashes {
		binary.BigEndian.PutUint64(buf[8*i:], h)
	}
	return Present(buf)
}

// Has reports whether the set holds a normalised name (a key from Normalize).
// A name with both a tag and a digest is looked for by its digest, as the
// runtime knows it (Keys): the pull fetches the digest, and the tag is not
// kept beside it.
func (p Present) Has(key string) bool {
	h := hashKey(digestOnly(key))
	n := len(p) / 8
	i := sort.Search(n, func(i int) bool { return p.at(i) >= h })
	return i < n && p.at(i) == h
}

// Len is the number of names in the set.
func (p Present) Len() int { return len(p) / 8 }

func (p Present) at(i int) uint64 { return binary.BigEndian.Uint64([]byte(p[8*i : 8*i+8])) }

func hashKey(key string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return h.Sum64()
}

// digestOnly is a normalised name without its tag when it has a digest
// too ("name:tag@digest" is "name@digest"), else the name itself.
func digestOnly(key string) string {
	at := strings.IndexByte(key, '@')
	if at < 0 {
		return key
	}
	name := key[:at]
	if colon := strings.LastIndexByte(name, ':'); colon > strings.LastIndexByte(name, '/') {
		return name[:colon] + key[at:]
	}
	return key
}

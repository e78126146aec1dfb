// Package trim holds the informers' transforms: what the controller keeps of
// each object it watches, before the object enters an informer's cache.
//
//   - trim.go: ForCache, the transform every informer of the controller uses;
//     Jobs, their pods and events.
//   - node.go: Node, what is kept of a Node, its reported images as a compact
//     set of hashes, and NodeImages, which reads them back.
package trim

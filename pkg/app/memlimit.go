package app

import (
	"os"
	"runtime/debug"
	"strconv"
)

// MemoryLimitEnv names the variable that gives the controller its container's
// memory limit in bytes (the Deployment sets it from resources.limits.memory
// through the downward API).
const MemoryLimitEnv = "KUBEFLEDGED_MEMORY_LIMIT"

// memoryLimitShare is the part of the container's limit given to the Go heap
// as its soft limit: the rest is for stacks, the runtime and what the heap
// overshoots between two collections.
const memoryLimitShare = 0.9

// setMemoryLimit sets the Go runtime's soft memory limit to 90% of the
// container's, unless GOMEMLIMIT sets one or no limit is given. It returns the
// limit it set, or 0.
func setMemoryLimit() int64 {
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		return 0
	}
	limit, err := strconv.ParseInt(os.Getenv(MemoryLimitEnv), 10, 64)
	if err != nil || limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * memoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// defaultGCPercent is the collector's target when GOGC is not set: the heap
// may grow by half its live size between two collections, not by all of
// it (Go's default, 100). Most of the controller's live heap is its
// informers' caches, which stay; the garbage is the objects its watches
// decode and its syncs compute, so collecting at half the growth keeps its
// resident memory about a quarter lower for a little more CPU (make bench).
const defaultGCPercent = 50

// setGCPercent sets the collector's target to defaultGCPercent, unless GOGC
// sets one. It returns the target it set, or 0.
func setGCPercent() int {
	if _, ok := os.LookupEnv("GOGC"); ok {
		return 0
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}

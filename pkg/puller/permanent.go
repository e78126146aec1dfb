package puller

import "strings"

// Reasons of a pull that can never work as the cache asks it: a failure
// with one of these is recorded as soon as the kubelet reports it, not at
// the pull deadline. The message is the kubelet's.
const (
	// ReasonImageNotFound: the registry has no such tag, digest or
	// repository.
	ReasonImageNotFound = "ImageNotFound"
	// ReasonUnauthorized: the registry refuses the pull secrets given (or
	// the lack of them).
	ReasonUnauthorized = "Unauthorized"
	// ReasonPlatformNotSupported: the image has no variant for the node's
	// platform.
	ReasonPlatformNotSupported = "PlatformNotSupported"
	// ReasonInvalidImageName is the kubelet's own reason for a reference
	// it cannot parse.
	ReasonInvalidImageName = "InvalidImageName"
)

// permanentMarkers are what the kubelet's message (the runtime's error) says
// of a pull that asking again will not mend, lower-cased. A 5xx, a 429, a
// timeout, a refused connection or a failed DNS lookup says none of them.
var permanentMarkers = []struct{ marker, reason string }{
	// Before "not found": containerd says "no match for platform in
	// manifest: not found".
	{"no match for platform", ReasonPlatformNotSupported},
	// Docker's, for a repository that is private or not there.
	{"pull access denied", ReasonUnauthorized},
	{"code = notfound", ReasonImageNotFound},
	{"manifest unknown", ReasonImageNotFound},
	{"name unknown", ReasonImageNotFound},
	{"repository does not exist", ReasonImageNotFound},
	{"401 unauthorized", ReasonUnauthorized},
	{"403 forbidden", ReasonUnauthorized},
	{"authorization failed", ReasonUnauthorized},
	{"code = unauthenticated", ReasonUnauthorized},
	{"code = permissiondenied", ReasonUnauthorized},
	{"no basic auth credentials", ReasonUnauthorized},
	{"unauthorized: ", ReasonUnauthorized},
	{"denied: ", ReasonUnauthorized},
}

// PermanentPullFailure says whether a container waiting with the kubelet's
// reason and message failed to pull for good, and with which reason of
// ours: the image is not there, the registry refuses the credentials, the
// image lacks the node's platform, or its reference is invalid. Anything
// else (a registry that is down or slow, a network that is) may pass.
func PermanentPullFailure(reason, message string) (string, bool) {
	switch reason {
	case ReasonInvalidImageName:
		return reason, true
	case "ErrImagePull", "ImagePullBackOff":
	default:
		return "", false
	}
	m := strings.ToLower(message)
	for _, p := range permanentMarkers {
		if strings.Contains(m, p.marker) {
			return p.reason, true
		}
	}
	if strings.HasSuffix(m, ": not found") {
		// containerd's resolver, for a tag or repository the registry
		// does not have: "REF: not found".
		return ReasonImageNotFound, true
	}
	return "", false
}

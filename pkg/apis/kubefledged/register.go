// Package kubefledged holds the API group name shared by all versions.
package kubefledged

// GroupName is the API group of kube-fledged's resources.
const GroupName = "kubefledged.io"

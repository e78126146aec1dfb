// Command fledged-helper is the small static binary that kube-fledged's pull
// Jobs run. The init container copies it into a shared emptyDir
// ("fledged-helper install DEST"); then every image's container runs it from
// there ("fledged-helper pulled IMAGE"), so images with no shell, or no files at
// all, can be cached: once the container runs, its image is on the node.
package main

import (
	"os"

	"kubefledged.io/kube-fledged/pkg/helper"
)

func main() {
	os.Exit(helper.Main(os.Args[1:], os.Stdout, os.Stderr))
}

// Command fledged-cri works on a node's images through its container
// runtime's socket: kube-fledged's delete Jobs run it to remove images, and
// its pin Jobs to pin and unpin them against the kubelet's image garbage
// collection.
//
//	fledged-cri rmi --socket /run/containerd/containerd.sock nginx:1.27 redis:7
//	fledged-cri pin --cache UID --budget 50 --root /var/lib/containerd nginx:1.27
//	fledged-cri unpin --cache UID nginx:1.27
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"kubefledged.io/kube-fledged/pkg/pinner"
	"kubefledged.io/kube-fledged/pkg/remover"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	args := os.Args[1:]
	var code int
	if len(args) > 0 && (args[0] == "pin" || args[0] == "unpin") {
		code = pinner.Main(ctx, args, os.Stdout, os.Stderr)
	} else {
		code = remover.Main(ctx, args, os.Stdout, os.Stderr)
	}
	stop()
	os.Exit(code)
}

// Command fledged-cri removes images from a node through its container
// runtime's CRI socket: kube-fledged's delete Jobs run it.
//
//	fledged-cri rmi --socket /run/containerd/containerd.sock nginx:1.27 redis:7
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"kubefledged.io/kube-fledged/pkg/remover"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := remover.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

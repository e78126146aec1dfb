// Command real-node is the Go half of hack/real-node-up.sh and
// hack/real-node-down.sh:
//
//	real-node push --image HOST:PORT/NAME:TAG --file /pause --bin PATH [--entrypoint /pause]
//	    builds a one-binary image (no Docker) and pushes it over plain HTTP;
//	real-node reset --socket PATH
//	    stops and removes every pod sandbox of a containerd, through CRI, so
//	    that their network namespaces, veths and IP leases are released.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"kubefledged.io/kube-fledged/pkg/imagebuild"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: real-node push|reset ...")
	}
	var err error
	switch os.Args[1] {
	case "push":
		err = push(os.Args[2:])
	case "reset":
		err = reset(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want push or reset", os.Args[1])
	}
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "real-node: "+format+"\n", args...)
	os.Exit(1)
}

func push(args []string) error {
	fs := flag.NewFlagSet("push", flag.ExitOnError)
	image := fs.String("image", "", "where to push, such as 127.0.0.1:16500/pause:local")
	file := fs.String("file", "/pause", "the binary's path in the image")
	bin := fs.String("bin", "", "the binary on disk")
	_ = fs.Parse(args)
	if *image == "" || *bin == "" {
		return fmt.Errorf("push needs --image and --bin")
	}
	img, err := imagebuild.Build(imagebuild.Options{Files: map[string]string{*file: *bin}, Entrypoint: []string{*file}, Arch: runtime.GOARCH})
	if err != nil {
		return err
	}
	ref, err := name.ParseReference(*image, name.Insecure)
	if err != nil {
		return err
	}
	return remote.Write(ref, img)
}

func reset(args []string) error {
	fs := flag.NewFlagSet("reset", flag.ExitOnError)
	socket := fs.String("socket", "", "the containerd CRI socket")
	_ = fs.Parse(args)
	if *socket == "" {
		return fmt.Errorf("reset needs --socket")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+*socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("listing pod sandboxes on %s: %w", *socket, err)
	}
	for _, sb := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return fmt.Errorf("stopping pod sandbox %s (%s/%s): %w", sb.Id, sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err)
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			return fmt.Errorf("removing pod sandbox %s: %w", sb.Id, err)
		}
	}
	fmt.Printf("real-node: removed %d pod sandboxes\n", len(list.Items))
	return nil
}

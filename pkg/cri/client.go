// Package cri is a small client for the CRI ImageService of a node's container
// runtime (containerd, CRI-O), over its unix socket.
package cri

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// DefaultTimeout bounds each call unless the context is shorter.
const DefaultTimeout = 2 * time.Minute

// Well-known runtime sockets, by the runtime name a node reports in
// status.nodeInfo.containerRuntimeVersion ("containerd://1.7.2").
var runtimeSockets = map[string]string{
	"containerd": "/run/containerd/containerd.sock",
	"cri-o":      "/var/run/crio/crio.sock",
}

// k3sContainerdSocket is the socket of the containerd k3s and RKE2 run.
const k3sContainerdSocket = "/run/k3s/containerd/containerd.sock"

// SocketForRuntime returns the default CRI socket of a runtime, from a node's
// containerRuntimeVersion, or an error that names the runtime.
func SocketForRuntime(runtimeVersion string) (string, error) {
	name, version, _ := strings.Cut(runtimeVersion, "://")
	if name == "containerd" && strings.Contains(version, "-k3s") {
		// k3s and RKE2 embed a containerd of their own ("1.7.23-k3s2"),
		// which listens under /run/k3s.
		return k3sContainerdSocket, nil
	}
	if sock, ok := runtimeSockets[name]; ok {
		return sock, nil
	}
	if runtimeVersion == "" {
		return "", errors.New("the node reports no container runtime; set --cri-socket-path")
	}
	return "", fmt.Errorf("unknown container runtime %q: only containerd and cri-o have a known socket; set --cri-socket-path", runtimeVersion)
}

// Client talks to one runtime socket.
type Client struct {
	socket  string
	conn    *grpc.ClientConn
	images  runtimeapi.ImageServiceClient
	timeout time.Duration
	runtime string
}

// Dial connects to the runtime's socket (a path, or unix:///path) and checks
// that it answers.
func Dial(ctx context.Context, socket string) (*Client, error) {
	path := strings.TrimPrefix(socket, "unix://")
	conn, err := grpc.NewClient("unix://"+path, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("CRI socket %s: %w", path, err)
	}
	c := &Client{socket: path, conn: conn, images: runtimeapi.NewImageServiceClient(conn), timeout: DefaultTimeout}
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, err := runtimeapi.NewRuntimeServiceClient(conn).Version(vctx, &runtimeapi.VersionRequest{})
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("CRI socket %s does not answer: %w", path, err)
	}
	c.runtime = v.RuntimeName + "://" + v.RuntimeVersion
	return c, nil
}

// Runtime is the runtime's name and version as the kubelet reports it in
// a node's containerRuntimeVersion ("containerd://2.1.4").
func (c *Client) Runtime() string { return c.runtime }

// Conn is the connection to the socket, which also serves the runtime's
// own API where the runtime is containerd.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// ImageStatus returns the image, or nil when the runtime does not have it.
func (c *Client) ImageStatus(ctx context.Context, image string) (*runtimeapi.Image, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.images.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return nil, fmt.Errorf("image status of %s via %s: %w", image, c.socket, err)
	}
	return resp.GetImage(), nil
}

// ListImages lists the runtime's images.
func (c *Client) ListImages(ctx context.Context) ([]*runtimeapi.Image, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing images via %s: %w", c.socket, err)
	}
	return resp.GetImages(), nil
}

// PullImage pulls an image and returns its reference.
func (c *Client) PullImage(ctx context.Context, image string) (string, error) {
	ctx, cancel := c.ctx(ctx)
	defer cancel()
	resp, err := c.images.PullImage(ctx, &runtimeapi.PullImageRequest{Image: &runtimeapi.ImageSpec{Image: image}})
	if err != nil {
		return "", fmt.Errorf("pulling %s via %s: %w", image, c.socket, err)
	}
	return resp.GetImageRef(), nil
}

// Outcome is what happened to one image asked to be removed.
type Outcome string

const (
	Removed       Outcome = "removed"
	AlreadyAbsent Outcome = "already absent"
	Failed        Outcome = "failed"
	// Kept: the image is also known under a name that must stay (the
	// runtime removes an image, not a name).
	Kept Outcome = "kept"

	// The outcomes of a pin or an unpin (AlreadyAbsent and Failed too).
	// Pinned: the image is pinned for the cache. Unpinned: the cache's
	// pin is gone (the image may stay pinned for another).
	Pinned   Outcome = "pinned"
	Unpinned Outcome = "unpinned"
	// OverBudget: pinning the image would take the node's pinned images
	// past the disk budget; it stays, unpinned.
	OverBudget Outcome = "over budget"
	// Unsupported: the runtime cannot pin images (not containerd, or a
	// containerd whose CRI does not report pins).
	Unsupported Outcome = "unsupported"
)

// Remove removes an image if the runtime has it. It says whether the image
// was removed or already absent; an error means it failed.
func (c *Client) Remove(ctx context.Context, image string) (Outcome, error) {
	img, err := c.ImageStatus(ctx, image)
	if err != nil {
		return Failed, err
	}
	if img == nil {
		return AlreadyAbsent, nil
	}
	rctx, cancel := c.ctx(ctx)
	defer cancel()
	if _, err := c.images.RemoveImage(rctx, &runtimeapi.RemoveImageRequest{Image: &runtimeapi.ImageSpec{Image: image}}); err != nil {
		if status.Code(err) == codes.NotFound {
			return AlreadyAbsent, nil
		}
		return Failed, fmt.Errorf("removing %s via %s: %w", image, c.socket, err)
	}
	return Removed, nil
}

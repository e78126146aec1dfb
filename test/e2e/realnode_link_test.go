//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/test/framework"
)

// startLinkRegistry starts a registry across the shaped link (in its
// network namespace), with its storage in dir, and stops it, by PID, when
// the test ends. With a delay, the node reaches it through a delay proxy in
// the namespace (the kernel here has no netem to add latency to the link):
// every chunk waits the delay each way, so a request's round trip takes
// twice the delay more, as across a WAN.
func (rn *realNode) startLinkRegistry(t *testing.T, dir string, delay time.Duration) {
	t.Helper()
	if rn.linkRegistry == "" || rn.linkNetns == "" || rn.linkDev == "" {
		t.Fatal("the real node's env file names no shaped link: bring it up again with hack/real-node-up.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	listen := rn.linkRegistry
	if delay > 0 {
		_, port, _ := strings.Cut(rn.linkRegistry, ":")
		listen = "127.0.0.1:" + port // the namespace's own loopback
		p, err := framework.StartDelayProxyIn(ctx, rn.linkNetns, rn.linkRegistry, listen, delay, dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Stop)
	}
	r, err := framework.StartRegistryIn(ctx, rn.linkNetns, listen, rn.linkRegistry, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
}

// linkDelay is the latency each way of the shaped link's registry: with
// the rate, what a registry across a WAN has (100 Mbit/s and 20 ms is the
// kind of link an edge cluster has to its registry).
const linkDelay = 20 * time.Millisecond

// shapeLink limits what the registry across the link sends to rate (tc
// tbf, as "64mbit"), until the test ends.
func (rn *realNode) shapeLink(t *testing.T, rate string) {
	t.Helper()
	tc := func(args ...string) error {
		out, err := exec.Command("ip", append([]string{"netns", "exec", rn.linkNetns, "tc", "qdisc"}, args...)...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("tc qdisc %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := tc("replace", "dev", rn.linkDev, "root", "tbf", "rate", rate, "burst", "256kb", "latency", "1s"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tc("del", "dev", rn.linkDev, "root"); err != nil {
			t.Error(err)
		}
	})
}

// TestRealNodeLargeImageOverASlowLink: a 1 GiB image, in one pull Job with
// 9 small images, from a registry behind a link shaped to 8 MB/s, under a
// pull deadline of 2 minutes. Its entry's pullDeadline (10m) fits it, and
// counts from when the kubelet starts pulling it, so it is not failed while
// its download goes on, past the 2 minutes: the cache Succeeds, with the
// one Job, no failure and no retry.
func TestRealNodeLargeImageOverASlowLink(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-slow-link")
	rn.startLinkRegistry(t, t.TempDir(), linkDelay)
	big := rn.linkRegistry + "/e2e/large:1g"
	img, err := framework.LargeImage(1024, 28)
	if err != nil {
		t.Fatal(err)
	}
	if err := framework.PushImage(img, big, "", ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rn.removeFromNode(t, big) })
	var small []string
	for i := range 9 {
		small = append(small, rn.image(t, "shell", fmt.Sprintf("e2e/slow-link-%d:v1", i), false))
	}
	const rate, deadline = "64mbit", 2 * time.Minute
	rn.shapeLink(t, rate)

	rn.controller(t, "--image-pull-deadline-duration="+deadline.String())
	jw := watchJobs(t, ns)
	start := time.Now()
	applyCache(t, ns, imageList(small...)+onRealNode(rn)+imageList(big)+onRealNode(rn)+"    pullDeadline: 10m\n")
	ic := waitIC(t, ns, "app", 10*time.Minute, "the cache to end", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Status == v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Status == v1alpha2.ImageCacheActionStatusFailed
	})
	took := time.Since(start)
	size := rn.size(t, big)
	t.Logf("%s in %v: %s; %d bytes over a %s link with %v each way: %.1f MB/s", ic.Status.Status, took.Round(time.Second),
		ic.Status.Message, size, rate, linkDelay, float64(size)/took.Seconds()/1e6)
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || len(ic.Status.Failures) != 0 {
		t.Fatalf("the cache %s: %s; failures %+v", ic.Status.Status, ic.Status.Message, ic.Status.Failures)
	}
	if p := ic.Status.Pulls; p.AlreadyPresent != 0 {
		t.Errorf("pulls %+v: the images the Job pulled are counted already present", p)
	}
	if took < deadline {
		t.Errorf("the pulls took %v, less than the %v pull deadline: the link is not slow enough to show anything", took.Round(time.Second), deadline)
	}
	p := pairs(t, jw)
	if p[rn.name+" "+big] != 1 || jw.Count() != 1 {
		t.Errorf("Jobs: %d, pulling %v; want one, which pulled the large image once (no retry)", jw.Count(), p)
	}
	if !rn.present(t, big) {
		t.Errorf("%s is not in the node's containerd", big)
	}
}

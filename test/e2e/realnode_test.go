//go:build e2e

package e2e

// The real-node tests: a kubelet over containerd (hack/real-node-up.sh),
// pulling test images from local registries, with the project's own helper
// and CRI remover images in the pull and delete Jobs. hack/e2e.sh runs
// them after the kwok tests, once the real node is up; where the machine
// cannot run a kubelet they are skipped with the reason the script gave.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cri"
	"kubefledged.io/kube-fledged/pkg/images"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/test/framework"
)

// realNode is what hack/real-node-up.sh wrote to its env file.
type realNode struct {
	name, registry, authRegistry, user, password, socket string
	// The project's images in the node's registry: the helper the pull
	// Jobs install, the CRI remover the delete Jobs run, the controller.
	helperImage, criImage, controllerImage string
	// testRegistry is an address the node pulls from over plain HTTP, where
	// no registry runs but the one a test starts (startTestRegistry);
	// linkRegistry is one across the shaped link: an address in the
	// network namespace linkNetns, whose end of the veth pair is linkDev.
	testRegistry, linkRegistry, linkNetns, linkDev string
	// user2 and password2 are the auth registry's other credentials.
	user2, password2 string
	// kubeletScript restarts the node's kubelet (hack/real-node-kubelet.sh);
	// localDir is the local cluster's folder it works in.
	kubeletScript, localDir string
	// inCluster: kube-proxy runs on the node, so its pods reach the API server.
	inCluster bool
	// containerdRoot is the node's containerd's root folder (the pin
	// budget's filesystem); pauseImage its sandbox image, which containerd
	// pins itself.
	containerdRoot, pauseImage string
}

var (
	realNodeOnce sync.Once
	theRealNode  *realNode
	realNodeErr  error
	testImages   map[string]v1.Image
)

// needRealNode returns the real node, or skips the test with the reason
// there is none.
func needRealNode(t *testing.T) *realNode {
	t.Helper()
	envFile := os.Getenv("KUBE_FLEDGED_REAL_NODE_ENV")
	if envFile == "" {
		t.Skip("no real node: run the suite with `make e2e` (hack/e2e.sh brings one up)")
	}
	if _, err := os.Stat(envFile); err != nil {
		reason := "hack/real-node-up.sh did not start one"
		if b, err := os.ReadFile(os.Getenv("KUBE_FLEDGED_REAL_NODE_SKIP")); err == nil {
			reason = strings.TrimSpace(string(b))
		}
		t.Skip("no real node: " + reason)
	}
	realNodeOnce.Do(func() { theRealNode, realNodeErr = loadRealNode(envFile) })
	if realNodeErr != nil {
		t.Fatal(realNodeErr)
	}
	return theRealNode
}

func loadRealNode(envFile string) (*realNode, error) {
	data, err := os.ReadFile(envFile)
	if err != nil {
		return nil, err
	}
	kv := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			kv[k] = v
		}
	}
	rn := &realNode{name: kv["REAL_NODE_NAME"], registry: kv["REAL_NODE_REGISTRY"], authRegistry: kv["REAL_NODE_AUTH_REGISTRY"],
		user: kv["REAL_NODE_AUTH_USER"], password: kv["REAL_NODE_AUTH_PASSWORD"], socket: kv["REAL_NODE_CRI_SOCKET"],
		helperImage: kv["REAL_NODE_HELPER_IMAGE"], criImage: kv["REAL_NODE_CRI_IMAGE"], controllerImage: kv["REAL_NODE_CONTROLLER_IMAGE"],
		inCluster: kv["REAL_NODE_IN_CLUSTER"] == "1",
		user2:     kv["REAL_NODE_AUTH_USER2"], password2: kv["REAL_NODE_AUTH_PASSWORD2"],
		kubeletScript: kv["REAL_NODE_KUBELET_SCRIPT"], localDir: filepath.Dir(envFile), testRegistry: kv["REAL_NODE_TEST_REGISTRY"],
		linkRegistry: kv["REAL_NODE_LINK_REGISTRY"], linkNetns: kv["REAL_NODE_LINK_NETNS"], linkDev: kv["REAL_NODE_LINK_DEV"],
		containerdRoot: kv["REAL_NODE_CONTAINERD_ROOT"], pauseImage: kv["REAL_NODE_PAUSE_IMAGE"]}
	if rn.name == "" || rn.registry == "" || rn.socket == "" || rn.helperImage == "" || rn.criImage == "" || rn.controllerImage == "" {
		return nil, fmt.Errorf("%s is incomplete:\n%s", envFile, data)
	}
	testImages = map[string]v1.Image{}
	for kind, build := range map[string]func() (v1.Image, error){
		"shell":   framework.ShellImage,
		"noshell": framework.NoShellImage,
		"large":   func() (v1.Image, error) { return framework.LargeImage(40, 1) },
	} {
		if testImages[kind], err = build(); err != nil {
			return nil, fmt.Errorf("building the %s test image: %w", kind, err)
		}
	}
	return rn, nil
}

// image pushes a test image (shell, noshell or large) under a repository and
// tag of the plain registry, or of the auth registry when private, and
// returns its reference.
func (rn *realNode) image(t *testing.T, kind, repoTag string, private bool) string {
	t.Helper()
	ref, user, password := rn.registry+"/"+repoTag, "", ""
	if private {
		ref, user, password = rn.authRegistry+"/"+repoTag, rn.user, rn.password
	}
	// A label of its own gives each reference its own image ID: the kubelet
	// lists at most five names per image in node.status.images.
	img, err := framework.WithLabel(testImages[kind], "kubefledged.io/e2e-ref", ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := framework.PushImage(img, ref, user, password); err != nil {
		t.Fatal(err)
	}
	return ref
}

// pullSecret creates a dockerconfigjson Secret for the auth registry.
func (rn *realNode) pullSecret(t *testing.T, ns, name, password string) {
	t.Helper()
	rn.pullSecretOf(t, ns, name, rn.user, password)
}

// pullSecretOf creates a dockerconfigjson Secret for the auth registry,
// with these credentials.
func (rn *realNode) pullSecretOf(t *testing.T, ns, name, user, password string) {
	t.Helper()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{rn.authRegistry: map[string]string{"auth": auth}}})
	_, err := kubeClient.CoreV1().Secrets(ns).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
}

// controller runs fledged with the project's helper and CRI remover images,
// the node's containerd socket for the delete Jobs, the node's limit of
// listed images (hack/real-node-up.sh: it lists them all), and its Jobs
// tolerating the startup taint the node registers with (the tests that
// pass --node-startup-taint have the controller remove it).
func (rn *realNode) controller(t *testing.T, args ...string) *controllerProc {
	t.Helper()
	return startController(t, append([]string{"--helper-image=" + rn.helperImage, "--cri-image=" + rn.criImage, "--cri-socket-path=" + rn.socket,
		"--image-pull-deadline-duration=20s", "--node-status-max-images=-1", "--job-tolerations=" + warmingTaint + ":NoSchedule"},
		args...)...)
}

// restartKubelet starts the node's kubelet again, with these lines added to
// its configuration (none: as hack/real-node-up.sh configured it), and
// waits for its node to be registered and Ready.
func (rn *realNode) restartKubelet(t *testing.T, config ...string) {
	t.Helper()
	if rn.kubeletScript == "" {
		t.Fatal("the real node's env file names no kubelet script: bring it up again with hack/real-node-up.sh")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{rn.kubeletScript, "restart"}, config...)...)
	cmd.Env = append(os.Environ(), "LOCAL_DIR="+rn.localDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restarting the kubelet: %v\n%s", err, out)
	}
}

// imageStatus is the node's containerd's status of the image (nil when it
// does not have it), through the project's CRI client.
func (rn *realNode) imageStatus(t *testing.T, image string) *runtimeapi.Image {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cri.Dial(ctx, rn.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	img, err := c.ImageStatus(ctx, image)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// present says whether the node's containerd has the image.
func (rn *realNode) present(t *testing.T, image string) bool {
	t.Helper()
	return rn.imageStatus(t, image) != nil
}

// size is the image's size as the node's containerd reports it through
// CRI, which the kubelet reports in its Pulled event.
func (rn *realNode) size(t *testing.T, image string) uint64 {
	t.Helper()
	img := rn.imageStatus(t, image)
	if img == nil {
		t.Fatalf("%s is not on the node", image)
	}
	return img.GetSize()
}

// reported says whether node.status.images lists the image.
func (rn *realNode) reported(t *testing.T, image string) bool {
	t.Helper()
	want, err := images.Normalize(image)
	if err != nil {
		t.Fatal(err)
	}
	node, err := kubeClient.CoreV1().Nodes().Get(context.Background(), rn.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range node.Status.Images {
		for _, n := range ci.Names {
			if k, err := images.Normalize(n); err == nil && k == want {
				return true
			}
		}
	}
	return false
}

func onRealNode(rn *realNode) string {
	return "    nodeSelector: {kubernetes.io/hostname: " + rn.name + "}\n"
}

func imageList(imgs ...string) string {
	return "  - images: [" + strings.Join(imgs, ", ") + "]\n"
}

// TestRealNodeCachesImages: four images (one private, with a pull secret) on
// the real node and two kwok nodes reach Succeeded; the node's containerd
// has each of them, and node.status.images lists them.
func TestRealNodeCachesImages(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-cache")
	imgs := []string{
		rn.image(t, "shell", "e2e/shell:v1", false),
		rn.image(t, "noshell", "e2e/noshell:v1", false),
		rn.image(t, "large", "e2e/large:v1", false),
		rn.image(t, "shell", "e2e/private:v1", true),
	}
	for _, img := range imgs {
		if rn.present(t, img) {
			t.Fatalf("%s is on the node before the test", img)
		}
	}
	rn.pullSecret(t, ns, "registry-auth", rn.password)
	addNodes(t, []string{"real-peer-0", "real-peer-1"}, map[string]string{"kubefledged.io/e2e-peer": "real"})
	rn.controller(t)
	jw := watchJobs(t, ns)
	applyCacheSpec(t, ns, "  imagePullSecrets: [{name: registry-auth}]\n  cacheSpec:\n"+
		imageList(imgs...)+onRealNode(rn)+
		imageList(imgs...)+"    nodeSelector: {kubefledged.io/e2e-peer: real}\n")
	start := time.Now()
	ic := waitIC(t, ns, "app", 3*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	t.Logf("Succeeded in %v: %s", time.Since(start).Round(100*time.Millisecond), ic.Status.Message)
	if p := ic.Status.Pulls; p.Succeeded != 12 || p.AlreadyPresent != 0 || p.Failed != 0 || ic.Status.NodesMatched != 3 {
		t.Errorf("pulls %+v on %d nodes, want 12 pulled on 3 nodes", p, ic.Status.NodesMatched)
	}
	got := pairs(t, jw)
	for _, img := range imgs {
		if got[rn.name+" "+img] != 1 {
			t.Errorf("%s asked of the real node by %d Jobs, want 1", img, got[rn.name+" "+img])
		}
		if !rn.present(t, img) {
			t.Errorf("%s is not in the node's containerd", img)
		}
	}
	// The kubelet re-lists images every ~30 s or so.
	waitFor(t, 90*time.Second, "node.status.images to list the four images", func() bool {
		for _, img := range imgs {
			if !rn.reported(t, img) {
				return false
			}
		}
		return true
	})
}

// TestRealNodeRestrictedNamespace: in a namespace that enforces Pod Security
// "restricted", an image whose own USER is root is cached on the real node:
// the pull pod runs it as the project's fixed non-root user.
func TestRealNodeRestrictedNamespace(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-restricted", restricted)
	root, err := framework.WithUser(testImages["shell"], "root")
	if err != nil {
		t.Fatal(err)
	}
	img := rn.registry + "/e2e/root-user:v1"
	if err := framework.PushImage(root, img, "", ""); err != nil {
		t.Fatal(err)
	}
	rn.controller(t)
	ic := applyAndTime(t, ns, imageList(img)+onRealNode(rn), v1alpha2.ImageCacheActionStatusSucceeded)
	if want := "Pulled 1 of 1 images on 1 node"; ic.Status.Message != want {
		t.Errorf("message %q, want %q", ic.Status.Message, want)
	}
	if !rn.present(t, img) {
		t.Errorf("%s is not in the node's containerd", img)
	}
}

// TestRealNodeNoShellImage: an image with no shell and no /bin is cached:
// its container runs the project's helper, installed by the init container.
func TestRealNodeNoShellImage(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-noshell")
	img := rn.image(t, "noshell", "e2e/distroless:v1", false)
	rn.controller(t, "--job-retention-policy=retain")
	applyCache(t, ns, imageList(img)+onRealNode(rn))
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if !rn.present(t, img) {
		t.Fatalf("%s is not in the node's containerd", img)
	}
	pods, err := kubeClient.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(pods.Items) != 1 {
		t.Fatalf("want the one retained pull pod, got %d (%v)", len(pods.Items), err)
	}
	pod := pods.Items[0]
	if pod.Spec.NodeName != rn.name {
		t.Errorf("the pull pod ran on %q, want %s", pod.Spec.NodeName, rn.name)
	}
	var st *corev1.ContainerStatus
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == puller.ContainerName(0) {
			st = &pod.Status.ContainerStatuses[i]
		}
	}
	if st == nil || st.State.Terminated == nil || st.State.Terminated.ExitCode != 0 {
		t.Fatalf("the image's container did not end with exit code 0: %+v", st)
	}
	// Its log, read from the kubelet through the API server, is the helper's.
	logs := kubectl(t, "logs", "-n", ns, pod.Name, "-c", puller.ContainerName(0))
	if !strings.Contains(logs, "kube-fledged: image "+img+" is cached on this node") {
		t.Errorf("the container's log is not the helper's: %q", logs)
	}
}

// TestRealNodePullFailures: a missing tag and an unknown repository fail
// with ImageNotFound and the kubelet's real message as soon as the kubelet
// says so, under the default deadlines (5m a pull), while the good image of
// the same batch is cached.
func TestRealNodePullFailures(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-fail")
	good := rn.image(t, "shell", "e2e/shell:batch", false)
	missingTag := rn.registry + "/e2e/shell:no-such-tag"
	unknownRepo := rn.registry + "/e2e/no-such-repository:v1"
	rn.controller(t, "--image-pull-deadline-duration=5m", "--job-start-deadline=2m")
	start := time.Now()
	applyCache(t, ns, imageList(good, missingTag, unknownRepo)+onRealNode(rn))
	ic := waitIC(t, ns, "app", 3*time.Minute, "Failed", done(v1alpha2.ImageCacheActionStatusFailed))
	took := time.Since(start)
	t.Logf("Failed in %v: %s", took.Round(100*time.Millisecond), ic.Status.Message)
	if took > 30*time.Second {
		t.Errorf("the cache failed after %v, want within 30s of its creation", took.Round(time.Second))
	}
	if p := ic.Status.Pulls; p.Succeeded != 1 || p.Failed != 2 {
		t.Errorf("pulls %+v, want 1 succeeded and 2 failed", p)
	}
	if !rn.present(t, good) {
		t.Errorf("%s, the good image of the batch, is not in the node's containerd", good)
	}
	notFound := regexp.MustCompile(`(?s)not found`)
	for _, img := range []string{missingTag, unknownRepo} {
		fs := ic.Status.Failures[img]
		if len(fs) != 1 || fs[0].Node != rn.name {
			t.Errorf("failures for %s: %+v, want one on %s", img, fs, rn.name)
			continue
		}
		if fs[0].Reason != puller.ReasonImageNotFound || !notFound.MatchString(fs[0].Message) {
			t.Errorf("failure for %s: %s %q, want ImageNotFound with the kubelet's ... not found", img, fs[0].Reason, fs[0].Message)
		}
		t.Logf("%s: %s: %s", img, fs[0].Reason, fs[0].Message)
	}
}

// TestRealNodeWrongPullSecret: a pull secret with the wrong password fails
// the private image with Unauthorized and the kubelet's message as soon as
// the kubelet says so, under the default deadlines.
func TestRealNodeWrongPullSecret(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-auth")
	img := rn.image(t, "shell", "e2e/private:wrong-secret", true)
	rn.pullSecret(t, ns, "registry-auth", "not-the-password")
	rn.controller(t, "--image-pull-deadline-duration=5m", "--job-start-deadline=2m")
	start := time.Now()
	applyCacheSpec(t, ns, "  imagePullSecrets: [{name: registry-auth}]\n  cacheSpec:\n"+imageList(img)+onRealNode(rn))
	ic := waitIC(t, ns, "app", 3*time.Minute, "Failed", done(v1alpha2.ImageCacheActionStatusFailed))
	took := time.Since(start)
	if took > 30*time.Second {
		t.Errorf("the cache failed after %v, want within 30s of its creation", took.Round(time.Second))
	}
	fs := ic.Status.Failures[img]
	if len(fs) != 1 || fs[0].Node != rn.name {
		t.Fatalf("failures for %s: %+v, want one on %s", img, fs, rn.name)
	}
	if fs[0].Reason != puller.ReasonUnauthorized {
		t.Errorf("failure reason %s, want %s", fs[0].Reason, puller.ReasonUnauthorized)
	}
	t.Logf("Failed in %v", took.Round(100*time.Millisecond))
	if !regexp.MustCompile(`(?i)unauthori[sz]ed|401|authoriz|denied`).MatchString(fs[0].Message) {
		t.Errorf("failure %s %q does not speak of authorization", fs[0].Reason, fs[0].Message)
	}
	t.Logf("%s: %s: %s", img, fs[0].Reason, fs[0].Message)
	if rn.present(t, img) {
		t.Errorf("%s is on the node although its pull secret is wrong", img)
	}
}

// TestRealNodePurge: the purge annotation removes the cache's images from the
// node's containerd, with the project's CRI remover in delete Jobs.
func TestRealNodePurge(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-purge")
	imgs := []string{rn.image(t, "shell", "e2e/purge-shell:v1", false), rn.image(t, "large", "e2e/purge-large:v1", false)}
	rn.controller(t)
	applyCache(t, ns, imageList(imgs...)+onRealNode(rn))
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	for _, img := range imgs {
		if !rn.present(t, img) {
			t.Fatalf("%s is not on the node before the purge", img)
		}
	}
	ic := annotateAndWait(t, ns, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	t.Logf("purge: %s", ic.Status.Message)
	for _, img := range imgs {
		if rn.present(t, img) {
			t.Errorf("%s is still in the node's containerd after the purge", img)
		}
	}
}

// TestRealNodePurgeRestrictedNamespace: a purge of a cache in a namespace
// that enforces Pod Security "restricted" succeeds: its delete Jobs, root
// pods with the node's CRI socket, run in the controller's namespace, and no
// pod of theirs ever shows in the cache's namespace.
func TestRealNodePurgeRestrictedNamespace(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-purge-restricted", restricted)
	img := rn.image(t, "shell", "e2e/purge-restricted:v1", false)
	rn.controller(t)
	inCacheNS, inControllerNS := watchJobs(t, ns), watchJobs(t, sampleNS)
	podsInCacheNS := watchPods(t, ns)
	applyCache(t, ns, imageList(img)+onRealNode(rn))
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	ic := annotateAndWait(t, ns, "app", v1alpha2.AnnotationPurge, v1alpha2.ImageCacheReasonPurge)
	if ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || ic.Status.Message != "Removed 1 of 1 images on 1 node" {
		t.Errorf("purge: %s %q, failures %v", ic.Status.Status, ic.Status.Message, ic.Status.Failures)
	}
	if rn.present(t, img) {
		t.Errorf("%s is still in the node's containerd after the purge", img)
	}
	deletes := 0
	for _, j := range inControllerNS.Jobs() {
		if puller.IsDeleteJob(&j) && j.Annotations[puller.AnnotationCacheNamespace] == ns {
			deletes++
		}
	}
	if deletes != 1 {
		t.Errorf("%d delete Jobs of the cache in the controller's namespace %s, want 1", deletes, sampleNS)
	}
	for _, j := range inCacheNS.Jobs() {
		if puller.IsDeleteJob(&j) {
			t.Errorf("a delete Job in the cache's namespace: %s", j.Name)
		}
	}
	for _, p := range podsInCacheNS.pods() {
		if p.component == puller.ComponentDelete {
			t.Errorf("a delete pod showed in the cache's namespace: %s", p.name)
		}
	}
	t.Logf("purge: %s; %d delete Job in %s, pods seen in %s: %d (pull pods)", ic.Status.Message, deletes, sampleNS, ns,
		len(podsInCacheNS.pods()))
}

// TestRealNodeRefreshAlreadyPresent: with --image-pull-policy=IfNotPresent, a
// refresh on a node whose status lists the images creates no pull Job for it:
// the pairs are counted as already present.
func TestRealNodeRefreshAlreadyPresent(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-refresh")
	imgs := []string{rn.image(t, "shell", "e2e/refresh-shell:v1", false), rn.image(t, "noshell", "e2e/refresh-noshell:v1", false)}
	rn.controller(t, "--image-pull-policy=IfNotPresent")
	jw := watchJobs(t, ns)
	applyCache(t, ns, imageList(imgs...)+onRealNode(rn))
	waitIC(t, ns, "app", 2*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if jw.Count() != 1 {
		t.Fatalf("%d Jobs for the first pull, want 1", jw.Count())
	}
	waitFor(t, 90*time.Second, "node.status.images to list the images", func() bool {
		return rn.reported(t, imgs[0]) && rn.reported(t, imgs[1])
	})
	jw.Reset()
	ic := annotateAndWait(t, ns, "app", v1alpha2.AnnotationRefresh, v1alpha2.ImageCacheReasonRefresh)
	if p := ic.Status.Pulls; p.Succeeded != 2 || p.AlreadyPresent != 2 {
		t.Errorf("refresh pulls %+v, want both already present", p)
	}
	if jw.Count() != 0 {
		t.Errorf("the refresh created %d pull Jobs for a node that has the images, want 0", jw.Count())
	}
}

// TestRealNodeHelperImageUnpullable: the helper image is not in the
// registry, so the pull pod's init container waits in ErrImagePull. At the
// start deadline the pulls fail with the kubelet's reason, not after the
// pull deadline with DeadlineExceeded, and the slots come back; a helper
// image the registry lacks is not tried again.
func TestRealNodeHelperImageUnpullable(t *testing.T) {
	rn := needRealNode(t)
	ns := newNamespace(t, "real-nohelper")
	img := rn.image(t, "shell", "e2e/shell:nohelper", false)
	p := rn.controller(t, "--helper-image="+rn.registry+"/e2e/no-such-helper:v1", "--job-start-deadline="+startDeadline,
		"--image-pull-deadline-duration=5m")
	ic := applyAndTime(t, ns, imageList(img)+onRealNode(rn), v1alpha2.ImageCacheActionStatusFailed)
	assertNeverStarted(t, p, ic, []string{"ErrImagePull", "ImagePullBackOff"}, "container install-helper (image "+rn.registry+"/e2e/no-such-helper:v1)")
}

// TestRealNodeStartupTaint: the real node registered with the startup taint
// (hack/real-node-up.sh: kubelet --register-with-taints; registered again
// if an earlier test had it released). A pod of a large
// image waits, unscheduled, until the controller has cached the image and
// removed the taint; then it starts without pulling. A pod of another large
// image, on the node once released, pulls: the two times from scheduled to
// started are the user's gain.
func TestRealNodeStartupTaint(t *testing.T) {
	rn := needRealNode(t)
	node, err := kubeClient.CoreV1().Nodes().Get(context.Background(), rn.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !hasTaint(node) {
		// An earlier test had it released: it joins again, with the taint.
		rn.leave(t)
		rn.join(t)
	}
	ns := newNamespace(t, "real-warm")
	push := func(tag string, seed uint64) string {
		img, err := framework.LargeShellImage(120, seed)
		if err != nil {
			t.Fatal(err)
		}
		ref := rn.registry + "/e2e/big:" + tag
		if err := framework.PushImage(img, ref, "", ""); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	warm, cold := push("warm", 7), push("cold", 8)
	rel := watchReleases(t, "kubernetes.io/hostname="+rn.name)
	warmPod := watchPodStart(t, ns, "warm", warm, rn.name, false)
	waitFor(t, 30*time.Second, "the pod to wait for the tainted node", func() bool {
		pod, err := kubeClient.CoreV1().Pods(ns).Get(context.Background(), "warm", metav1.GetOptions{})
		return err == nil && podScheduled(pod) == nil && pod.Spec.NodeName == "" && unschedulable(pod)
	})

	// The cache exists before the controller looks at the node, as it
	// would before an autoscaler adds one: a node no cache matches is
	// released at once.
	applyCache(t, ns, imageList(warm)+onRealNode(rn))
	rn.controller(t, "--node-startup-taint="+warmingTaint)
	warmGap := warmPod.wait(t, 3*time.Minute).started()
	released, ok := rel.get(rn.name)
	if !ok {
		t.Fatal("the pod started, but the node's release was not seen")
	}
	pod, _ := kubeClient.CoreV1().Pods(ns).Get(context.Background(), "warm", metav1.GetOptions{})
	if at := podScheduled(pod); at == nil || at.Before(released.Add(-time.Second)) {
		t.Errorf("the pod was scheduled at %v, before the node's release at %v", at, released)
	}
	if msg := pulledEvent(t, ns, "warm"); !strings.Contains(msg, "already present on machine") {
		t.Errorf("the cached pod's Pulled event: %q, want the image already present", msg)
	}

	coldGap := watchPodStart(t, ns, "cold", cold, rn.name, false).wait(t, 3*time.Minute).started()
	if msg := pulledEvent(t, ns, "cold"); !strings.Contains(msg, "Successfully pulled") {
		t.Errorf("the cold pod's Pulled event: %q, want a pull", msg)
	}
	t.Logf("120 MiB image, scheduled to started: %v cached, %v cold", warmGap, coldGap)
}

func podScheduled(pod *corev1.Pod) *time.Time {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue {
			return &c.LastTransitionTime.Time
		}
	}
	return nil
}

func unschedulable(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return true
		}
	}
	return false
}

// pulledEvent returns the message of the kubelet's Pulled event for a pod.
func pulledEvent(t *testing.T, ns, pod string) string {
	t.Helper()
	var msg string
	waitFor(t, 30*time.Second, "the Pulled event of "+pod, func() bool {
		events, err := kubeClient.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + pod + ",reason=Pulled"})
		if err != nil || len(events.Items) == 0 {
			return false
		}
		msg = events.Items[0].Message
		return true
	})
	return msg
}

//go:build e2e

package e2e

// A release as operators get it: make release pushes the three images to
// the real node's registry and writes the chart and kube-fledged.yaml;
// the manifest installs the controller on the real node, a cache goes to
// Succeeded, and applying a newer release's manifest over it, with caches
// in flight, rolls the controller without losing a status or pulling a
// pair twice.

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/test/framework"
)

// checkout makes a tree of the project at a commit, removed when the test
// ends.
func checkout(t *testing.T, commit string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	remove, err := framework.Checkout(projectRoot, commit, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(remove)
	return dir
}

// release runs make release's script of the tree at root for a version,
// pushing to the real node's registry, into out; it returns the images it
// pushed (controller, helper, CRI, by tag and digest).
func release(t *testing.T, rn *realNode, root, version, out string) []string {
	t.Helper()
	cmd := exec.Command("bash", "hack/release.sh")
	cmd.Dir = root
	// The tree under test may hold uncommitted changes; the digests then
	// follow them, the same for each run.
	cmd.Env = append(os.Environ(), "VERSION="+version, "REGISTRY="+rn.registry, "RELEASE_OUT="+out,
		"RELEASE_ALLOW_DIRTY=1", "PLATFORMS=linux/amd64,linux/arm64",
		"PLUGIN_PLATFORMS=linux/amd64,linux/arm64", "PLUGIN_URL=https://downloads.example/"+version)
	start := time.Now()
	stdout, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("make release VERSION=%s: %v\n%s%s", version, err, stdout, stderr)
	}
	refs := strings.Fields(string(stdout))
	if len(refs) != 3 {
		t.Fatalf("make release VERSION=%s printed %q, want three images", version, stdout)
	}
	t.Logf("make release VERSION=%s in %v: %s", version, time.Since(start).Round(100*time.Millisecond), strings.Join(refs, " "))
	return refs
}

// installRelease applies a release's kube-fledged.yaml as an operator would
// with an overlay of their own: kustomize over the manifest, here keeping
// the controller on the real node and its Jobs tolerating the node's
// startup taint.
func installRelease(t *testing.T, rn *realNode, manifest string) {
	t.Helper()
	dir := t.TempDir()
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"kube-fledged.yaml": string(raw),
		"kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [kube-fledged.yaml]
patches:
- path: patch.yaml
`,
		"patch.yaml": fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: kube-fledged, namespace: kube-fledged}
spec:
  template:
    spec:
      nodeSelector: {%s: %s}
      tolerations:
      - {key: %s, operator: Exists, effect: NoSchedule}
      containers:
      - name: fledged
        args: [--leader-elect, --metrics-bind-address=:8080, --health-probe-bind-address=:8081, --v=2,
          "--job-tolerations=%s:NoSchedule"]
`, puller.HostnameLabel, rn.name, startupTaintKey, startupTaintKey),
	}
	for f, content := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	kubectl(t, "apply", "--server-side", "--force-conflicts", "-k", dir)
}

// TestRealNodeRelease: make release twice gives the same digests, each an
// OCI image index of linux/amd64 and linux/arm64, and the chart and the
// manifest name them; the previous release's manifest (cut from its commit,
// which kept the ledger in the status) installs the controller on the real
// node and a cache goes to Succeeded; the new release's manifest, applied
// while three more caches pull, rolls the controller: every cache ends
// Succeeded with its ledger moved into slices, none lost its status, and no
// (node, image) pair was pulled twice.
func TestRealNodeRelease(t *testing.T) {
	rn := needInCluster(t)
	dir := t.TempDir()
	// The new one a pre-release: a release needs its CHANGELOG section.
	const prevVersion, newVersion = "v0.1.0", "v0.2.0-rc.1"

	// Reproducible: the same tree, the same digests and files.
	first := release(t, rn, projectRoot, newVersion, filepath.Join(dir, "new"))
	again := release(t, rn, projectRoot, newVersion, filepath.Join(dir, "again"))
	if strings.Join(first, " ") != strings.Join(again, " ") {
		t.Fatalf("two releases of one tree pushed different images:\n%s\n%s", strings.Join(first, "\n"), strings.Join(again, "\n"))
	}
	sums := func(d string) string {
		raw, err := os.ReadFile(filepath.Join(d, "SHA256SUMS"))
		if err != nil {
			t.Fatal(err)
		}
		return string(raw)
	}
	if a, b := sums(filepath.Join(dir, "new")), sums(filepath.Join(dir, "again")); a != b {
		t.Errorf("two releases of one tree wrote different files:\n%s\n%s", a, b)
	}
	checkPluginRelease(t, filepath.Join(dir, "new"), newVersion, sums(filepath.Join(dir, "new")))
	for _, ref := range first {
		r, err := name.ParseReference(ref)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := remote.Index(r)
		if err != nil {
			t.Fatalf("%s is not an image index: %v", ref, err)
		}
		m, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		var platforms []string
		for _, d := range m.Manifests {
			if d.Platform != nil {
				platforms = append(platforms, d.Platform.OS+"/"+d.Platform.Architecture)
			}
		}
		sort.Strings(platforms)
		if string(m.MediaType) != "application/vnd.oci.image.index.v1+json" || strings.Join(platforms, ",") != "linux/amd64,linux/arm64" {
			t.Errorf("%s: %s of %v, want an OCI image index of linux/amd64 and linux/arm64", ref, m.MediaType, platforms)
		}
	}
	manifest, err := os.ReadFile(filepath.Join(dir, "new", "kube-fledged.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	values := chartFile(t, filepath.Join(dir, "new", "kube-fledged-0.2.0-rc.1.tgz"), "kube-fledged/values.yaml")
	chart := chartFile(t, filepath.Join(dir, "new", "kube-fledged-0.2.0-rc.1.tgz"), "kube-fledged/Chart.yaml")
	// The objects, not the comments above them: the Deployment's image and
	// the two it names in its environment.
	var objects []string
	for _, line := range strings.Split(string(manifest), "\n") {
		if !strings.HasPrefix(line, "#") {
			objects = append(objects, line)
		}
	}
	wants := []string{"image: " + first[0], "value: " + first[1], "value: " + first[2]}
	for i, ref := range first {
		digest := ref[strings.LastIndex(ref, "@")+1:]
		inManifest := strings.Contains(strings.Join(objects, "\n"), wants[i])
		if !inManifest || !strings.Contains(values, digest) {
			t.Errorf("%s: in kube-fledged.yaml %v, its digest in the chart's values %v", ref, inManifest, strings.Contains(values, digest))
		}
	}
	if !strings.Contains(chart, "version: 0.2.0-rc.1") || !strings.Contains(chart, "appVersion: v0.2.0-rc.1") {
		t.Errorf("the packaged Chart.yaml:\n%s", chart)
	}

	// The previous release, cut from its own commit, installed from its
	// manifest.
	prev := release(t, rn, checkout(t, framework.PreviousRelease), prevVersion, filepath.Join(dir, "prev"))
	removeControllerAtEnd(t)
	installRelease(t, rn, filepath.Join(dir, "prev", "kube-fledged.yaml"))
	for _, p := range controllerPods(t, rn, sampleNS, "kube-fledged", 2) {
		if p.Spec.Containers[0].Image != prev[0] {
			t.Fatalf("pod %s runs %s, want %s", p.Name, p.Spec.Containers[0].Image, prev[0])
		}
	}
	apps := newNamespace(t, "release")
	before := succeeded(t, rn, apps, "settled", inClusterCache(t, rn, apps, "settled", "release"))

	// Every pull Job from here on, by (cache, node, image).
	pulls := watchPulls(t)

	// Three caches that pull while the new release rolls the controller.
	var inFlight []string
	for i := range 3 {
		var imgs []string
		for j := range 4 {
			imgs = append(imgs, rn.image(t, "shell", fmt.Sprintf("e2e/release-%d-%d:v1", i, j), false))
		}
		n := fmt.Sprintf("in-flight-%d", i)
		applyNamedCache(t, apps, n, "  cacheSpec:\n  - images: ["+strings.Join(imgs, ", ")+"]\n")
		inFlight = append(inFlight, n)
	}
	installRelease(t, rn, filepath.Join(dir, "new", "kube-fledged.yaml"))
	pulling := 0
	for _, n := range inFlight {
		ic, err := fledged.KubefledgedV1alpha2().ImageCaches(apps).Get(context.Background(), n, metav1.GetOptions{})
		if err == nil && ic.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded {
			pulling++
		}
	}
	if pulling == 0 {
		t.Fatalf("the caches were done before the new release was applied: nothing was in flight")
	}
	t.Logf("new release applied with %d of %d caches not yet Succeeded", pulling, len(inFlight))
	pods := controllerPods(t, rn, sampleNS, "kube-fledged", 2)
	for _, p := range pods {
		if p.Spec.Containers[0].Image != first[0] {
			t.Fatalf("after the upgrade, pod %s runs %s, want %s", p.Name, p.Spec.Containers[0].Image, first[0])
		}
	}
	t.Logf("upgraded; leader %s", waitLeader(t, sampleNS, pods))

	nodes, err := kubeClient.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range inFlight {
		ic := waitIC(t, apps, n, 4*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
		if c := ic.Status.Pulls; c.Failed != 0 || c.Succeeded != c.Desired || c.Desired < 4*2 || int(c.Desired+c.Skipped) != 4*len(nodes.Items) {
			t.Errorf("%s/%s after the upgrade: %+v over %d nodes: %s", apps, n, c, len(nodes.Items), ic.Status.Message)
		}
	}
	after, err := fledged.KubefledgedV1alpha2().ImageCaches(apps).Get(context.Background(), "settled", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Status.Status != v1alpha2.ImageCacheActionStatusSucceeded || after.Status.Pulls.Succeeded != before.Status.Pulls.Succeeded ||
		after.Status.Ledger == nil || !after.Status.StartTime.Equal(before.Status.StartTime) {
		t.Errorf("the settled cache after the upgrade: %s, pulls %+v, started %v (before: %+v, started %v)",
			after.Status.Status, after.Status.Pulls, after.Status.StartTime, before.Status.Pulls, before.Status.StartTime)
	}
	if pulls.closed() {
		t.Fatal("the watch of the pull Jobs ended before the caches did: the count is not whole")
	}
	twice, total := pulls.twice()
	if len(twice) > 0 {
		t.Errorf("pairs pulled more than once across the upgrade: %v", twice)
	}
	if n := pulls.of(apps + "/settled"); n != 0 {
		t.Errorf("the settled cache got %d pull Jobs across the upgrade; want none", n)
	}
	for _, n := range append([]string{"settled"}, inFlight...) {
		ic := getIC(t, apps, n)
		if h := ic.Status.Ledger; h == nil || h.Format != ledger.FormatVersion || len(h.Nodes) != 0 || len(ledgerOf(t, ic).Nodes()) == 0 {
			t.Errorf("%s/%s after the upgrade: status.ledger %+v, its ledger not moved into slices", apps, n, h)
		}
	}
	t.Logf("%d (cache, node, image) pulls across the upgrade, none twice", total)
	succeeded(t, rn, apps, "after", inClusterCache(t, rn, apps, "after", "release-new"))
}

// chartFile returns one file of a packaged chart.
func chartFile(t *testing.T, tgz, path string) string {
	t.Helper()
	f, err := os.Open(tgz)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("%s: no %s: %v", tgz, path, err)
		}
		if h.Name == path {
			raw, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			return string(raw)
		}
	}
}

// checkPluginRelease checks a release's kubectl plugin: an archive per
// platform in SHA256SUMS, a Krew manifest that points at each with its
// checksum, and the linux/amd64 binary, unpacked, says the release's version.
func checkPluginRelease(t *testing.T, dir, version, sums string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "fledged.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var krew struct {
		Kind     string
		Metadata struct{ Name string }
		Spec     struct {
			Version   string
			Platforms []struct {
				Selector         struct{ MatchLabels map[string]string } `json:"selector"`
				URI, Sha256, Bin string
			}
		}
	}
	if err := yaml.Unmarshal(raw, &krew); err != nil {
		t.Fatalf("the Krew manifest: %v\n%s", err, raw)
	}
	if krew.Kind != "Plugin" || krew.Metadata.Name != "fledged" || krew.Spec.Version != version || len(krew.Spec.Platforms) != 2 {
		t.Fatalf("the Krew manifest:\n%s", raw)
	}
	for _, p := range krew.Spec.Platforms {
		archive := fmt.Sprintf("kubectl-fledged_%s_%s_%s.tar.gz", version, p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"])
		if p.URI != "https://downloads.example/"+version+"/"+archive || p.Bin != "kubectl-fledged" ||
			!strings.Contains(sums, p.Sha256+"  "+archive+"\n") {
			t.Errorf("Krew platform %+v: want %s, its checksum as in SHA256SUMS:\n%s", p, archive, sums)
		}
	}
	if !strings.Contains(sums, "  fledged.yaml\n") {
		t.Errorf("SHA256SUMS does not list the Krew manifest:\n%s", sums)
	}
	bin := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", filepath.Join(dir, "kubectl-fledged_"+version+"_linux_amd64.tar.gz"), "-C", bin).CombinedOutput(); err != nil {
		t.Fatalf("unpacking the plugin: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(bin, "kubectl-fledged"), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), version) {
		t.Errorf("kubectl-fledged --version: %v: %s, want %s", err, out, version)
	}
	if _, err := os.Stat(filepath.Join(bin, "LICENSE")); err != nil {
		t.Errorf("the plugin archive has no LICENSE: %v", err)
	}
}

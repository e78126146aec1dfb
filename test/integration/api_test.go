package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

var imageCacheGVR = schema.GroupVersionResource{Group: "kubefledged.io", Version: "v1alpha2", Resource: "imagecaches"}

// newNamespace creates a namespace for one test and deletes it afterwards.
func newNamespace(t *testing.T, prefix string) string {
	t.Helper()
	ns, err := kubeClient.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = kubeClient.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	return ns.Name
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	_, err := kubeClient.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
}

// TestSampleAppliesUnchanged applies the kube-fledged-shaped sample with kubectl
// and reads it back with the typed client.
func TestSampleAppliesUnchanged(t *testing.T) {
	ctx := context.Background()
	ensureNamespace(t, "kube-fledged")
	out, err := cp.Kubectl(ctx, "apply", "-f", filepath.Join(projectRoot, "deploy", "sample-imagecache.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "imagecache.kubefledged.io/imagecache1 created") {
		t.Errorf("kubectl apply said %q", out)
	}
	t.Cleanup(func() {
		_ = fledged.KubefledgedV1alpha2().ImageCaches("kube-fledged").Delete(ctx, "imagecache1", metav1.DeleteOptions{})
	})
	ic, err := fledged.KubefledgedV1alpha2().ImageCaches("kube-fledged").Get(ctx, "imagecache1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := v1alpha2.ImageCacheSpec{
		CacheSpec: []v1alpha2.CacheSpecImages{
			{Images: []string{"ghcr.io/jitesoft/nginx:1.27", "docker.io/library/busybox:1.36"}},
			{Images: []string{"registry.k8s.io/pause:3.10", "docker.io/library/redis:7.4"}, NodeSelector: map[string]v1alpha2.LabelValue{"tier": "backend"}},
		},
		ImagePullSecrets: []v1alpha2.ImagePullSecret{{Name: "myregistrykey"}},
	}
	if diff := cmp.Diff(want, ic.Spec); diff != "" {
		t.Errorf("spec read back differs (-want +got):\n%s", diff)
	}
	// A second apply of the same file changes nothing.
	out, err = cp.Kubectl(ctx, "apply", "-f", filepath.Join(projectRoot, "deploy", "sample-imagecache.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "unchanged") {
		t.Errorf("second kubectl apply said %q, want unchanged", out)
	}
}

// TestValidationRefusesBadManifests creates invalid ImageCaches and checks that
// the API server refuses each, naming the field at fault.
func TestValidationRefusesBadManifests(t *testing.T) {
	ns := newNamespace(t, "validation")
	long := func(n int, c string) string { return strings.Repeat(c, n) }
	many := func(n int, f func(i int) string) string {
		var b strings.Builder
		for i := range n {
			b.WriteString(f(i))
		}
		return b.String()
	}
	cases := []struct {
		name      string
		spec      string
		wantField string
		wantMsg   string
	}{
		{"no cacheSpec", `imagePullSecrets: [{name: a}]`, "spec.cacheSpec", "Required value"},
		{"empty cacheSpec", `cacheSpec: []`, "spec.cacheSpec", "should have at least 1 items"},
		{"entry without images", `cacheSpec: [{nodeSelector: {a: b}}]`, "spec.cacheSpec[0].images", "Required value"},
		{"entry with empty images", `cacheSpec: [{images: []}]`, "spec.cacheSpec[0].images", "should have at least 1 items"},
		{"images not a list", `cacheSpec: [{images: nginx}]`, "spec.cacheSpec[0].images", "must be of type array"},
		{"duplicate image", `cacheSpec: [{images: [nginx:1.27, redis, nginx:1.27]}]`, "spec.cacheSpec[0].images[2]", "Duplicate value"},
		{"empty image", `cacheSpec: [{images: [""]}]`, "spec.cacheSpec[0].images[0]", "at least 1 chars long"},
		{"image with a space", `cacheSpec: [{images: [nginx, "nginx latest"]}]`, "spec.cacheSpec[0].images[1]", "should match"},
		{"upper-case repository", `cacheSpec: [{images: [Nginx:1.27]}]`, "spec.cacheSpec[0].images[0]", "should match"},
		{"upper-case path component", `cacheSpec: [{images: [myorg/App:1.0]}]`, "spec.cacheSpec[0].images[0]", "should match"},
		{"short digest", `cacheSpec: [{images: ["nginx@sha256:abc123"]}]`, "spec.cacheSpec[0].images[0]", "should match"},
		{"unknown digest algorithm", `cacheSpec: [{images: ["nginx@md5:` + long(32, "a") + `"]}]`, "spec.cacheSpec[0].images[0]", "should match"},
		{"tag too long", `cacheSpec: [{images: ["nginx:` + long(129, "t") + `"]}]`, "spec.cacheSpec[0].images[0]", "should match"},
		{"image over 4096 characters", `cacheSpec: [{images: ["` + long(4097, "a") + `"]}]`, "spec.cacheSpec[0].images[0]", "Too long"},
		{"nodeSelector key not a label key", `cacheSpec: [{images: [nginx], nodeSelector: {"bad key!": x}}]`, "spec.cacheSpec[0].nodeSelector", "nodeSelector keys must be valid label keys"},
		{"nodeSelector key name over 63", `cacheSpec: [{images: [nginx], nodeSelector: {"example.com/` + long(64, "k") + `": x}}]`, "spec.cacheSpec[0].nodeSelector", "valid label keys"},
		{"nodeSelector value not a label value", `cacheSpec: [{images: [nginx], nodeSelector: {tier: "-backend"}}]`, "spec.cacheSpec[0].nodeSelector.tier", "should match"},
		{"nodeSelector value over 63", `cacheSpec: [{images: [nginx], nodeSelector: {tier: "` + long(64, "v") + `"}}]`, "spec.cacheSpec[0].nodeSelector.tier", "Too long: may not be "},
		{"nodeSelector in the second entry", `cacheSpec: [{images: [nginx]}, {images: [redis], nodeSelector: {"a/b/c": x}}]`, "spec.cacheSpec[1].nodeSelector", "valid label keys"},
		{"imagePullSecret with empty name", `cacheSpec: [{images: [nginx]}]
imagePullSecrets: [{name: ""}]`, "spec.imagePullSecrets[0].name", "at least 1 chars long"},
		{"imagePullSecret without name", `cacheSpec: [{images: [nginx]}]
imagePullSecrets: [{}]`, "spec.imagePullSecrets[0].name", "Required value"},
		{"imagePullSecret with invalid name", `cacheSpec: [{images: [nginx]}]
imagePullSecrets: [{name: Reg_Cred}]`, "spec.imagePullSecrets[0].name", "should match"},
		{"too many entries", "cacheSpec: [" + many(v1alpha2.MaxCacheSpecEntries+1, func(i int) string {
			return fmt.Sprintf("{images: [img%d]},", i)
		}) + "]", "spec.cacheSpec", "Too many"},
		{"too many images in an entry", "cacheSpec: [{images: [" + many(v1alpha2.MaxImagesPerEntry+1, func(i int) string {
			return fmt.Sprintf("img%d,", i)
		}) + "]}]", "spec.cacheSpec[0].images", "Too many"},
		{"unknown field", `cacheSpec: [{images: [nginx], nodeSelectors: {a: b}}]`, "spec.cacheSpec[0].nodeSelectors", "unknown field"},
		{"unknown pull policy", `cacheSpec: [{images: [nginx], pullPolicy: Never}]`, "spec.cacheSpec[0].pullPolicy", "Unsupported value"},
		{"pull deadline not a duration", `cacheSpec: [{images: [nginx], pullDeadline: an-hour}]`, "spec.cacheSpec[0].pullDeadline", "should match"},
		{"pull deadline under 1s", `cacheSpec: [{images: [nginx], pullDeadline: 500ms}]`, "spec.cacheSpec[0].pullDeadline", "pullDeadline must be from 1s to 24h"},
		{"pull deadline over 24h", `cacheSpec: [{images: [nginx], pullDeadline: 25h}]`, "spec.cacheSpec[0].pullDeadline", "pullDeadline must be from 1s to 24h"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := map[string]any{}
			if err := yaml.Unmarshal([]byte(tc.spec), &spec); err != nil {
				t.Fatalf("bad test manifest: %v", err)
			}
			obj := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "kubefledged.io/v1alpha2",
				"kind":       "ImageCache",
				"metadata":   map[string]any{"name": fmt.Sprintf("bad-%d", i)},
				"spec":       spec,
			}}
			_, err := dynClient.Resource(imageCacheGVR).Namespace(ns).Create(context.Background(), obj,
				metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
			if err == nil {
				t.Fatalf("the API server accepted an invalid ImageCache")
			}
			if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
				t.Fatalf("want an Invalid or BadRequest error, got %v", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, tc.wantField) {
				t.Errorf("error does not name field %q: %s", tc.wantField, clip(msg))
			}
			if !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("error does not say %q: %s", tc.wantMsg, clip(msg))
			}
		})
	}

	// And the valid edge cases are accepted.
	valid := []string{
		"nginx", "nginx:1.27", "docker.io/library/nginx:latest", "localhost:5000/team/app:v1",
		"127.0.0.1:5000/app", "[::1]:5000/app:tag", "ghcr.io/org/app@sha256:" + long(64, "a"),
		"ghcr.io/org/app:v1@sha256:" + long(64, "b"), "Registry.Example.COM/org/app:V1",
		"a/b/c/d__e-f.g:Tag_1.2-3",
	}
	ic := &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: "valid-edges"},
		Spec: v1alpha2.ImageCacheSpec{
			CacheSpec: []v1alpha2.CacheSpecImages{{Images: valid, NodeSelector: map[string]v1alpha2.LabelValue{"example.com/tier": "back-end_1.x", "empty": ""}},
				{Images: []string{"nginx:1.27"}, PullPolicy: v1alpha2.PullAlways, PullDeadline: &metav1.Duration{Duration: 90 * time.Minute}},
				{Images: []string{"nginx:1.27"}, PullPolicy: v1alpha2.PullIfNotPresent, PullDeadline: &metav1.Duration{Duration: 24 * time.Hour}}},
			ImagePullSecrets: []v1alpha2.ImagePullSecret{{Name: "reg.cred-1"}},
		},
	}
	if _, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Create(context.Background(), ic, metav1.CreateOptions{}); err != nil {
		t.Errorf("valid ImageCache refused: %v", err)
	}
}

func clip(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

// TestTypedClientRoundTrip creates, reads, lists, updates and deletes an
// ImageCache with the generated clientset.
func TestTypedClientRoundTrip(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "roundtrip")
	client := fledged.KubefledgedV1alpha2().ImageCaches(ns)
	ic := &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: "rt"},
		Spec:       v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{{Images: []string{"nginx:1.27"}}}},
	}
	created, err := client.Create(ctx, ic, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if created.Generation != 1 || created.UID == "" {
		t.Errorf("created object has generation %d uid %q", created.Generation, created.UID)
	}
	got, err := client.Get(ctx, "rt", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ic.Spec, got.Spec); diff != "" {
		t.Errorf("get: spec differs (-want +got):\n%s", diff)
	}
	list, err := client.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].Name != "rt" {
		t.Errorf("list: got %d items", len(list.Items))
	}
	got.Spec.CacheSpec = append(got.Spec.CacheSpec, v1alpha2.CacheSpecImages{Images: []string{"redis"}, NodeSelector: map[string]v1alpha2.LabelValue{"tier": "backend"}})
	updated, err := client.Update(ctx, got, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Generation != 2 || len(updated.Spec.CacheSpec) != 2 {
		t.Errorf("update: generation %d, %d entries", updated.Generation, len(updated.Spec.CacheSpec))
	}
	if err := client.Delete(ctx, "rt", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Get(ctx, "rt", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: want NotFound, got %v", err)
	}
}

func sampleStatus() v1alpha2.ImageCacheStatus {
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	return v1alpha2.ImageCacheStatus{
		Status:  v1alpha2.ImageCacheActionStatusFailed,
		Reason:  v1alpha2.ImageCacheReasonCreate,
		Message: "Pulled 7 of 8 images on 4 nodes; 1 failed",
		Failures: map[string]v1alpha2.NodeReasonMessageList{
			"redis:7.4": {{Node: "node-3", Reason: "ErrImagePull", Message: "manifest unknown"}},
		},
		StartTime:          &now,
		CompletionTime:     &now,
		ObservedGeneration: 1,
		Conditions: []metav1.Condition{{
			Type: v1alpha2.ConditionReady, Status: metav1.ConditionFalse, Reason: "PullsFailed",
			Message: "1 pull failed", LastTransitionTime: now, ObservedGeneration: 1,
		}},
		Pulls:        v1alpha2.PullCounts{Desired: 8, Succeeded: 7, AlreadyPresent: 2, Failed: 1},
		NodesMatched: 4,
	}
}

// TestSpecAndStatusDoNotClobber checks that the status subresource keeps spec
// and status writes apart.
func TestSpecAndStatusDoNotClobber(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "subresource")
	client := fledged.KubefledgedV1alpha2().ImageCaches(ns)
	ic, err := client.Create(ctx, &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: "sub"},
		Spec:       v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{{Images: []string{"nginx"}}}},
		Status:     v1alpha2.ImageCacheStatus{Status: v1alpha2.ImageCacheActionStatusSucceeded},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ic.Status.Status != "" {
		t.Errorf("create kept a status %q; the status subresource should drop it", ic.Status.Status)
	}

	// A status write leaves the spec alone, even if the object carries a changed spec.
	// One sample: it is stamped with the time now, which may tick between
	// two calls.
	want := sampleStatus()
	ic.Status = want
	ic.Spec.CacheSpec[0].Images = []string{"changed-by-status-writer"}
	afterStatus, err := client.UpdateStatus(ctx, ic, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"nginx"}, afterStatus.Spec.CacheSpec[0].Images); diff != "" {
		t.Errorf("UpdateStatus changed the spec (-want +got):\n%s", diff)
	}
	if afterStatus.Generation != 1 {
		t.Errorf("UpdateStatus bumped the generation to %d", afterStatus.Generation)
	}
	if diff := cmp.Diff(want, afterStatus.Status); diff != "" {
		t.Errorf("status read back differs (-want +got):\n%s", diff)
	}

	// A spec write leaves the status alone, even if the object carries another status.
	afterStatus.Spec.CacheSpec[0].Images = []string{"nginx", "redis"}
	afterStatus.Status = v1alpha2.ImageCacheStatus{Status: v1alpha2.ImageCacheActionStatusAborted}
	afterSpec, err := client.Update(ctx, afterStatus, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if afterSpec.Generation != 2 {
		t.Errorf("spec update: generation %d, want 2", afterSpec.Generation)
	}
	if diff := cmp.Diff(want, afterSpec.Status); diff != "" {
		t.Errorf("Update changed the status (-want +got):\n%s", diff)
	}
}

// TestPrinterColumns checks what `kubectl get ic` shows for an object whose
// status the test set.
func TestPrinterColumns(t *testing.T) {
	ctx := context.Background()
	ns := newNamespace(t, "columns")
	client := fledged.KubefledgedV1alpha2().ImageCaches(ns)
	ic, err := client.Create(ctx, &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Name: "cols"},
		Spec:       v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{{Images: []string{"nginx", "redis"}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ic.Status = sampleStatus()
	if _, err := client.UpdateStatus(ctx, ic, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	out, err := cp.Kubectl(ctx, "get", "ic", "-n", ns)
	if err != nil {
		t.Fatal(err)
	}
	assertTable(t, out, []string{"NAME", "READY", "STATUS", "DONE", "DESIRED", "FAILED", "AGE"},
		map[string]string{"NAME": "cols", "READY": "False", "STATUS": "Failed", "DONE": "7", "DESIRED": "8", "FAILED": "1"})

	out, err = cp.Kubectl(ctx, "get", "imagecaches.kubefledged.io", "-n", ns, "-o", "wide")
	if err != nil {
		t.Fatal(err)
	}
	assertTable(t, out, []string{"NAME", "READY", "STATUS", "DONE", "DESIRED", "FAILED", "AGE", "REASON", "MESSAGE"},
		map[string]string{"NAME": "cols", "REASON": "ImageCacheCreate", "MESSAGE": "Pulled 7 of 8 images on 4 nodes; 1 failed"})
}

// assertTable checks a kubectl table's header and the values of its one row.
// Columns are cut at the header's offsets, as kubectl aligns them.
func assertTable(t *testing.T, out string, header []string, want map[string]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a header and one row, got:\n%s", out)
	}
	if got := strings.Fields(lines[0]); !cmp.Equal(got, header) {
		t.Fatalf("header: got %v, want %v", got, header)
	}
	starts := make([]int, len(header))
	for i, h := range header {
		starts[i] = strings.Index(lines[0], h)
	}
	row := lines[1]
	for i, h := range header {
		end := len(row)
		if i+1 < len(starts) {
			end = min(starts[i+1], len(row))
		}
		cell := strings.TrimSpace(row[min(starts[i], len(row)):end])
		if w, ok := want[h]; ok && cell != w {
			t.Errorf("column %s: got %q, want %q\n%s", h, cell, w, out)
		}
	}
}

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/puller"
	"kubefledged.io/kube-fledged/test/framework"
)

// healthRow reads a cache from the API server as any tool does (unstructured
// JSON, with the CRD's defaults), computes what kstatus and the Argo CD
// health check (deploy/argocd/health.lua) say of it, checks them against
// what the stage wants, and checks that the project's docs give the same
// row in their health table:
//
//	| stage | Ready | Reconciling | Stalled | kstatus | Argo CD |
func healthRow(t *testing.T, stage, ns, name, wantKstatus, wantArgo string) {
	t.Helper()
	raw, err := fledged.KubefledgedV1alpha2().RESTClient().Get().Namespace(ns).Resource("imagecaches").Name(name).DoRaw(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	obj := u.Object
	ks, ksMsg, err := framework.Kstatus(u)
	if err != nil {
		t.Fatalf("%s: kstatus: %v", stage, err)
	}
	script, err := framework.ArgoHealthScript()
	if err != nil {
		t.Fatal(err)
	}
	argo, argoMsg, err := framework.ArgoHealth(script, obj)
	if err != nil {
		t.Fatalf("%s: %v", stage, err)
	}
	var ic v1alpha2.ImageCache
	if err := json.Unmarshal(raw, &ic); err != nil {
		t.Fatal(err)
	}
	cell := func(kind string) string {
		c := meta.FindStatusCondition(ic.Status.Conditions, kind)
		if c == nil {
			return "-"
		}
		if c.ObservedGeneration != ic.Generation {
			t.Errorf("%s: %s's observedGeneration is %d, the cache's generation %d", stage, kind, c.ObservedGeneration, ic.Generation)
		}
		return fmt.Sprintf("`%s` %s", c.Status, c.Reason)
	}
	row := fmt.Sprintf("| %s | %s | %s | %s | `%s` | `%s` |", stage, cell(v1alpha2.ConditionReady),
		cell(v1alpha2.ConditionReconciling), cell(v1alpha2.ConditionStalled), ks, argo)
	t.Logf("%s\n    kstatus: %s\n    Argo CD: %s", row, ksMsg, argoMsg)
	if ks != wantKstatus || argo != wantArgo {
		t.Errorf("%s: kstatus %s, Argo CD %s; want %s and %s (status %s %s %q)", stage, ks, argo, wantKstatus, wantArgo,
			ic.Status.Reason, ic.Status.Status, ic.Status.Message)
	}
	if !docsHaveRow(t, row) {
		t.Errorf("no doc in README.md or docs/ has the health table's row\n%s", row)
	}
}

// docsHaveRow says whether README.md or a page of docs/ has the line.
func docsHaveRow(t *testing.T, row string) bool {
	t.Helper()
	pages, _ := filepath.Glob(filepath.Join(projectRoot, "docs", "*.md"))
	for _, p := range append([]string{filepath.Join(projectRoot, "README.md")}, pages...) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.TrimSpace(line) == row {
				return true
			}
		}
	}
	return false
}

// TestHealthAtEveryStage (the day-two issue): what kstatus and Argo CD read
// of a cache at each stage of its life, from the object as the real API
// server serves it. Too large is in TestTooManyImagesRefusedAtOnce.
func TestHealthAtEveryStage(t *testing.T) {
	ns := testNamespace(t, "health")
	names := nodeNames(ns, 2)
	createNode(t, names[0], "pool", ns)
	pool := map[string]v1alpha2.LabelValue{"pool": v1alpha2.LabelValue(ns)}
	createCache(t, ns, "web", entry(pool, "nginx:1.27"))
	healthRow(t, "created, not yet seen by the controller", ns, "web", "InProgress", "Progressing")

	runController(t, nil)
	waitFor(t, 10*time.Second, "the pull Job", func() (bool, error) { return len(listJobs(t, ns)) == 1, nil })
	healthRow(t, "pulling", ns, "web", "InProgress", "Progressing")
	driveToCompletion(t, ns, "web", 20*time.Second)
	healthRow(t, "succeeded", ns, "web", "Current", "Healthy")

	if _, err := cp.Kubectl(context.Background(), "annotate", "ic", "web", "-n", ns, v1alpha2.AnnotationRefresh+"="); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the refresh's pull Job", func() (bool, error) {
		ic := cacheStatus(t, ns, "web")
		return ic.Status.Reason == v1alpha2.ImageCacheReasonRefresh && len(activeJobs(t, ns)) == 1, nil
	})
	healthRow(t, "refreshing", ns, "web", "InProgress", "Healthy")
	driveToCompletion(t, ns, "web", 20*time.Second)

	createNode(t, names[1], "pool", ns)
	waitFor(t, 10*time.Second, "the joining node's pull Job", func() (bool, error) {
		return cacheStatus(t, ns, "web").Status.Status == v1alpha2.ImageCacheActionStatusProcessing && len(activeJobs(t, ns)) == 1, nil
	})
	healthRow(t, "a node joining", ns, "web", "InProgress", "Healthy")
	driveToCompletion(t, ns, "web", 20*time.Second)
	healthRow(t, "the node warmed", ns, "web", "Current", "Healthy")

	// An update adds an image the registry does not have.
	waitFor(t, 10*time.Second, "the edit", func() (bool, error) {
		ic := cacheStatus(t, ns, "web")
		ic.Spec.CacheSpec[0].Images = append(ic.Spec.CacheSpec[0].Images, "ghcr.io/org/missing:v9")
		_, err := fledged.KubefledgedV1alpha2().ImageCaches(ns).Update(context.Background(), ic, metav1.UpdateOptions{})
		return err == nil, err
	})
	waitFor(t, 10*time.Second, "the update's pull Jobs", func() (bool, error) { return len(activeJobs(t, ns)) == 2, nil })
	healthRow(t, "updating", ns, "web", "InProgress", "Progressing")
	msg := `rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/org/missing:v9": not found`
	for _, job := range activeJobs(t, ns) {
		pod := fledgedtest.WithContainerStates(fledgedtest.PodOf(&job, "pod"), map[string]corev1.ContainerState{
			puller.ContainerName(0): fledgedtest.Waiting("ErrImagePull", msg)})
		now := metav1.Now()
		pod.Status.StartTime = &now
		writePod(t, pod)
	}
	waitStatus(t, ns, "web", v1alpha2.ImageCacheActionStatusFailed, 20*time.Second)
	healthRow(t, "failed", ns, "web", "Failed", "Degraded")

	// The purge: no pull of this cache was seen to bring the images (no
	// kubelet events here), so it keeps them all, at once.
	if _, err := cp.Kubectl(context.Background(), "annotate", "ic", "web", "-n", ns, v1alpha2.AnnotationPurge+"="); err != nil {
		t.Fatal(err)
	}
	stable(t, ns, "web", 20*time.Second, func(ic *v1alpha2.ImageCache) bool {
		_, asked := ic.Annotations[v1alpha2.AnnotationPurge]
		return !asked && ic.Status.Reason == v1alpha2.ImageCacheReasonPurge && ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing
	})
	healthRow(t, "purged", ns, "web", "Failed", "Suspended")

	// A refresh brings it back.
	if _, err := cp.Kubectl(context.Background(), "annotate", "ic", "web", "-n", ns, v1alpha2.AnnotationRefresh+"="); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the refresh after the purge", func() (bool, error) {
		return cacheStatus(t, ns, "web").Status.Reason == v1alpha2.ImageCacheReasonRefresh && len(activeJobs(t, ns)) == 2, nil
	})
	healthRow(t, "refreshing after a purge", ns, "web", "InProgress", "Progressing")
	if c := meta.FindStatusCondition(cacheStatus(t, ns, "web").Status.Conditions, v1alpha2.ConditionStalled); c == nil || c.Status != metav1.ConditionFalse {
		t.Errorf("Stalled after the refresh began: %+v, want False", c)
	}
}

// activeJobs lists the namespace's Jobs that run and are not being deleted.
func activeJobs(t *testing.T, ns string) []batchv1.Job {
	t.Helper()
	var out []batchv1.Job
	for _, j := range listJobs(t, ns) {
		if isActive(&j) && j.DeletionTimestamp == nil {
			out = append(out, j)
		}
	}
	return out
}

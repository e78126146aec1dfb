package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/util/retry"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/cli"
	"kubefledged.io/kube-fledged/pkg/fledgedtest"
	"kubefledged.io/kube-fledged/pkg/options"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// fledgedRun runs kubectl-fledged with the test cluster's kubeconfig; in is
// its standard input.
func fledgedRun(t *testing.T, in string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(in), Out: &out, ErrOut: &errOut}
	code = cli.Run(context.Background(), streams, append([]string{"--kubeconfig", cp.Kubeconfig}, args...))
	return out.String(), errOut.String(), code
}

// cells splits a table line into its cells (separated by 2 or more spaces;
// a header such as "SKIPPED NODES" has one).
func cells(line string) []string {
	return regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
}

// assertLines checks a table's lines, cell by cell; a want cell "*" is any.
func assertLines(t *testing.T, what, out string, want [][]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != len(want) {
		t.Errorf("%s: %d lines, want %d:\n%s", what, len(lines), len(want), out)
		return
	}
	for i, line := range lines {
		got := cells(line)
		ok := len(got) == len(want[i])
		for j := 0; ok && j < len(got); j++ {
			ok = want[i][j] == "*" || want[i][j] == got[j]
		}
		if !ok {
			t.Errorf("%s: line %d is %q, want %q", what, i+1, got, want[i])
		}
	}
}

// jobOn finds the active pull Job of a node.
func jobOn(t *testing.T, ns, node string) batchv1.Job {
	t.Helper()
	var job batchv1.Job
	waitFor(t, 20*time.Second, "the pull Job of "+node, func() (bool, error) {
		for _, j := range listJobs(t, ns) {
			if j.Spec.Template.Spec.NodeSelector[puller.HostnameLabel] == node && isActive(&j) && j.DeletionTimestamp == nil {
				job = j
				return true, nil
			}
		}
		return false, nil
	})
	return job
}

// TestPlugin runs each kubectl-fledged command against a cache over four
// nodes whose outcomes the test drives: one warm, one where an image
// failed, one not Ready, one held by the startup taint with its pulls
// pending; then a wait that times out, one that fails, a refresh followed
// to its end, and a purge that is not confirmed.
func TestPlugin(t *testing.T) {
	const taint = "kubefledged.io/warming"
	ns := testNamespace(t, "plugin")
	nodes := nodeNames(ns, 4)
	for _, n := range nodes {
		createNode(t, n, "plugintest", ns)
	}
	setNode(t, nodes[2], func(n *corev1.Node) { n.Status.Conditions[0].Status = corev1.ConditionFalse }, true)
	app, bad := "registry.local/app:v1", "registry.local/bad:v1"
	createCache(t, ns, "web", entry(map[string]v1alpha2.LabelValue{"plugintest": v1alpha2.LabelValue(ns)}, app, bad))
	// Node 3 joins with the startup taint (before the controller starts,
	// as the cache is there: it holds the node).
	setNode(t, nodes[3], func(n *corev1.Node) {
		n.Spec.Taints = []corev1.Taint{{Key: taint, Effect: corev1.TaintEffectNoSchedule}}
	}, false)
	runController(t, func(o *options.Options) { o.NodeStartupTaint = taint; o.NodeStartupTaintTimeout = 10 * time.Minute })

	// Node 0 pulls both images; node 1 pulls app, and bad fails.
	completeJobPulled(t, jobOn(t, ns, nodes[0]))
	job := jobOn(t, ns, nodes[1])
	msg := `rpc error: code = NotFound desc = failed to pull and unpack image "registry.local/bad:v1": not found`
	states := map[string]corev1.ContainerState{}
	for i, c := range job.Spec.Template.Spec.Containers {
		states[c.Name] = fledgedtest.TerminatedOK(time.Now())
		if c.Image == bad {
			states[puller.ContainerName(i)] = fledgedtest.Waiting("ErrImagePull", msg)
		}
	}
	pod := fledgedtest.WithContainerStates(fledgedtest.PodOf(&job, "pod"), states)
	now := metav1.Now()
	pod.Status.StartTime = &now
	writePod(t, pod)
	waitFor(t, 20*time.Second, "node 1's outcome in the status", func() (bool, error) {
		ic := cacheStatus(t, ns, "web")
		return ic.Status.Pulls.Succeeded == 3 && ic.Status.Pulls.Failed == 1, nil
	})
	ic := cacheStatus(t, ns, "web")
	if p := ic.Status.Pulls; p.Desired != 8 || p.Pending != 2 || p.Skipped != 2 || ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing {
		t.Fatalf("status %s, pulls %+v: want 8 desired, 2 pending (node 3), 2 skipped (node 2)", ic.Status.Status, p)
	}
	reason := ic.Status.Failures[bad][0].Reason

	t.Run("status", func(t *testing.T) {
		out, errOut, code := fledgedRun(t, "", "status", "web", "-n", ns)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		assertLines(t, "status", out, [][]string{
			{"NAME", "OPERATION", "STATUS", "TIME", "DONE", "FAILED", "PENDING", "SKIPPED", "NODES", "SKIPPED NODES", "HELD", "LEFT"},
			{"web", "Create", "Processing", "*", "3/8", "1", "2", "2", "4", "1", "1"},
		})
		out, _, _ = fledgedRun(t, "", "status", "-A", "-o", "json", "--no-nodes")
		found := false
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var s struct {
				Namespace, Name, Operation, Status string
				Pulls                              v1alpha2.PullCounts
				Nodes                              struct {
					Matched int32
					Skipped *int
				}
			}
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatalf("status -o json line %q: %v", line, err)
			}
			if s.Namespace == ns && s.Name == "web" {
				found = true
				if s.Operation != "Create" || s.Status != "Processing" || s.Pulls != ic.Status.Pulls || s.Nodes.Matched != 4 || s.Nodes.Skipped != nil {
					t.Errorf("status -o json: %+v", s)
				}
			}
		}
		if !found {
			t.Errorf("status -A -o json has no %s/web:\n%s", ns, out)
		}
	})

	t.Run("nodes", func(t *testing.T) {
		out, errOut, code := fledgedRun(t, "", "nodes", "web", "-n", ns)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		assertLines(t, "nodes", out, [][]string{
			{"NODE", "STATE", "DONE", "FAILED", "PENDING", "SKIPPED", "NOT DONE"},
			{nodes[0], "warm", "2/2", "0", "0", "0"},
			{nodes[1], "failed", "1/2", "1", "0", "0", bad + " failed (" + reason + ")"},
			{nodes[2], "skipped", "0/2", "0", "0", "2", app + " skipped, " + bad + " skipped"},
			{nodes[3], "pending", "0/2", "0", "2", "0", app + " pending, " + bad + " pending"},
		})
		out, _, _ = fledgedRun(t, "", "nodes", "web", "-n", ns, "--image", bad, "--state", "failed", "-o", "wide")
		assertLines(t, "nodes --image --state failed", out, [][]string{
			{"NODE", "STATE", "REASON", "OWNED", "PIN", "MESSAGE"},
			{nodes[1], "failed", reason, "no", msg},
		})
		out, _, _ = fledgedRun(t, "", "nodes", "web", "-n", ns, "--state", "owned")
		assertLines(t, "nodes --state owned", out, [][]string{
			{"NODE", "STATE", "DONE", "FAILED", "PENDING", "SKIPPED", "NOT DONE"},
			{nodes[0], "warm", "2/2", "0", "0", "0"},
		})
		out, _, _ = fledgedRun(t, "", "nodes", "web", "-n", ns, "-o", "json", "--chunk-size", "2")
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			var v struct {
				Node, State, SkipReason string
				Images                  []struct{ Image, State, Reason string }
			}
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("nodes -o json line %q: %v", line, err)
			}
			s := fmt.Sprintf("%s %s %s:", v.Node, v.State, v.SkipReason)
			for _, p := range v.Images {
				s += fmt.Sprintf(" %s=%s(%s)", p.Image, p.State, p.Reason)
			}
			got = append(got, s)
		}
		want := []string{
			nodes[0] + " warm : " + app + "=pulled() " + bad + "=pulled()",
			nodes[1] + " failed : " + app + "=pulled() " + bad + "=failed(" + reason + ")",
			nodes[2] + " skipped NodeNotReady: " + app + "=skipped(NodeNotReady) " + bad + "=skipped(NodeNotReady)",
			nodes[3] + " pending : " + app + "=pending() " + bad + "=pending()",
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("nodes -o json:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	})

	t.Run("node", func(t *testing.T) {
		// -n: the caches of the other tests select every node.
		out, errOut, code := fledgedRun(t, "", "node", nodes[3], "-n", ns)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		assertLines(t, "node (tainted)", out, [][]string{
			{"CACHE", "IMAGE", "STATE", "REASON"},
			{ns + "/web", app, "pending"},
			{ns + "/web", bad, "pending"},
			{fmt.Sprintf("Startup taint %s: held by 2 pending pulls: %s (%s/web), %s (%s/web).", taint, app, ns, bad, ns)},
		})
		out, _, _ = fledgedRun(t, "", "node", nodes[2], "-n", ns)
		assertLines(t, "node (not ready)", out, [][]string{
			{"CACHE", "IMAGE", "STATE", "REASON"},
			{ns + "/web", app, "skipped", "NodeNotReady"},
			{ns + "/web", bad, "skipped", "NodeNotReady"},
			{"The node cannot take pulls now: NodeNotReady."},
			{"Startup taint " + taint + ": not on the node."},
		})
		_, errOut, code = fledgedRun(t, "", "node", ns+"-absent")
		if code != 1 || errOut != fmt.Sprintf("error: node %q not found\n", ns+"-absent") {
			t.Errorf("an absent node: exit %d, %q", code, errOut)
		}
	})

	t.Run("errors", func(t *testing.T) {
		_, errOut, code := fledgedRun(t, "", "status", "absent", "-n", ns)
		if code != 1 || errOut != fmt.Sprintf("error: imagecache \"absent\" not found in namespace %q\n", ns) {
			t.Errorf("an absent cache: exit %d, %q", code, errOut)
		}
		_, errOut, code = fledgedRun(t, "", "nodes", "web", "-n", ns, "--as", "someone")
		if code != 1 || !strings.HasPrefix(errOut, fmt.Sprintf("error: you may not get imagecaches.kubefledged.io in namespace %q", ns)) {
			t.Errorf("no rights: exit %d, %q", code, errOut)
		}
	})

	// Pending pulls: the wait ends at its timeout, with exit code 2.
	_, errOut, code := fledgedRun(t, "", "wait", "web", "-n", ns, "--for=succeeded", "--timeout=2s")
	if code != cli.ExitTimeout || !strings.HasPrefix(errOut, "error: timed out after 2s waiting for imagecache "+ns+"/web: Create Processing: 3/8 done, 1 failed, 2 pending, 2 skipped on 4 nodes") {
		t.Errorf("wait on a cache in progress: exit %d, %q", code, errOut)
	}
	// Node 3 pulls: the operation ends Failed (node 1), and wait says why.
	completeJobPulled(t, jobOn(t, ns, nodes[3]))
	waitStatus(t, ns, "web", v1alpha2.ImageCacheActionStatusFailed, 20*time.Second)
	_, errOut, code = fledgedRun(t, "", "wait", "web", "-n", ns, "--for=succeeded", "--timeout=20s")
	if code != cli.ExitStalled || !strings.Contains(errOut, "imagecache.kubefledged.io/web Failed (Create): ") ||
		!strings.Contains(errOut, fmt.Sprintf("\n  %s on %s: %s: %s\n", bad, nodes[1], reason, msg)) {
		t.Errorf("wait on a failed cache: exit %d, %q", code, errOut)
	}

	// A refresh followed to its end: the test plays the kubelet meanwhile.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = waitForQuiet(20*time.Second, func() bool {
			completeActiveJobs(t, ns)
			ic := cacheStatus(t, ns, "web")
			_, asked := ic.Annotations[v1alpha2.AnnotationRefresh]
			return !asked && ic.Status.Reason == v1alpha2.ImageCacheReasonRefresh && ic.Status.Status != v1alpha2.ImageCacheActionStatusProcessing
		})
	}()
	out, errOut, code := fledgedRun(t, "", "refresh", "web", "-n", ns, "--wait", "--timeout=30s")
	<-done
	if code != 0 || !strings.HasPrefix(out, "imagecache.kubefledged.io/web: refresh asked\nimagecache.kubefledged.io/web Succeeded (Refresh): ") {
		t.Errorf("refresh --wait: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(errOut, "Refresh Processing: ") {
		t.Errorf("refresh --wait printed no progress line: %q", errOut)
	}
	out, errOut, code = fledgedRun(t, "", "wait", "web", "-n", ns)
	if code != 0 || !strings.HasPrefix(out, "imagecache.kubefledged.io/web Succeeded (Refresh)") {
		t.Errorf("wait on a refreshed cache: exit %d, %q %q", code, out, errOut)
	}

	// A purge that is not confirmed sets nothing.
	_, errOut, code = fledgedRun(t, "n\n", "purge", "web", "-n", ns)
	if code != 1 || !strings.Contains(errOut, "Purge? [y/N]: error: not purged") {
		t.Errorf("an unconfirmed purge: exit %d, %q", code, errOut)
	}
	if _, asked := cacheStatus(t, ns, "web").Annotations[v1alpha2.AnnotationPurge]; asked {
		t.Error("an unconfirmed purge set the annotation")
	}
}

// setNode changes a node (its status, if status).
func setNode(t *testing.T, name string, change func(*corev1.Node), status bool) {
	t.Helper()
	ctx := context.Background()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		n, err := kubeClient.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(n)
		if status {
			_, err = kubeClient.CoreV1().Nodes().UpdateStatus(ctx, n, metav1.UpdateOptions{})
		} else {
			_, err = kubeClient.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// waitForQuiet polls cond until it holds or the timeout passes, from a
// goroutine other than the test's.
func waitForQuiet(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

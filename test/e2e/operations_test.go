//go:build e2e

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

var (
	deployOnce       sync.Once
	deployKubeconfig string
	deployErr        string
)

// deployed runs `make deploy` once (the image does not matter here: kwok does
// not run it) and returns a kubeconfig holding the deploy ServiceAccount's own
// token, from the TokenRequest API.
func deployed(t *testing.T) string {
	t.Helper()
	deployOnce.Do(func() {
		cmd := exec.Command("make", "--no-print-directory", "deploy", "FLEDGED_IMAGE=registry.local/kube-fledged:e2e")
		cmd.Dir = projectRoot
		cmd.Env = append(os.Environ(), "KUBECTL="+kubectlBin, "KUBECONFIG="+kubeconfig)
		out, err := cmd.CombinedOutput()
		if err != nil {
			deployErr = "make deploy: " + err.Error() + "\n" + string(out)
			return
		}
		for _, want := range []string{"serviceaccount/kube-fledged", "clusterrole.rbac.authorization.k8s.io/kube-fledged",
			"deployment.apps/kube-fledged", "service/kube-fledged-metrics"} {
			if !strings.Contains(string(out), want) {
				deployErr = "make deploy did not apply " + want + ":\n" + string(out)
				return
			}
		}
		token := strings.TrimSpace(kubectl(t, "create", "token", "kube-fledged", "-n", sampleNS, "--duration=2h"))
		cfg, err := clientcmd.LoadFromFile(kubeconfig)
		if err != nil {
			deployErr = err.Error()
			return
		}
		cfg.AuthInfos = map[string]*clientcmdapi.AuthInfo{"kube-fledged": {Token: token}}
		for _, c := range cfg.Contexts {
			c.AuthInfo = "kube-fledged"
		}
		deployKubeconfig = filepath.Join(artifacts, "serviceaccount.kubeconfig")
		if err := clientcmd.WriteToFile(*cfg, deployKubeconfig); err != nil {
			deployErr = err.Error()
		}
	})
	if deployErr != "" {
		t.Fatal(deployErr)
	}
	return deployKubeconfig
}

// canI asks the API server, as the ServiceAccount, whether it may do something.
func canI(t *testing.T, kc string, args ...string) bool {
	t.Helper()
	// The answer is on standard output; warnings go to standard error.
	out, err := exec.Command(kubectlBin, append([]string{"--kubeconfig", kc, "auth", "can-i"}, args...)...).Output()
	answer := strings.TrimSpace(string(out))
	if answer != "yes" && answer != "no" {
		t.Fatalf("kubectl auth can-i %v: %v: %s", args, err, out)
	}
	return answer == "yes"
}

// The deploy manifests apply, and their RBAC is enough and no more: the
// controller, as the deploy ServiceAccount, completes the sample, and the
// ServiceAccount cannot read Secrets or delete Nodes. The metrics endpoint
// counts the pulls done.
func TestDeployRBACIsEnoughAndNoMore(t *testing.T) {
	kc := deployed(t)
	for _, denied := range [][]string{
		{"get", "secrets", "-n", sampleNS}, {"list", "secrets", "--all-namespaces"}, {"delete", "nodes"},
		{"update", "nodes"}, {"patch", "nodes"}, {"create", "pods", "-n", "default"}, {"delete", "imagecaches.kubefledged.io", "-n", "default"},
		{"update", "leases.coordination.k8s.io", "-n", "default"},
	} {
		if canI(t, kc, denied...) {
			t.Errorf("the ServiceAccount may %v; it should not", denied)
		}
	}
	for _, allowed := range [][]string{
		{"create", "jobs.batch", "-n", "default"}, {"update", "imagecaches.kubefledged.io", "--subresource=status", "-n", "default"},
		{"list", "nodes"}, {"update", "leases.coordination.k8s.io", "-n", sampleNS}, {"list", "events", "-n", "default"}, {"watch", "events", "--all-namespaces"},
	} {
		if !canI(t, kc, allowed...) {
			t.Errorf("the ServiceAccount may not %v; the controller needs it", allowed)
		}
	}

	p := startControllerAs(t, kc, []string{"KUBEFLEDGED_NAMESPACE=" + sampleNS}, "--leader-elect", "--leader-elect-resource-name=e2e-rbac")
	kubectl(t, "apply", "-f", filepath.Join(projectRoot, "deploy", "sample-imagecache.yaml"))
	t.Cleanup(func() {
		kubectl(t, "delete", "-f", filepath.Join(projectRoot, "deploy", "sample-imagecache.yaml"), "--wait=true")
	})
	ic := waitIC(t, sampleNS, "imagecache1", 2*time.Minute, "Succeeded as the ServiceAccount", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if ic.Status.Pulls.Succeeded != 50 {
		t.Errorf("pulls %+v", ic.Status.Pulls)
	}
	if !p.logHas("Started leading") {
		t.Error("the controller never led")
	}
	if p.logHas("forbidden") {
		t.Error("the controller's log has a forbidden error: the RBAC is not enough")
	}
	waitFor(t, 10*time.Second, "the pulls counter", func() bool {
		return p.metric(t, `kubefledged_pulls_total{result="pulled"}`) == float64(ic.Status.Pulls.Succeeded)
	})
	if got := p.metric(t, `kubefledged_imagecaches{status="Succeeded"}`); got < 1 {
		t.Errorf("kubefledged_imagecaches{status=\"Succeeded\"} = %v", got)
	}
	if got := p.metric(t, `workqueue_adds_total{name="kube-fledged"}`); got < 1 {
		t.Errorf("workqueue metrics missing: adds %v", got)
	}
}

// deploy/user-roles.yaml aggregates rights on ImageCaches into the built-in
// roles: in a namespace, a user bound to view may read them and no more, one
// bound to edit may also create, change and delete them, one bound to admin
// may also delete them all at once; none may write their status.
func TestUserRolesAggregate(t *testing.T) {
	roles := filepath.Join(projectRoot, "deploy", "user-roles.yaml")
	kubectl(t, "apply", "-f", roles)
	t.Cleanup(func() { kubectl(t, "delete", "-f", roles, "--ignore-not-found") })
	ns := newNamespace(t, "roles")
	for _, role := range []string{"view", "edit", "admin"} {
		kubectl(t, "-n", ns, "create", "rolebinding", "e2e-"+role, "--clusterrole="+role, "--user=e2e-"+role)
	}
	can := func(user string, args ...string) bool {
		return canI(t, kubeconfig, append(append([]string{}, args...), "-n", ns, "--as="+user)...)
	}
	ic := "imagecaches.kubefledged.io"
	want := []struct {
		user string
		verb []string
		ok   bool
	}{
		{"e2e-view", []string{"list", ic}, true},
		{"e2e-view", []string{"watch", ic}, true},
		{"e2e-view", []string{"create", ic}, false},
		{"e2e-view", []string{"patch", ic}, false},
		{"e2e-edit", []string{"create", ic}, true},
		{"e2e-edit", []string{"patch", ic}, true},
		{"e2e-edit", []string{"delete", ic}, true},
		{"e2e-edit", []string{"deletecollection", ic}, false},
		{"e2e-edit", []string{"update", ic, "--subresource=status"}, false},
		{"e2e-admin", []string{"deletecollection", ic}, true},
		{"e2e-admin", []string{"get", ic, "--subresource=status"}, true},
		{"e2e-admin", []string{"update", ic, "--subresource=status"}, false},
		{"e2e-nobody", []string{"list", ic}, false},
	}
	// The aggregation controller fills the built-in roles within moments.
	waitFor(t, 30*time.Second, "the roles to aggregate", func() bool {
		return can("e2e-admin", "deletecollection", ic) && can("e2e-view", "list", ic)
	})
	for _, w := range want {
		if got := can(w.user, w.verb...); got != w.ok {
			t.Errorf("%s may %v: %v, want %v", w.user, w.verb, got, w.ok)
		}
	}
	// The ServiceAccount of another namespace gets nothing from them.
	if can("system:serviceaccount:default:default", "list", ic) {
		t.Error("a ServiceAccount with no binding may list ImageCaches")
	}
}

// Two replicas: exactly one works; when it is killed, the other takes over
// within the lease time, the cache completes, and no pull was asked twice.
func TestLeaderElectionFailover(t *testing.T) {
	kc := deployed(t)
	ns := newNamespace(t, "leader")
	const lease = 6 * time.Second
	args := []string{"--leader-elect", "--leader-elect-resource-name=e2e-failover", "--leader-elect-lease-duration=6s",
		"--leader-elect-renew-deadline=4s", "--leader-elect-retry-period=1s", "--max-in-flight-jobs=3", "--images-per-job=1"}
	env := []string{"KUBEFLEDGED_NAMESPACE=" + sampleNS}
	a := startControllerAs(t, kc, env, args...)
	b := startControllerAs(t, kc, env, args...)
	waitFor(t, 30*time.Second, "a leader", func() bool { return a.logHas("Started leading") || b.logHas("Started leading") })
	leader, follower := a, b
	if b.logHas("Started leading") {
		leader, follower = b, a
	}
	jw := watchJobs(t, ns)
	applyCache(t, ns, `
  - images: [docker.io/library/nginx:1.27, docker.io/library/redis:7.4, docker.io/library/alpine:3.20]
    nodeSelector: {type: kwok}
`)
	waitIC(t, ns, "app", 2*time.Minute, "a quarter of the work done", func(ic *v1alpha2.ImageCache) bool {
		return ic.Status.Pulls.Succeeded >= 15
	})
	if follower.logHas("Started leading") {
		t.Fatal("both replicas lead")
	}
	if n := follower.metric(t, "kubefledged_jobs_created_total"); n != 0 {
		t.Errorf("the follower created %v Jobs", n)
	}
	if n := leader.metric(t, "kubefledged_jobs_created_total"); n < 15 {
		t.Errorf("the leader created %v Jobs", n)
	}
	leader.kill(t)
	killed := time.Now()
	waitFor(t, 2*lease, "the follower to take over", func() bool { return follower.logHas("Started leading") })
	took := time.Since(killed)
	t.Logf("the follower took over %v after the leader was killed (lease %v)", took.Round(100*time.Millisecond), lease)
	// The lease runs out at most one lease duration after the killed leader's
	// last renewal; the follower notices at its next jittered retry (<= 2.2s),
	// and the test polls the log.
	if took > lease+4*time.Second {
		t.Errorf("takeover took %v, more than the lease (%v) and a retry", took, lease)
	}
	ic := waitIC(t, ns, "app", 3*time.Minute, "Succeeded", done(v1alpha2.ImageCacheActionStatusSucceeded))
	if ic.Status.Pulls.Succeeded != 3*baseNodes {
		t.Errorf("pulls %+v", ic.Status.Pulls)
	}
	assertEachPairOnce(t, jw, 3*baseNodes)
	l, err := kubeClient.CoordinationV1().Leases(sampleNS).Get(context.Background(), "e2e-failover", metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
		t.Errorf("lease %v: %+v", err, l)
	}
}

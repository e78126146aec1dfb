package puller

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

func TestParseTolerations(t *testing.T) {
	got, err := ParseTolerations([]string{"*", "dedicated", "dedicated=gpu", "nvidia.com/gpu:NoSchedule", "team=a:NoExecute"})
	if err != nil {
		t.Fatal(err)
	}
	want := []corev1.Toleration{
		{Operator: corev1.TolerationOpExists},
		{Key: "dedicated", Operator: corev1.TolerationOpExists},
		{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu"},
		{Key: "nvidia.com/gpu", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
		{Key: "team", Operator: corev1.TolerationOpEqual, Value: "a", Effect: corev1.TaintEffectNoExecute},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseTolerations:\n got %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"", "not/a/key", "dedicated:Sometimes", "dedicated=not a value"} {
		if _, err := ParseTolerations([]string{bad}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestPermanentPullFailure: the kubelet's messages of a real node
// (containerd) and of the big registries, told apart.
func TestPermanentPullFailure(t *testing.T) {
	for _, tc := range []struct {
		reason, message string
		want            string
	}{
		{"ErrImagePull", `rpc error: code = NotFound desc = failed to pull and unpack image "127.0.0.1:16500/e2e/shell:no-such-tag": failed to resolve reference "127.0.0.1:16500/e2e/shell:no-such-tag": 127.0.0.1:16500/e2e/shell:no-such-tag: not found`, ReasonImageNotFound},
		{"ImagePullBackOff", `Back-off pulling image "127.0.0.1:16500/e2e/no-such-repository:v1": ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image "127.0.0.1:16500/e2e/no-such-repository:v1": not found`, ReasonImageNotFound},
		{"ErrImagePull", `failed to pull and unpack image "127.0.0.1:16501/e2e/private:wrong-secret": failed to resolve reference "127.0.0.1:16501/e2e/private:wrong-secret": pulling from host 127.0.0.1:16501 failed with status code [manifests wrong-secret]: 401 Unauthorized`, ReasonUnauthorized},
		{"ErrImagePull", `Error response from daemon: pull access denied for team/app, repository does not exist or may require 'docker login'`, ReasonUnauthorized},
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/nginx:1.27": no match for platform in manifest: not found`, ReasonPlatformNotSupported},
		{"ErrImagePull", `rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/library/nginx:1.27": no match for platform in manifest: not found`, ReasonPlatformNotSupported},
		{"ErrImagePull", `failed to pull and unpack image "fail.invalid/app:v1": failed to resolve reference "fail.invalid/app:v1": fail.invalid/app:v1: not found`, ReasonImageNotFound},
		{"InvalidImageName", `Failed to apply default image tag "Nginx": couldn't parse image name`, ReasonInvalidImageName},
		// May pass: the registry or the network.
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "r.example/a:1": failed to do request: Head "https://r.example/v2/a/manifests/1": dial tcp 10.0.0.1:443: connect: connection refused`, ""},
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "r.example/a:1": unexpected status from HEAD request to https://r.example/v2/a/manifests/1: 503 Service Unavailable`, ""},
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/a:1": toomanyrequests: You have reached your pull rate limit`, ""},
		{"ErrImagePull", `rpc error: code = Unknown desc = failed to pull and unpack image "r.example/a:1": dial tcp: lookup r.example on 10.96.0.10:53: no such host`, ""},
		{"ErrImagePull", `rpc error: code = DeadlineExceeded desc = context deadline exceeded`, ""},
		{"CreateContainerError", `not found`, ""},
	} {
		got, ok := PermanentPullFailure(tc.reason, tc.message)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s %q: %q %v, want %q", tc.reason, tc.message, got, ok, tc.want)
		}
	}
}

func TestParseResources(t *testing.T) {
	got, err := ParseResources("cpu=50m, memory=32Mi")
	if err != nil {
		t.Fatal(err)
	}
	want := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("32Mi")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := ParseResources(""); got != nil || err != nil {
		t.Errorf("empty: %v %v", got, err)
	}
	for _, bad := range []string{"cpu", "cpu=lots", "=10m", "memory=-1Mi"} {
		if _, err := ParseResources(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestJobContainerResources: every container of a pull and a delete pod
// has the configured requests and limits, or DefaultResources.
func TestJobContainerResources(t *testing.T) {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"}}
	custom := corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m")}}
	for _, tc := range []struct {
		name string
		set  corev1.ResourceRequirements
		want corev1.ResourceRequirements
	}{{"default", corev1.ResourceRequirements{}, DefaultResources()}, {"custom", custom, custom}} {
		cfg := Config{HelperImage: "helper:v1", Resources: tc.set}
		pull := NewPullJob(cfg, Batch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"a", "b"}, Epoch: 1})
		del := NewDeleteJob(cfg, DeleteBatch{Cache: ic, NodeName: "n", Hostname: "n", Images: []string{"a"}, Epoch: 1, Socket: "/s"})
		var containers []corev1.Container
		for _, spec := range []corev1.PodSpec{pull.Spec.Template.Spec, del.Spec.Template.Spec} {
			containers = append(append(containers, spec.InitContainers...), spec.Containers...)
		}
		for _, c := range containers {
			if !reflect.DeepEqual(c.Resources, tc.want) {
				t.Errorf("%s: container %s has %v, want %v", tc.name, c.Name, c.Resources, tc.want)
			}
		}
	}
}

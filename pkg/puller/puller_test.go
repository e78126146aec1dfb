package puller

import (
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

func TestJobNameDeterministicAndValid(t *testing.T) {
	long := strings.Repeat("a-very-long-cache-name.", 10)
	a := JobName(long, "uid-1", "node-1", 100, []string{"b", "a"})
	if a != JobName(long, "uid-1", "node-1", 100, []string{"a", "b"}) {
		t.Error("the name depends on the order of the images")
	}
	if len(a) > 52 {
		t.Errorf("name %q is %d characters; pods add a suffix to it", a, len(a))
	}
	if errs := validation.IsDNS1123Label(a); len(errs) > 0 {
		t.Errorf("name %q: %v", a, errs)
	}
	for _, other := range []string{
		JobName(long, "uid-2", "node-1", 100, []string{"a", "b"}),
		JobName(long, "uid-1", "node-2", 100, []string{"a", "b"}),
		JobName(long, "uid-1", "node-1", 101, []string{"a", "b"}),
		JobName(long, "uid-1", "node-1", 100, []string{"a"}),
		jobName(long, "uid-1", "node-1", 100, 1, []string{"a", "b"}),
	} {
		if other == a {
			t.Errorf("different work, same name %q", a)
		}
	}
}

func testJob(images []string, created time.Time) *batchv1.Job {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ns", UID: "u"}}
	cfg := Config{HelperImage: "h", PullPolicy: corev1.PullIfNotPresent, PullDeadline: time.Minute}
	job := NewPullJob(cfg, Batch{Cache: ic, NodeName: "n", Hostname: "n", Images: images, Epoch: 1})
	job.CreationTimestamp = metav1.NewTime(created)
	return job
}

package trim

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// BenchmarkCachedObjectSize measures the heap one object takes in an
// informer's cache, decoded from protobuf as the informers get it, whole and
// as ForCache leaves it: a Node whose kubelet reports 50 images, and a
// finished pull Job of 10 images and its pod. Run it with
//
//	go test -run '^$' -bench CachedObjectSize ./pkg/trim
//
// It reports bytes per object (B/whole, B/trimmed), not time.
func BenchmarkCachedObjectSize(b *testing.B) {
	type marshaler interface{ Marshal() ([]byte, error) }
	kinds := []struct {
		name   string
		obj    marshaler
		decode func([]byte) (any, error)
	}{
		{"node-50-images", realNode(), func(data []byte) (any, error) { n := &corev1.Node{}; return n, n.Unmarshal(data) }},
		{"pull-job-10-images", finishedJob(), func(data []byte) (any, error) { j := &batchv1.Job{}; return j, j.Unmarshal(data) }},
		{"pull-pod-succeeded", succeededPod(), func(data []byte) (any, error) { p := &corev1.Pod{}; return p, p.Unmarshal(data) }},
	}
	const n = 2000
	for _, k := range kinds {
		data, err := k.obj.Marshal()
		if err != nil {
			b.Fatal(err)
		}
		b.Run(k.name, func(b *testing.B) {
			for range b.N {
				whole := heapOf(b, n, func() (any, error) { return k.decode(data) })
				trimmed := heapOf(b, n, func() (any, error) {
					obj, err := k.decode(data)
					if err != nil {
						return nil, err
					}
					return ForCache(obj)
				})
				b.ReportMetric(whole, "B/whole")
				b.ReportMetric(trimmed, "B/trimmed")
			}
		})
	}
}

// heapOf returns the live heap, in bytes per object, of n objects made by build.
func heapOf(b *testing.B, n int, build func() (any, error)) float64 {
	b.Helper()
	keep := make([]any, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		obj, err := build()
		if err != nil {
			b.Fatal(err)
		}
		keep[i] = obj
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(keep)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

// realNode is a Node as a busy kubelet reports it: 50 images, each by
// digest and by tag, conditions, addresses, capacity, the usual labels.
func realNode() *corev1.Node {
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "ip-10-0-12-34.eu-west-1.compute.internal", UID: "0b9c1f8e-3c8e-4a4e-9a55-5f2f0d3c9a11",
			ResourceVersion: "123456789", CreationTimestamp: metav1.Now(),
			Labels: map[string]string{
				"kubernetes.io/hostname": "ip-10-0-12-34.eu-west-1.compute.internal", "kubernetes.io/os": "linux",
				"kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
				"node.kubernetes.io/instance-type": "m6i.2xlarge", "topology.kubernetes.io/region": "eu-west-1",
				"topology.kubernetes.io/zone": "eu-west-1a", "eks.amazonaws.com/nodegroup": "general-purpose",
			},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
		Spec: corev1.NodeSpec{ProviderID: "aws:///eu-west-1a/i-0123456789abcdef0", PodCIDR: "10.244.3.0/24"},
		Status: corev1.NodeStatus{
			NodeInfo: corev1.NodeSystemInfo{ContainerRuntimeVersion: "containerd://2.0.5", KubeletVersion: "v1.37.2", OSImage: "Amazon Linux 2023",
				KernelVersion: "6.1.0", MachineID: "ec2a0b0c0d0e0f", SystemUUID: "ec2a0b0c-0d0e-0f00-0000-000000000000", BootID: "b0b0"},
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.12.34"}, {Type: corev1.NodeHostName, Address: "ip-10-0-12-34"}},
		},
	}
	for _, t := range []corev1.NodeConditionType{corev1.NodeMemoryPressure, corev1.NodeDiskPressure, corev1.NodePIDPressure, corev1.NodeReady} {
		n.Status.Conditions = append(n.Status.Conditions, corev1.NodeCondition{Type: t, Status: corev1.ConditionFalse,
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "Kubelet" + string(t), Message: "kubelet reports " + string(t)})
	}
	for i := range 50 {
		repo := fmt.Sprintf("123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform-team-%02d/workloads/service-%03d-api", i%12, i)
		n.Status.Images = append(n.Status.Images, corev1.ContainerImage{
			Names:     []string{fmt.Sprintf("%s@sha256:%064x", repo, i+1), fmt.Sprintf("%s:v1.%d.%d-build.%d", repo, i%9, i%31, 1000+i)},
			SizeBytes: int64(20_000_000 + 7_919_000*i),
		})
	}
	return n
}

func pullBatch() puller.Batch {
	ic := &v1alpha2.ImageCache{ObjectMeta: metav1.ObjectMeta{Name: "platform-images", Namespace: "team-a", UID: "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"}}
	var imgs []string
	for i := range 10 {
		imgs = append(imgs, fmt.Sprintf("123456789012.dkr.ecr.eu-west-1.amazonaws.com/platform-team-%02d/workloads/service-%03d-api:v1.2.%d", i, i, i))
	}
	return puller.Batch{Cache: ic, NodeName: "ip-10-0-12-34.eu-west-1.compute.internal", Hostname: "ip-10-0-12-34.eu-west-1.compute.internal",
		Images: imgs, Epoch: 1764547200}
}

// finishedJob is a pull Job of 10 images as the API server returns it once
// the Job controller marked it Complete.
func finishedJob() *batchv1.Job {
	job := puller.NewPullJob(puller.Config{HelperImage: "ghcr.io/kube-fledged/kube-fledged:v0.1.0", PullPolicy: corev1.PullIfNotPresent,
		PullDeadline: 5 * time.Minute}, pullBatch())
	job.UID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	job.ResourceVersion = "123456790"
	job.CreationTimestamp = metav1.Now()
	job.Spec.Selector = &metav1.LabelSelector{MatchLabels: map[string]string{"batch.kubernetes.io/controller-uid": string(job.UID)}}
	job.Spec.Template.Labels["batch.kubernetes.io/controller-uid"] = string(job.UID)
	job.Spec.Template.Labels["batch.kubernetes.io/job-name"] = job.Name
	now := metav1.Now()
	job.Status = batchv1.JobStatus{StartTime: &now, CompletionTime: &now, Succeeded: 1, Ready: new(int32), Terminating: new(int32),
		UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{},
		Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", Message: "Reached expected number of succeeded pods", LastProbeTime: now, LastTransitionTime: now},
		}}
	return job
}

// succeededPod is that Job's pod once it Succeeded, as the kubelet reports it.
func succeededPod() *corev1.Pod {
	job := finishedJob()
	now := metav1.Now()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-x7k2p", GenerateName: job.Name + "-", Namespace: job.Namespace,
			UID: "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b", ResourceVersion: "123456791", CreationTimestamp: now,
			Labels: job.Spec.Template.Labels, Annotations: job.Spec.Template.Annotations, Finalizers: []string{"batch.kubernetes.io/job-tracking"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: job.Name, UID: job.UID,
				Controller: new(bool), BlockOwnerDeletion: new(bool)}}},
		Spec: job.Spec.Template.Spec,
	}
	pod.Spec.NodeName = "ip-10-0-12-34.eu-west-1.compute.internal"
	pod.Status = corev1.PodStatus{Phase: corev1.PodSucceeded, HostIP: "10.0.12.34", PodIP: "10.244.3.17", StartTime: &now, QOSClass: corev1.PodQOSBurstable,
		PodIPs: []corev1.PodIP{{IP: "10.244.3.17"}}, HostIPs: []corev1.HostIP{{IP: "10.0.12.34"}}}
	for _, t := range []corev1.PodConditionType{corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady, corev1.PodScheduled} {
		pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{Type: t, Status: corev1.ConditionFalse, LastTransitionTime: now, Reason: "PodCompleted"})
	}
	term := func(name, image string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: name, Image: image, ImageID: image + "@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ContainerID: "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now,
				ContainerID: "containerd://0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}}}
	}
	for _, c := range pod.Spec.InitContainers {
		pod.Status.InitContainerStatuses = append(pod.Status.InitContainerStatuses, term(c.Name, c.Image))
	}
	for _, c := range pod.Spec.Containers {
		pod.Status.ContainerStatuses = append(pod.Status.ContainerStatuses, term(c.Name, c.Image))
	}
	*pod.OwnerReferences[0].Controller = true
	return pod
}

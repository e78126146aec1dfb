package puller

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// nodeJob is what pull and delete Jobs have in common: one pod pinned to a
// node by its hostname label, with the configured tolerations, never
// restarted, with no service account token, and labelled and annotated so
// that the controller can map it back to its cache. A Job in the cache's namespace is
// owned by the cache; one in another namespace (a delete Job, in the
// controller's) cannot be, and names the cache's namespace instead.
type nodeJob struct {
	name      string
	namespace string
	account   string
	component string
	cache     *v1alpha2.ImageCache
	node      string
	hostname  string
	images    []string
	epoch     int64
	deadline  time.Duration
}

// build fills the shared fields into the pod spec the caller made (its
// containers and volumes) and wraps it in the Job.
func (j nodeJob) build(cfg Config, pod corev1.PodSpec) *batchv1.Job {
	imagesJSON, _ := json.Marshal(j.images)
	labels := map[string]string{
		LabelManagedBy: ManagedByValue,
		LabelComponent: j.component,
		LabelCacheUID:  string(j.cache.UID),
		LabelEpoch:     strconv.FormatInt(j.epoch, 10),
	}
	annotations := map[string]string{
		AnnotationCache:  j.cache.Name,
		AnnotationNode:   j.node,
		AnnotationImages: string(imagesJSON),
	}
	pod.NodeSelector = map[string]string{HostnameLabel: j.hostname}
	pod.Tolerations = slices.Clone(cfg.Tolerations)
	pod.RestartPolicy = corev1.RestartPolicyNever
	pod.AutomountServiceAccountToken = ptr.To(false)
	pod.ServiceAccountName = j.account
	pod.PriorityClassName = cfg.PriorityClassName
	pod.TerminationGracePeriodSeconds = ptr.To[int64](1)
	meta := metav1.ObjectMeta{Name: j.name, Namespace: j.namespace, Labels: labels, Annotations: annotations}
	if j.namespace == j.cache.Namespace {
		meta.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(j.cache, v1alpha2.SchemeGroupVersion.WithKind("ImageCache"))}
	} else {
		annotations[AnnotationCacheNamespace] = j.cache.Namespace
	}
	return &batchv1.Job{
		ObjectMeta: meta,
		Spec: batchv1.JobSpec{
			Parallelism:           ptr.To[int32](1),
			Completions:           ptr.To[int32](1),
			BackoffLimit:          ptr.To[int32](0),
			ActiveDeadlineSeconds: ptr.To(int64(j.deadline / time.Second)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: podAnnotations(annotations)},
				Spec:       pod,
			},
		},
	}
}

// podAnnotations are the annotations of a Job that its pod carries: those
// the controller reads from pods (the cache's name and namespace, to map a
// pod to its cache; whether to keep its containers' digests). The others
// (the images, the node, the deadlines) are read from the Job, and left
// out of the pod, which the control plane writes several times.
func podAnnotations(job map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range []string{AnnotationCache, AnnotationCacheNamespace, AnnotationReportDigests} {
		if v, ok := job[k]; ok {
			out[k] = v
		}
	}
	return out
}

// DefaultResources are the requests and limits of every container of the
// pull and delete pods unless the flags say otherwise: each only starts a
// tiny static binary. A pull Job of N images asks N times as much.
func DefaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
	}
}

// resources are a container's requests and limits: the configuration's,
// or DefaultResources when it has none.
func (cfg Config) resources() corev1.ResourceRequirements {
	if cfg.Resources.Requests == nil && cfg.Resources.Limits == nil {
		return DefaultResources()
	}
	return *cfg.Resources.DeepCopy()
}

// ParseResources reads a resource list written NAME=QUANTITY,... (say
// "cpu=10m,memory=16Mi"); empty gives none.
func ParseResources(spec string) (corev1.ResourceList, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	out := corev1.ResourceList{}
	for _, kv := range strings.Split(spec, ",") {
		name, value, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("%q is not NAME=QUANTITY", kv)
		}
		q, err := resource.ParseQuantity(value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if q.Sign() < 0 {
			return nil, fmt.Errorf("%s: %s is negative", name, value)
		}
		out[corev1.ResourceName(name)] = q
	}
	return out, nil
}

// CacheOf names the ImageCache a Job of the controller belongs to.
func CacheOf(job *batchv1.Job) (namespace, name string) {
	namespace = job.Namespace
	if ns, ok := job.Annotations[AnnotationCacheNamespace]; ok {
		namespace = ns
	}
	return namespace, job.Annotations[AnnotationCache]
}

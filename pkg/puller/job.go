package puller

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
)

// HelperMountPath is where the init container puts the helper binary, and
// HelperPath the binary itself, as every image container runs it.
const (
	HelperMountPath = "/kube-fledged"
	HelperPath      = HelperMountPath + "/fledged-helper"
	// PullPodUser is the user and group every container of a pull pod runs
	// as, whatever user its image declares: the helper needs no privilege,
	// and a fixed non-root user lets the pod pass Pod Security "restricted".
	PullPodUser  = 65532
	helperVolume = "kube-fledged-helper"
	// jobDeadlineSlack is added to the Job's activeDeadlineSeconds beyond the
	// pull time allowed to its images, so the controller's own deadline fires
	// first and reads the per-image outcome while the pod still exists.
	jobDeadlineSlack = 30 * time.Second
)

// Config is what every pull Job shares, from the controller's flags.
type Config struct {
	// HelperImage is the project's helper image; its fledged-helper binary
	// is copied into each pull pod by the init container.
	HelperImage string
	// CRIImage is the project's CRI remover image, whose fledged-cri
	// binary the delete Jobs run.
	CRIImage string
	// PullPolicy is the controller's pull policy (--image-pull-policy):
	// Always pulls every image by tag even where the node has it, unless
	// its cacheSpec entry says otherwise (Batch.Always).
	PullPolicy corev1.PullPolicy
	// PullDeadline is the time one image may take to pull.
	PullDeadline time.Duration
	// StartDeadline is the time a Job's pod may take to start (be created,
	// scheduled and past its helper) before the Job's images fail with the
	// reason it did not start. Zero turns the check off.
	StartDeadline time.Duration
	// ServiceAccountName and PriorityClassName are set on the pull pods
	// when not empty (PriorityClassName on the delete pods too).
	ServiceAccountName string
	PriorityClassName  string
	// DeleteNamespace is the namespace the delete Jobs run in, the
	// controller's own, so that no tenant namespace holds their privileged
	// pods; DeleteServiceAccountName is their service account there.
	DeleteNamespace          string
	DeleteServiceAccountName string
	// Tolerations are the pull and delete pods' (DefaultTolerations and
	// the startup taint, unless the flags say otherwise).
	Tolerations []corev1.Toleration
	// Resources are every container's of the pull and delete pods (none
	// set: DefaultResources).
	Resources corev1.ResourceRequirements
	// RetryTransient says that the controller tries again, by itself, a
	// pull that failed for a reason that may pass (Transient): a Job whose
	// images left are all failing to pull ends as soon as the rest is
	// settled, rather than after a pull deadline of the kubelet's own
	// backoff.
	RetryTransient bool
}

// Batch is one Job's work: images for one node of one cache.
type Batch struct {
	Cache *v1alpha2.ImageCache
	// NodeName is the node's name; Hostname its kubernetes.io/hostname label.
	NodeName string
	Hostname string
	// Images are the images to pull, as written in the cache's spec.
	Images []string
	// Epoch is the ledger epoch the Job belongs to.
	Epoch int64
	// PullingProvesAbsence says that the kubelet's Pulling event for an
	// image of this batch proves the image was not on the node
	// (AnnotationOwnership).
	PullingProvesAbsence bool
	// Deadlines are, by index in Images, the images' pull deadlines (zero
	// or absent: cfg.PullDeadline), each counted from the kubelet's Pulling
	// event for it (AnnotationPullDeadlines).
	Deadlines []time.Duration
	// Always says, by index in Images, which images are pulled even where
	// the node has them (pull policy Always); the others IfNotPresent.
	Always []bool
	// PulledAnyway lists the images pulled Always whose kubelet Pulling
	// event proves nothing, as the node had them, or may have
	// (AnnotationPulledAnyway).
	PulledAnyway []string
	// Attempt is the try of its images this Job is: 0 the first, and n
	// after n failed tries of one of them. It is part of the Job's name,
	// as a retry may pull the same images on the same node in the same
	// epoch.
	Attempt int
}

// JobName is deterministic from the cache, the node, the epoch and the
// images, so that a controller working from a stale cache (or restarted)
// asks for the same name again and gets AlreadyExists instead of a duplicate.
func JobName(cacheName string, cacheUID string, node string, epoch int64, images []string) string {
	return jobName(cacheName, cacheUID, node, epoch, 0, images)
}

func jobName(cacheName string, cacheUID string, node string, epoch int64, attempt int, images []string) string {
	sorted := append([]string(nil), images...)
	sort.Strings(sorted)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%d\x00%s", cacheUID, node, epoch, strings.Join(sorted, "\x00"))
	if attempt > 0 {
		fmt.Fprintf(h, "\x00attempt %d", attempt)
	}
	sum := hex.EncodeToString(h.Sum(nil))[:16]
	prefix := strings.ReplaceAll(cacheName, ".", "-")
	if len(prefix) > 34 {
		prefix = strings.TrimRight(prefix[:34], "-")
	}
	return prefix + "-" + sum
}

// ActiveDeadline is the Job's activeDeadlineSeconds, a safety net behind
// the controller's own deadlines: the time its pod may take to start, the
// pull deadline of each image (a kubelet may pull them one after another,
// each from its Pulling event), and some slack.
func ActiveDeadline(cfg Config, deadlines []time.Duration) time.Duration {
	return cfg.StartDeadline + sum(deadlines) + jobDeadlineSlack
}

func sum(ds []time.Duration) time.Duration {
	var t time.Duration
	for _, d := range ds {
		t += d
	}
	return t
}

// ImageDeadlines are the pull deadlines of a pull Job's images, in
// container order: its AnnotationPullDeadlines, else cfg.PullDeadline.
func ImageDeadlines(cfg Config, job *batchv1.Job, images []string) []time.Duration {
	own := map[string]string{}
	if raw, ok := job.Annotations[AnnotationPullDeadlines]; ok {
		_ = json.Unmarshal([]byte(raw), &own)
	}
	out := make([]time.Duration, len(images))
	for i, img := range images {
		out[i] = cfg.PullDeadline
		if d, err := time.ParseDuration(own[img]); err == nil && d > 0 {
			out[i] = d
		}
	}
	return out
}

// ContainerName is the name of the container that pulls the i-th image.
func ContainerName(i int) string { return "pull-" + strconv.Itoa(i) }

// NewPullJob builds the Job that pulls a batch of images onto one node.
func NewPullJob(cfg Config, b Batch) *batchv1.Job {
	restricted := &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	containers := make([]corev1.Container, 0, len(b.Images))
	anyAlways := false
	for i, img := range b.Images {
		policy := corev1.PullIfNotPresent
		if i < len(b.Always) && b.Always[i] {
			policy, anyAlways = corev1.PullAlways, true
		}
		containers = append(containers, corev1.Container{
			Name:                     ContainerName(i),
			Image:                    img,
			ImagePullPolicy:          policy,
			Command:                  []string{HelperPath},
			Args:                     []string{"pulled", img},
			Resources:                cfg.resources(),
			SecurityContext:          restricted,
			VolumeMounts:             []corev1.VolumeMount{{Name: helperVolume, MountPath: HelperMountPath, ReadOnly: true}},
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		})
	}
	job := nodeJob{
		name:      jobName(b.Cache.Name, string(b.Cache.UID), b.NodeName, b.Epoch, b.Attempt, b.Images),
		namespace: b.Cache.Namespace,
		account:   cfg.ServiceAccountName,
		component: ComponentPull,
		cache:     b.Cache,
		node:      b.NodeName,
		hostname:  b.Hostname,
		images:    b.Images,
		epoch:     b.Epoch,
		deadline:  ActiveDeadline(cfg, b.deadlines(cfg)),
	}.build(cfg, corev1.PodSpec{
		ImagePullSecrets: b.Cache.Spec.PodImagePullSecrets(),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To[int64](PullPodUser),
			RunAsGroup:     ptr.To[int64](PullPodUser),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		InitContainers: []corev1.Container{{
			Name:            "install-helper",
			Image:           cfg.HelperImage,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         []string{"/fledged-helper", "install", HelperPath},
			Resources:       cfg.resources(),
			SecurityContext: restricted,
			VolumeMounts:    []corev1.VolumeMount{{Name: helperVolume, MountPath: HelperMountPath}},
		}},
		Containers: containers,
		Volumes: []corev1.Volume{{
			Name: helperVolume,
			VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
				SizeLimit: ptr.To(resource.MustParse("32Mi")),
			}},
		}},
	})
	ownership := OwnershipNone
	if b.PullingProvesAbsence {
		ownership = OwnershipPulling
	}
	job.Annotations[AnnotationOwnership] = ownership
	own := map[string]string{}
	for i, d := range b.deadlines(cfg) {
		if d != cfg.PullDeadline {
			own[b.Images[i]] = d.String()
		}
	}
	if len(own) > 0 {
		data, _ := json.Marshal(own)
		job.Annotations[AnnotationPullDeadlines] = string(data)
	}
	if len(b.PulledAnyway) > 0 {
		data, _ := json.Marshal(b.PulledAnyway)
		job.Annotations[AnnotationPulledAnyway] = string(data)
	}
	if anyAlways {
		// Its pod keeps the digests its containers ran (trim).
		job.Annotations[AnnotationReportDigests] = "true"
	}
	job.Spec.Template.Annotations = podAnnotations(job.Annotations)
	return job
}

// deadlines are the batch's images' pull deadlines, in order.
func (b Batch) deadlines(cfg Config) []time.Duration {
	out := make([]time.Duration, len(b.Images))
	for i := range b.Images {
		out[i] = cfg.PullDeadline
		if i < len(b.Deadlines) && b.Deadlines[i] > 0 {
			out[i] = b.Deadlines[i]
		}
	}
	return out
}

// PulledAnyway returns the images of a pull Job whose Pulling event proves
// nothing, as they were pulled Always where the node had them, or may have
// (AnnotationPulledAnyway).
func PulledAnyway(job *batchv1.Job) map[string]bool {
	var list []string
	if err := json.Unmarshal([]byte(job.Annotations[AnnotationPulledAnyway]), &list); err != nil {
		return nil
	}
	out := make(map[string]bool, len(list))
	for _, img := range list {
		out[img] = true
	}
	return out
}

// PullingProvesAbsence says whether the kubelet's Pulling event for a
// container of a pull Job proves that the pull brought its image onto the
// node (AnnotationOwnership).
func PullingProvesAbsence(job *batchv1.Job) bool {
	return job.Annotations[AnnotationOwnership] == OwnershipPulling
}

// JobImages returns the images of a pull Job, in container order.
func JobImages(job *batchv1.Job) ([]string, error) {
	var images []string
	raw, ok := job.Annotations[AnnotationImages]
	if !ok {
		return nil, fmt.Errorf("job %s/%s has no %s annotation", job.Namespace, job.Name, AnnotationImages)
	}
	if err := json.Unmarshal([]byte(raw), &images); err != nil {
		return nil, fmt.Errorf("job %s/%s: annotation %s: %w", job.Namespace, job.Name, AnnotationImages, err)
	}
	return images, nil
}

// JobEpoch returns the epoch label of a Job (0 when absent or malformed).
func JobEpoch(job *batchv1.Job) int64 {
	e, _ := strconv.ParseInt(job.Labels[LabelEpoch], 10, 64)
	return e
}

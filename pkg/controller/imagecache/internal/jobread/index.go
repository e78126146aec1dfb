// Package jobread reads an ImageCache's Jobs into the pass: what each says
// of its pairs (Record), following it to its end (Follow: its deadlines,
// ending it, why it made no pod), the Jobs of earlier operations (let
// finish, and what they removed taken back), and the Jobs and pods of a
// cache from the informers' indexes (JobsOf, PodOf).
package jobread

import (
	"context"
	"fmt"
	"sort"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// DeleteOrphans deletes the delete Jobs of the cache at key that belong to
// no cache there now: all of them when it is gone or being deleted (uid
// ""), else those of an earlier cache of the same name. Owner references do
// that for the Jobs in the cache's namespace; these run in the controller's.
func (r *Reader) DeleteOrphans(ctx context.Context, key cache.ObjectName, uid types.UID) error {
	objs, err := r.jobs.ByIndex(deleteJobsByCacheIndex, key.String())
	if err != nil {
		return err
	}
	for _, o := range objs {
		job, ok := o.(*batchv1.Job)
		if !ok || (uid != "" && job.Labels[puller.LabelCacheUID] == string(uid)) || job.DeletionTimestamp != nil || r.writer.IsDeleting(job) {
			continue
		}
		klog.FromContext(ctx).V(2).Info("Deleting a delete Job whose cache is gone", "job", klog.KObj(job))
		if err := r.writer.Delete(ctx, job); err != nil {
			return err
		}
	}
	return nil
}

// JobsOf lists the Jobs (pull and delete) of a cache, by its UID.
func (r *Reader) JobsOf(ic *v1alpha2.ImageCache) ([]*batchv1.Job, error) {
	objs, err := r.jobs.ByIndex(jobsByCacheIndex, string(ic.UID))
	if err != nil {
		return nil, err
	}
	jobs := make([]*batchv1.Job, 0, len(objs))
	for _, o := range objs {
		job, ok := o.(*batchv1.Job)
		if !ok {
			continue
		}
		if ns, name := puller.CacheOf(job); ns != ic.Namespace || name != ic.Name {
			continue
		}
		owned := job.Namespace == ic.Namespace && metav1.IsControlledBy(job, ic)
		// A delete or pin Job runs in the controller's namespace, and names its cache.
		named := job.Namespace == r.cfg.DeleteNamespace && job.Annotations[puller.AnnotationCacheNamespace] != ""
		if owned || named {
			jobs = append(jobs, job)
		}
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].Name < jobs[j].Name })
	return jobs, nil
}

// PodOf returns the newest pod of a Job, or nil.
func (r *Reader) PodOf(job *batchv1.Job) *corev1.Pod {
	objs, err := r.pods.ByIndex(podsByJobIndex, string(job.UID))
	if err != nil {
		return nil
	}
	var newest *corev1.Pod
	for _, o := range objs {
		pod, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		if newest == nil || pod.CreationTimestamp.After(newest.CreationTimestamp.Time) {
			newest = pod
		}
	}
	return newest
}

func indexByLabel(label string) cache.IndexFunc {
	return func(obj any) ([]string, error) {
		m, err := metaOf(obj)
		if err != nil {
			return nil, err
		}
		if v := m.GetLabels()[label]; v != "" {
			return []string{v}, nil
		}
		return nil, nil
	}
}

// indexByCacheKey indexes the Jobs that name their cache's namespace (those
// that cannot be owned by it) by the cache's namespace/name.
func indexByCacheKey(obj any) ([]string, error) {
	job, ok := obj.(*batchv1.Job)
	if !ok || job.Annotations[puller.AnnotationCacheNamespace] == "" {
		return nil, nil
	}
	ns, name := puller.CacheOf(job)
	return []string{cache.ObjectName{Namespace: ns, Name: name}.String()}, nil
}

func indexByControllerUID(obj any) ([]string, error) {
	m, err := metaOf(obj)
	if err != nil {
		return nil, err
	}
	if ref := metav1.GetControllerOfNoCopy(m); ref != nil {
		return []string{string(ref.UID)}, nil
	}
	return nil, nil
}

func metaOf(obj any) (metav1.Object, error) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	m, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("unexpected object of type %T", obj)
	}
	return m, nil
}

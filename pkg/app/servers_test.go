package app

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	iclisters "kubefledged.io/kube-fledged/pkg/client/listers/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache"
)

// TestCacheMetricsOnTheLeaderOnly: the leader reports the caches by status
// and, per cache, its status, pulls by state (adding up to the desired) and
// its operation's start; a follower reports none of them, so that a sum
// over the replicas counts each cache once.
func TestCacheMetricsOnTheLeaderOnly(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	start := metav1.NewTime(time.Unix(1_800_000_000, 0))
	end := metav1.NewTime(start.Add(95 * time.Second))
	for _, ic := range []*v1alpha2.ImageCache{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web"}, Status: v1alpha2.ImageCacheStatus{
			Status: v1alpha2.ImageCacheActionStatusFailed, Reason: v1alpha2.ImageCacheReasonRefresh, StartTime: &start, CompletionTime: &end,
			Pulls: v1alpha2.PullCounts{Desired: 10, Succeeded: 7, AlreadyPresent: 2, Failed: 1, Pending: 0, Skipped: 2},
			Conditions: []metav1.Condition{{Type: v1alpha2.ConditionReady, Status: metav1.ConditionFalse, Reason: "PullsFailed"},
				{Type: v1alpha2.ConditionStalled, Status: metav1.ConditionTrue, Reason: "PullsFailed"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "new"}},
	} {
		if err := idx.Add(ic); err != nil {
			t.Fatal(err)
		}
	}
	leading := false
	slots := func() map[cache.ObjectName]imagecache.Slots {
		return map[cache.ObjectName]imagecache.Slots{{Namespace: "team-a", Name: "web"}: {InUse: 3}, {Namespace: "team-b", Name: "new"}: {Waiting: true}}
	}
	c := newCacheCollector(iclisters.NewImageCacheLister(idx), func() bool { return leading }, slots)
	if n := testutil.CollectAndCount(c); n != 0 {
		t.Errorf("a follower reports %d series, want none", n)
	}
	leading = true
	want := `
# HELP kubefledged_imagecache_condition 1 for each condition of each ImageCache (Ready, Reconciling, Stalled, Progressing) at its status and reason. Unlike kubefledged_imagecache_status, Ready stays False through the refreshes of a cache that failed, until one succeeds: alert on it.
# TYPE kubefledged_imagecache_condition gauge
kubefledged_imagecache_condition{name="web",namespace="team-a",reason="PullsFailed",status="False",type="Ready"} 1
kubefledged_imagecache_condition{name="web",namespace="team-a",reason="PullsFailed",status="True",type="Stalled"} 1
# HELP kubefledged_imagecache_jobs_in_flight Each ImageCache's Jobs whose pod has not finished: its part of --max-in-flight-jobs.
# TYPE kubefledged_imagecache_jobs_in_flight gauge
kubefledged_imagecache_jobs_in_flight{name="new",namespace="team-b"} 0
kubefledged_imagecache_jobs_in_flight{name="web",namespace="team-a"} 3
# HELP kubefledged_imagecache_operation_duration_seconds How long each ImageCache's latest operation took from its start to its end, by operation (once it has ended).
# TYPE kubefledged_imagecache_operation_duration_seconds gauge
kubefledged_imagecache_operation_duration_seconds{name="web",namespace="team-a",operation="ImageCacheRefresh"} 95
# HELP kubefledged_imagecache_operation_start_time_seconds When each ImageCache's latest operation started (Unix time), by operation.
# TYPE kubefledged_imagecache_operation_start_time_seconds gauge
kubefledged_imagecache_operation_start_time_seconds{name="web",namespace="team-a",operation="ImageCacheRefresh"} 1.8e+09
# HELP kubefledged_imagecache_pulls Each ImageCache's (node, image) pulls of its latest operation, by state: pulled, already_present, failed, pending, skipped; they add up to kubefledged_imagecache_pulls_desired.
# TYPE kubefledged_imagecache_pulls gauge
kubefledged_imagecache_pulls{name="new",namespace="team-b",state="already_present"} 0
kubefledged_imagecache_pulls{name="new",namespace="team-b",state="failed"} 0
kubefledged_imagecache_pulls{name="new",namespace="team-b",state="pending"} 0
kubefledged_imagecache_pulls{name="new",namespace="team-b",state="pulled"} 0
kubefledged_imagecache_pulls{name="new",namespace="team-b",state="skipped"} 0
kubefledged_imagecache_pulls{name="web",namespace="team-a",state="already_present"} 2
kubefledged_imagecache_pulls{name="web",namespace="team-a",state="failed"} 1
kubefledged_imagecache_pulls{name="web",namespace="team-a",state="pending"} 0
kubefledged_imagecache_pulls{name="web",namespace="team-a",state="pulled"} 5
kubefledged_imagecache_pulls{name="web",namespace="team-a",state="skipped"} 2
# HELP kubefledged_imagecache_pulls_desired Each ImageCache's (node, image) pulls wanted.
# TYPE kubefledged_imagecache_pulls_desired gauge
kubefledged_imagecache_pulls_desired{name="new",namespace="team-b"} 0
kubefledged_imagecache_pulls_desired{name="web",namespace="team-a"} 10
# HELP kubefledged_imagecache_status 1 for the status of each ImageCache's latest operation (Pending before the first).
# TYPE kubefledged_imagecache_status gauge
kubefledged_imagecache_status{name="new",namespace="team-b",status="Pending"} 1
kubefledged_imagecache_status{name="web",namespace="team-a",status="Failed"} 1
# HELP kubefledged_imagecache_waiting_for_slot 1 while an ImageCache waits for a Job slot (--max-in-flight-jobs), else 0.
# TYPE kubefledged_imagecache_waiting_for_slot gauge
kubefledged_imagecache_waiting_for_slot{name="new",namespace="team-b"} 1
kubefledged_imagecache_waiting_for_slot{name="web",namespace="team-a"} 0
# HELP kubefledged_imagecaches ImageCaches by the status of their latest operation (the leader's count).
# TYPE kubefledged_imagecaches gauge
kubefledged_imagecaches{status="Failed"} 1
kubefledged_imagecaches{status="Pending"} 1
kubefledged_imagecaches{status="Processing"} 0
kubefledged_imagecaches{status="Succeeded"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

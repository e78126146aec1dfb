package jobwrite

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestIsRefusal(t *testing.T) {
	jobs := schema.GroupResource{Group: "batch", Resource: "jobs"}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"quota: transient, retried with backoff", apierrors.NewForbidden(jobs, "j", errors.New("exceeded quota: jobs, requested: count/jobs.batch=1")), false},
		{"a policy that names quotas is still a refusal", apierrors.NewForbidden(jobs, "j", errors.New("policy: no jobs here, whatever the quota")), true},
		{"admission webhook", apierrors.NewForbidden(jobs, "j", errors.New(`admission webhook "policy" denied the request`)), true},
		{"invalid", apierrors.NewInvalid(schema.GroupKind{Group: "batch", Kind: "Job"}, "j", field.ErrorList{field.Required(field.NewPath("spec"), "")}), true},
		{"bad request", apierrors.NewBadRequest("no"), true},
		{"wrapped refusal", fmt.Errorf("creating: %w", apierrors.NewBadRequest("no")), true},
		{"throttled", apierrors.NewTooManyRequests("slow down", 1), false},
		{"timeout", apierrors.NewServerTimeout(jobs, "create", 1), false},
		{"server error", apierrors.NewInternalError(errors.New("etcd leader changed")), false},
		{"conflict", apierrors.NewConflict(jobs, "j", errors.New("changed")), false},
		{"already exists", apierrors.NewAlreadyExists(jobs, "j"), false},
		{"not an API error", errors.New("connection refused"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := isRefusal(tc.err); got != tc.want {
				t.Errorf("isRefusal(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// slowStart runs its calls in batches of 1, 2, 4, ... up to
// maxParallelWrites, and stops after the first batch with an error.
func TestSlowStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		n       int
		failAt  int // -1: none
		wantRan int
	}{
		{"none", 0, -1, 0},
		{"all", 100, -1, 100},
		{"the first fails: nothing more", 100, 0, 1},
		{"one in the third batch (3..6) fails: that batch ends", 100, 4, 7},
		{"late failure: the batch of 32 ends", 200, 70, 95},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ran := make([]bool, tc.n)
			err := slowStart(tc.n, func(i int) error {
				ran[i] = true
				if i == tc.failAt {
					return errors.New("no")
				}
				return nil
			})
			if (err != nil) != (tc.failAt >= 0) {
				t.Errorf("err %v", err)
			}
			count := 0
			for _, r := range ran {
				if r {
					count++
				}
			}
			if count != tc.wantRan {
				t.Errorf("ran %d calls, want %d", count, tc.wantRan)
			}
		})
	}
}

package status

import (
	"encoding/json"
	"sort"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	"kubefledged.io/kube-fledged/pkg/controller/imagecache/internal/pass"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/message"
)

// The status must fit in one object: etcd takes at most 1.5 MiB per
// request, and a status that does not fit would fail every write, so that
// not even the Jobs get cleaned up. Its parts are bounded so that the whole
// stays well under 1 MiB:
const (
	// maxFailureMessage is the longest failure message kept. A kubelet's
	// message ends with its cause ("not found", "401 Unauthorized"), so a
	// longer one keeps its start and its end.
	maxFailureMessage = 512
	// shortFailureMessage is the length messages are cut to when the
	// status is still too large.
	shortFailureMessage = 128
	// statusBudget is the most bytes the status may take as JSON; over it,
	// fitStatus shortens the messages and leaves failures out.
	statusBudget = 900 << 10
)

// The ledger is not in the status (only its header): its entries are in
// slices of a bounded number of nodes each (ledger.MaxNodesPerSlice).

// renderFailures returns the failures to list in status, and the count of those
// left out, per image. It lists at most MaxFailuresPerImage per image and
// MaxFailures in all, taking them in turn from each image (by node name),
// so that every failing image shows some. failedTotal is each image's
// number of failed pulls, which may exceed what the set holds.
func renderFailures(f pass.Failures, failedTotal map[string]int) (map[string]v1alpha2.NodeReasonMessageList, map[string]int32) {
	if len(f) == 0 {
		return nil, nil
	}
	imgs := make([]string, 0, len(f))
	lists := make(map[string]v1alpha2.NodeReasonMessageList, len(f))
	for img, m := range f {
		imgs = append(imgs, img)
		list := make(v1alpha2.NodeReasonMessageList, 0, len(m))
		for _, nrm := range m {
			list = append(list, nrm)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Node < list[j].Node })
		lists[img] = list
	}
	sort.Strings(imgs)
	out := make(map[string]v1alpha2.NodeReasonMessageList, len(f))
	total := 0
	for round := 0; round < v1alpha2.MaxFailuresPerImage && total < v1alpha2.MaxFailures; round++ {
		took := false
		for _, img := range imgs {
			if round >= len(lists[img]) || total >= v1alpha2.MaxFailures {
				continue
			}
			nrm := lists[img][round]
			nrm.Message = message.Shorten(nrm.Message, maxFailureMessage)
			out[img] = append(out[img], nrm)
			total++
			took = true
		}
		if !took {
			break
		}
	}
	var omitted map[string]int32
	for _, img := range imgs {
		if rest := max(failedTotal[img], len(lists[img])) - len(out[img]); rest > 0 {
			if omitted == nil {
				omitted = map[string]int32{}
			}
			omitted[img] = int32(rest)
		}
	}
	return out, omitted
}

// omittedTotal is the number of failures left out of status.failures.
func omittedTotal(st *v1alpha2.ImageCacheStatus) int {
	n := 0
	for _, c := range st.OmittedFailures {
		n += int(c)
	}
	return n
}

// fitStatus makes sure the status fits its budget: it shortens the failure
// messages, then leaves out half of the failures listed (counting them in
// omittedFailures) until it does. It returns whether it had to.
func fitStatus(st *v1alpha2.ImageCacheStatus) bool {
	if statusSize(st) <= statusBudget {
		return false
	}
	for _, lists := range []map[string]v1alpha2.NodeReasonMessageList{st.Failures, st.Unpinned} {
		for _, list := range lists {
			for i := range list {
				list[i].Message = message.Shorten(list[i].Message, shortFailureMessage)
			}
		}
	}
	for statusSize(st) > statusBudget && len(st.Failures) > 0 {
		listed := 0
		for _, list := range st.Failures {
			listed += len(list)
		}
		keep := listed / 2
		imgs := sortedKeys(st.Failures)
		// Keep the first entries of each image, in turn, as render does.
		kept := map[string]int{}
		for round := 0; keep > 0; round++ {
			took := false
			for _, img := range imgs {
				if keep > 0 && round < len(st.Failures[img]) {
					kept[img]++
					keep--
					took = true
				}
			}
			if !took {
				break
			}
		}
		for _, img := range imgs {
			list := st.Failures[img]
			if cut := len(list) - kept[img]; cut > 0 {
				if st.OmittedFailures == nil {
					st.OmittedFailures = map[string]int32{}
				}
				st.OmittedFailures[img] += int32(cut)
			}
			if kept[img] == 0 {
				delete(st.Failures, img)
			} else {
				st.Failures[img] = list[:kept[img]]
			}
		}
	}
	return true
}

// statusSize is the bytes the status adds to the object: its JSON, and the
// managedFields entry of each ledger node that the API server adds for it.
func statusSize(st *v1alpha2.ImageCacheStatus) int {
	data, err := json.Marshal(st)
	if err != nil {
		return 0
	}
	size := len(data)
	if st.Ledger != nil {
		for name := range st.Ledger.Nodes {
			size += len(name) + len(ledger.ManagedFieldsEntry)
		}
	}
	return size
}

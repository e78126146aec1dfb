package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	fakediscovery "k8s.io/client-go/discovery/fake"
	kubefake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	v1alpha2 "kubefledged.io/kube-fledged/pkg/apis/kubefledged/v1alpha2"
	icfake "kubefledged.io/kube-fledged/pkg/client/clientset/versioned/fake"
	"kubefledged.io/kube-fledged/pkg/ledger"
	"kubefledged.io/kube-fledged/pkg/puller"
)

// harness runs the commands over fake clientsets.
type harness struct {
	kube *kubefake.Clientset
	ic   *icfake.Clientset
	o    *options
}

// newHarness serves the objects, each cache's ledger recorded as the
// controller records it: its entries in slices, the header in its status.
func newHarness(t *testing.T, withCRD bool, objects ...runtime.Object) *harness {
	t.Helper()
	var out []runtime.Object
	for _, obj := range objects {
		ic, ok := obj.(*v1alpha2.ImageCache)
		if !ok || ic.Status.Ledger == nil || ic.Status.Ledger.Format > 1 {
			out = append(out, obj)
			continue
		}
		ic = ic.DeepCopy()
		l := ledger.Decode(ic.Status.Ledger)
		for _, c := range ledger.PlanSlices(l, nil, func(i int) string { return ledger.SliceName(ic, i) }).Put {
			out = append(out, ledger.NewSlice(ic, c))
		}
		ic.Status.Ledger = l.Header()
		out = append(out, ic)
	}
	return newHarnessAsIs(t, withCRD, out...)
}

// newHarnessAsIs serves the objects as they are: a cache's ledger all in
// its status is one an earlier release recorded.
func newHarnessAsIs(t *testing.T, withCRD bool, objects ...runtime.Object) *harness {
	t.Helper()
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	var kubeObjs, icObjs []runtime.Object
	for _, obj := range objects {
		switch obj.(type) {
		case *v1alpha2.ImageCache, *v1alpha2.ImageCacheSlice:
			icObjs = append(icObjs, obj)
		default:
			kubeObjs = append(kubeObjs, obj)
		}
	}
	h := &harness{kube: kubefake.NewClientset(kubeObjs...), ic: icfake.NewSimpleClientset(icObjs...)} // merge patches need no typed schema
	if withCRD {
		h.kube.Discovery().(*fakediscovery.FakeDiscovery).Resources = []*metav1.APIResourceList{{
			GroupVersion: v1alpha2.SchemeGroupVersion.String(),
			APIResources: []metav1.APIResource{{Name: "imagecaches", Namespaced: true, Kind: "ImageCache"}},
		}}
	}
	return h
}

// run runs a command line; out is what it printed, and code its exit code.
func (h *harness) run(t *testing.T, stdout io.Writer, args ...string) (errOut string, code int) {
	t.Helper()
	var stderr bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: stdout, ErrOut: &stderr}
	h.o = &options{streams: streams, config: genericclioptions.NewConfigFlags(true), now: time.Now, kube: h.kube, ic: h.ic}
	code = run(context.Background(), newCommand(h.o), streams, args)
	return stderr.String(), code
}

func readyNode(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Labels: map[string]string{puller.HostnameLabel: name}},
		Status:     corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}},
	}
}

func newCache(name string, led *v1alpha2.PullLedger, images ...string) *v1alpha2.ImageCache {
	return &v1alpha2.ImageCache{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, UID: types.UID("uid-" + name)},
		Spec:       v1alpha2.ImageCacheSpec{CacheSpec: []v1alpha2.CacheSpecImages{{Images: images}}},
		Status: v1alpha2.ImageCacheStatus{Status: v1alpha2.ImageCacheActionStatusSucceeded, Reason: v1alpha2.ImageCacheReasonCreate,
			Ledger: led},
	}
}

// pageNodes makes the fake clientset list nodes in pages of the request's
// limit, as the API server does.
func pageNodes(h *harness, nodes []*corev1.Node) {
	h.kube.PrependReactor("list", "nodes", func(a k8stesting.Action) (bool, runtime.Object, error) {
		opts := a.(k8stesting.ListActionImpl).ListOptions
		start := 0
		if opts.Continue != "" {
			start, _ = strconv.Atoi(opts.Continue)
		}
		end := len(nodes)
		if opts.Limit > 0 {
			end = min(end, start+int(opts.Limit))
		}
		list := &corev1.NodeList{}
		for _, n := range nodes[start:end] {
			list.Items = append(list.Items, *n)
		}
		if end < len(nodes) {
			list.Continue = strconv.Itoa(end)
		}
		return true, list, nil
	})
}

// firstWrite records how many node entries of the ledger were decoded when
// the first byte was printed.
type firstWrite struct {
	bytes.Buffer
	h       *harness
	decoded int
}

func (w *firstWrite) Write(p []byte) (int, error) {
	if w.Len() == 0 {
		w.decoded = w.h.o.reader.Decoded()
	}
	return w.Buffer.Write(p)
}

// `nodes` prints its first batch before it decodes the rest of the ledger,
// and a line per node in all: from a ledger in two slices, as from one all
// in the status (recorded by an earlier release), the same lines.
func TestNodesStreams(t *testing.T) {
	const total, chunk = 1200, 500
	images := []string{"registry.example/a:v1", "registry.example/b:v1", "registry.example/c:v1"}
	l := ledger.New(100)
	var nodes []*corev1.Node
	var objs []runtime.Object
	for i := range total {
		n := readyNode(fmt.Sprintf("node-%04d", i))
		nodes = append(nodes, n)
		for _, img := range images {
			l.Set(n.Name, img, ledger.Pulled)
		}
	}
	objs = append(objs, newCache("big", l.Encode(), images...))
	var printed []string
	for _, h := range []*harness{newHarness(t, true, objs...), newHarnessAsIs(t, true, objs...)} {
		pageNodes(h, nodes)
		out := &firstWrite{h: h}
		errOut, code := h.run(t, out, "nodes", "big", "-n", "apps", "--chunk-size", strconv.Itoa(chunk))
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) != total+1 {
			t.Fatalf("%d lines, want a header and %d nodes", len(lines), total)
		}
		if out.decoded == 0 || out.decoded > chunk {
			t.Errorf("the first line was printed after %d node entries were decoded, want at most one batch (%d)", out.decoded, chunk)
		}
		if got := h.o.reader.Decoded(); got != total {
			t.Errorf("%d entries decoded in all, want %d", got, total)
		}
		if f := strings.Fields(lines[1]); len(f) != 6 || f[0] != "node-0000" || f[1] != "warm" || f[2] != "3/3" {
			t.Errorf("first node line %q", lines[1])
		}
		printed = append(printed, out.String())
	}
	if slices, err := newHarness(t, true, objs...).ic.KubefledgedV1alpha2().ImageCacheSlices("apps").List(context.Background(),
		metav1.ListOptions{}); err != nil || len(slices.Items) != 2 {
		t.Errorf("the sliced ledger is not in two slices: %v", err)
	}
	if printed[0] != printed[1] {
		t.Error("a sliced ledger and one all in the status print differently")
	}
}

// The errors an operator meets say what to do, and exit 1.
func TestClearErrors(t *testing.T) {
	newer := ledger.New(1).Encode()
	newer.Format = 3
	cases := []struct {
		name    string
		withCRD bool
		objs    []runtime.Object
		react   func(h *harness)
		args    []string
		want    string
	}{{
		name: "no CRD", args: []string{"status", "web", "-n", "apps"},
		want: "error: the ImageCache API (imagecaches.kubefledged.io, v1alpha2) is not installed in this cluster",
	}, {
		name: "no CRD, a list", args: []string{"status", "-A"},
		react: func(h *harness) {
			h.ic.PrependReactor("list", "imagecaches", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewNotFound(schema.GroupResource{}, "")
			})
		},
		want: "error: the ImageCache API (imagecaches.kubefledged.io, v1alpha2) is not installed in this cluster",
	}, {
		name: "no cache", withCRD: true, args: []string{"nodes", "web", "-n", "apps"},
		want: `error: imagecache "web" not found in namespace "apps"`,
	}, {
		name: "no rights", withCRD: true, args: []string{"wait", "web", "-n", "apps"},
		react: func(h *harness) {
			h.ic.PrependReactor("get", "imagecaches", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(v1alpha2.Resource("imagecaches"), "web", fmt.Errorf("RBAC: denied"))
			})
		},
		want: `error: you may not get imagecaches.kubefledged.io in namespace "apps" (the kube-fledged-view role`,
	}, {
		name: "a newer ledger", withCRD: true, objs: []runtime.Object{newCache("web", newer, "registry.example/a:v1")},
		args: []string{"nodes", "web", "-n", "apps"},
		want: "error: cannot read imagecache apps/web: its status.ledger is in format 3, written by a newer controller; " +
			"this build reads format 2; use the kubectl-fledged of the controller's release",
	}, {
		name: "a newer ledger, node", withCRD: true, objs: []runtime.Object{readyNode("n1"), newCache("web", newer, "registry.example/a:v1")},
		args: []string{"node", "n1"},
		want: "", // the cache's line says it; checked below
	}, {
		name: "bad --state", withCRD: true, args: []string{"nodes", "web", "--state", "warmish"},
		want: `error: unknown --state "warmish": use one of pulled, present, failed, pending, skipped, owned, pinned`,
	}, {
		name: "bad -o", withCRD: true, args: []string{"status", "-o", "name"},
		want: `error: unknown output format "name": use wide, json or yaml`,
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.withCRD, tc.objs...)
			if tc.react != nil {
				tc.react(h)
			}
			var out bytes.Buffer
			errOut, code := h.run(t, &out, tc.args...)
			if tc.want == "" {
				if code != 1 || !strings.Contains(out.String(), "apps/web           unknown   cannot read imagecache apps/web: its status.ledger is in format 3") ||
					!strings.HasPrefix(errOut, "error: the state of node n1 in 1 cache could not be read") {
					t.Errorf("exit %d, out:\n%s\nerr: %s", code, out.String(), errOut)
				}
				return
			}
			if code != 1 || !strings.HasPrefix(errOut, tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant it to start with:\n%s", code, errOut, tc.want)
			}
		})
	}
}

// refresh --wait ends, with the reason, when the controller removes the
// annotation without running the refresh (as for a cache refused as too
// large).
func TestRefreshNotRun(t *testing.T) {
	ic := newCache("web", nil, "registry.example/a:v1")
	ic.Status.Status, ic.Status.Message = v1alpha2.ImageCacheActionStatusFailed, "too large"
	// The fake clientset's watch sends no bookmark: the informer lists.
	t.Setenv("KUBE_FEATURE_WatchListClient", "false")
	h := newHarness(t, true, ic)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx := context.Background()
		for range 200 {
			cur, err := h.ic.KubefledgedV1alpha2().ImageCaches("apps").Get(ctx, "web", metav1.GetOptions{})
			if err == nil {
				if _, asked := cur.Annotations[v1alpha2.AnnotationRefresh]; asked {
					delete(cur.Annotations, v1alpha2.AnnotationRefresh)
					if _, err := h.ic.KubefledgedV1alpha2().ImageCaches("apps").Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
						t.Error(err)
					}
					return
				}
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Error("the refresh annotation was never set")
	}()
	var out bytes.Buffer
	errOut, code := h.run(t, &out, "refresh", "web", "-n", "apps", "--wait", "--timeout", "20s")
	<-done
	want := "error: the controller removed the refresh annotation without running a refresh: imagecache apps/web is Failed (Create): too large\n"
	if code != 1 || !strings.HasSuffix(errOut, want) || out.String() != "imagecache.kubefledged.io/web: refresh asked\n" {
		t.Errorf("exit %d\nstdout: %q\nstderr: %q\nwant stderr to end with %q", code, out.String(), errOut, want)
	}
}

// Command chartcheck proves that the Helm chart (charts/kube-fledged) and the
// kustomize deployment (deploy/) install the same objects, so that the two
// install paths never drift. `make verify` runs it (hack/verify-chart.sh).
//
// It renders the chart with helm template and compares, object by object,
// after dropping the labels only Helm adds:
//   - the chart's defaults, but namespace.create=true (as deploy/ has it),
//     against kustomize build deploy/, the CRD included (both name the
//     images of the tree's release: the chart's appVersion, the
//     kustomization's images:);
//   - startupTaint.enabled=true against deploy/startup-taint/;
//   - userRoles.enabled=true against deploy/user-roles.yaml.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// helmLabels are the labels the chart adds to an object's metadata that
// deploy/ does not have: they say which release and chart made it.
var helmLabels = []string{
	"app.kubernetes.io/instance",
	"app.kubernetes.io/version",
	"app.kubernetes.io/managed-by",
	"helm.sh/chart",
}

type object = map[string]any

func main() {
	helm := flag.String("helm", "helm", "the helm binary")
	kubeVersion := flag.String("kube-version", "", "the Kubernetes version helm template renders for")
	kustomize := flag.String("kustomize", "kustomize", "the kustomize binary")
	root := flag.String("root", ".", "the project's root")
	flag.Parse()
	c := checker{helm: *helm, kustomize: *kustomize, kubeVersion: *kubeVersion, root: *root}
	if err := c.run(); err != nil {
		fmt.Fprintf(os.Stderr, "chartcheck: %v\n", err)
		os.Exit(1)
	}
	fmt.Println("chartcheck: the chart and deploy/ install the same objects")
}

type checker struct{ helm, kustomize, kubeVersion, root string }

func (c checker) run() error {
	// Each case: a value set on top of the chart's defaults, what deploy/ has
	// for it, whether the chart may render nothing more, and what its
	// Deployment must then say (a flag, a field).
	cases := []struct {
		set   string
		want  func() (map[string]object, error)
		exact bool
		has   []string
	}{
		{set: "namespace.create=true", want: func() (map[string]object, error) { return c.kustomization("deploy") }, exact: true},
		{set: "startupTaint.enabled=true", want: func() (map[string]object, error) { return c.kustomization("deploy/startup-taint") },
			// The controller tolerates its own taint, and runs before
			// the pods the taint holds.
			has: []string{"--node-startup-taint=kubefledged.io/warming", "map[effect:NoSchedule key:kubefledged.io/warming operator:Exists]",
				"priorityClassName:system-cluster-critical"}},
		{set: "userRoles.enabled=true", want: func() (map[string]object, error) { return c.files("deploy/user-roles.yaml") }},
	}
	deployment := key(object{"kind": "Deployment", "metadata": object{"name": "kube-fledged", "namespace": "kube-fledged"}})
	var errs []error
	for _, tc := range cases {
		want, err := tc.want()
		if err != nil {
			return err
		}
		chart, err := c.render(tc.set)
		if err != nil {
			return err
		}
		errs = append(errs, compare(tc.set, chart, want, tc.exact)...)
		for _, has := range tc.has {
			if !strings.Contains(fmt.Sprint(chart[deployment]), has) {
				errs = append(errs, fmt.Errorf("%s: the Deployment does not say %s", tc.set, has))
			}
		}
	}
	return errors.Join(errs...)
}

// render runs helm template, as release kube-fledged in namespace
// kube-fledged, with the CRDs, and returns the objects by key.
func (c checker) render(sets ...string) (map[string]object, error) {
	args := []string{"template", "kube-fledged", filepath.Join(c.root, "charts/kube-fledged"),
		"--namespace", "kube-fledged", "--include-crds"}
	if c.kubeVersion != "" {
		args = append(args, "--kube-version", c.kubeVersion)
	}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(c.helm, args...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, stderr.String())
	}
	return parse("helm template --set "+strings.Join(sets, ","), out.Bytes())
}

// kustomization builds DIR with kustomize, as kubectl apply -k does, and
// returns the objects by key.
func (c checker) kustomization(dir string) (map[string]object, error) {
	var out, stderr bytes.Buffer
	cmd := exec.Command(c.kustomize, "build", filepath.Join(c.root, dir))
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kustomize build %s: %v: %s", dir, err, stderr.String())
	}
	return parse("kustomize build "+dir, out.Bytes())
}

func (c checker) files(paths ...string) (map[string]object, error) {
	objs := map[string]object{}
	for _, p := range paths {
		raw, err := os.ReadFile(filepath.Join(c.root, p))
		if err != nil {
			return nil, err
		}
		got, err := parse(p, raw)
		if err != nil {
			return nil, err
		}
		for k, o := range got {
			if _, dup := objs[k]; dup {
				return nil, fmt.Errorf("%s: %s is there twice", p, k)
			}
			objs[k] = o
		}
	}
	return objs, nil
}

// parse splits a YAML stream into objects, keyed by kind, namespace and name.
func parse(source string, raw []byte) (map[string]object, error) {
	objs := map[string]object{}
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	for {
		var o object
		if err := d.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if len(o) == 0 {
			continue
		}
		k := key(o)
		if _, dup := objs[k]; dup {
			return nil, fmt.Errorf("%s: %s is there twice", source, k)
		}
		objs[k] = o
	}
}

func key(o object) string {
	md, _ := o["metadata"].(object)
	ns, _ := md["namespace"].(string)
	name, _ := md["name"].(string)
	kind, _ := o["kind"].(string)
	if ns == "" {
		return kind + " " + name
	}
	return kind + " " + ns + "/" + name
}

// normalize drops what only Helm adds: its labels on the object's metadata.
func normalize(o object) object {
	md, ok := o["metadata"].(object)
	if !ok {
		return o
	}
	if labels, ok := md["labels"].(object); ok {
		for _, l := range helmLabels {
			delete(labels, l)
		}
		if len(labels) == 0 {
			delete(md, "labels")
		}
	}
	return o
}

// compare reports each object of want that the chart renders differently or
// not at all, and, when exact, each object the chart renders beyond want.
func compare(what string, chart, want map[string]object, exact bool) []error {
	var errs []error
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		got, ok := chart[k]
		if !ok {
			errs = append(errs, fmt.Errorf("%s: the chart does not render %s", what, k))
			continue
		}
		g, w := normalize(got), normalize(want[k])
		if !reflect.DeepEqual(g, w) {
			gy, _ := yaml.Marshal(g)
			wy, _ := yaml.Marshal(w)
			errs = append(errs, fmt.Errorf("%s: %s differs:\n%s", what, k, lineDiff(string(wy), string(gy))))
		}
	}
	if exact {
		var extra []string
		for k := range chart {
			if _, ok := want[k]; !ok {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		for _, k := range extra {
			errs = append(errs, fmt.Errorf("%s: the chart renders %s, which deploy/ does not have", what, k))
		}
	}
	return errs
}

// lineDiff shows the lines of want missing from got ("- deploy/") and of got
// missing from want ("+ chart"), in order: enough to find a drift.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	in := func(lines []string) map[string]int {
		m := map[string]int{}
		for _, l := range lines {
			m[l]++
		}
		return m
	}
	wm, gm := in(wl), in(gl)
	var b strings.Builder
	for _, l := range wl {
		if gm[l] > 0 {
			gm[l]--
			continue
		}
		fmt.Fprintf(&b, "  - deploy/: %s\n", l)
	}
	for _, l := range gl {
		if wm[l] > 0 {
			wm[l]--
			continue
		}
		fmt.Fprintf(&b, "  + chart:   %s\n", l)
	}
	return b.String()
}

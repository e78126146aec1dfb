package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// apiPage lists every field of the API's kinds from their CRDs' schemas:
// its type, constraints and description, as kubectl explain shows them.
func apiPage(root string) (string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "# The ImageCache API\n\n")
	for _, kind := range []struct{ file, intro string }{
		{"kubefledged.io_imagecaches.yaml", ""},
		{"kubefledged.io_imagecacheslices.yaml", "The controller keeps the ledger of a cache over many nodes in ImageCacheSlices of its " +
			"own, in the cache's namespace, owned by the cache and labelled with its name and UID: read them, never write them.\n\n"},
	} {
		if err := crdFields(&b, filepath.Join(root, "deploy", "crd", kind.file), kind.intro); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}

// crdFields writes one CRD's kind: what it is, then a row per field.
func crdFields(b *strings.Builder, file, intro string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var crd struct {
		Spec struct {
			Group string
			Names struct {
				Kind, Plural string
				ShortNames   []string
				Categories   []string
			}
			Versions []struct {
				Name   string
				Schema struct {
					OpenAPIV3Schema map[string]any `json:"openAPIV3Schema"`
				}
			}
		}
	}
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		return err
	}
	for _, v := range crd.Spec.Versions {
		if intro != "" {
			fmt.Fprintf(b, "\n## %s\n\n%s", crd.Spec.Names.Kind, intro)
		}
		fmt.Fprintf(b, "`%s/%s`, kind `%s` (`kubectl get %s`, or `%s`), from the CRD's schema (`deploy/crd`): every field, its "+
			"type and rules, and its description, which `kubectl explain %s.FIELD` prints too. The API server "+
			"refuses an object that breaks a rule, with a message that names the field.\n\n",
			crd.Spec.Group, v.Name, crd.Spec.Names.Kind, crd.Spec.Names.Plural, strings.Join(crd.Spec.Names.ShortNames, "`, `"),
			strings.ToLower(crd.Spec.Names.Kind))
		b.WriteString("| Field | Type | Rules | Description |\n| --- | --- | --- | --- |\n")
		props, _ := v.Schema.OpenAPIV3Schema["properties"].(map[string]any)
		names := make([]string, 0, len(props))
		for n := range props {
			if n != "apiVersion" && n != "kind" && n != "metadata" {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		for _, top := range names {
			if s, ok := props[top].(map[string]any); ok {
				walk(b, top, s, required(v.Schema.OpenAPIV3Schema)[top])
			}
		}
	}
	return nil
}

func required(s map[string]any) map[string]bool {
	out := map[string]bool{}
	if r, ok := s["required"].([]any); ok {
		for _, x := range r {
			out[fmt.Sprint(x)] = true
		}
	}
	return out
}

// walk writes a field's row, then its fields'.
func walk(b *strings.Builder, path string, s map[string]any, req bool) {
	typ := fmt.Sprint(s["type"])
	if s["type"] == nil {
		typ = "any"
	}
	if items, ok := s["items"].(map[string]any); ok && typ == "array" {
		typ = "[]" + fmt.Sprint(items["type"])
	}
	if add, ok := s["additionalProperties"].(map[string]any); ok {
		inner := fmt.Sprint(add["type"])
		if ai, ok := add["items"].(map[string]any); ok && inner == "array" {
			inner = "[]" + fmt.Sprint(ai["type"])
		}
		typ = "map[string]" + inner
	}
	var rules []string
	if req {
		rules = append(rules, "required")
	}
	rules = append(rules, constraints(s)...)
	if items, ok := s["items"].(map[string]any); ok {
		for _, r := range constraints(items) {
			rules = append(rules, "each: "+r)
		}
	}
	fmt.Fprintf(b, "| %s | %s | %s | %s |\n", code(path), code(typ), cell(strings.Join(rules, "; ")), cell(fmt.Sprint(orEmpty(s["description"]))))
	// The fields of an object, of a list's objects, of a map's values.
	for _, sub := range []struct {
		s      any
		suffix string
	}{{s, ""}, {s["items"], "[]"}, {s["additionalProperties"], "{}"}} {
		m, ok := sub.s.(map[string]any)
		if !ok {
			continue
		}
		if inner, ok := m["items"].(map[string]any); ok && sub.suffix == "{}" {
			m, sub.suffix = inner, "{}[]"
		}
		props, ok := m["properties"].(map[string]any)
		if !ok {
			continue
		}
		req := required(m)
		names := make([]string, 0, len(props))
		for n := range props {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			walk(b, path+sub.suffix+"."+n, props[n].(map[string]any), req[n])
		}
	}
}

func orEmpty(v any) any {
	if v == nil {
		return ""
	}
	return v
}

// constraints says a schema's rules in words.
func constraints(s map[string]any) []string {
	var out []string
	add := func(key, format string) {
		if v, ok := s[key]; ok {
			out = append(out, fmt.Sprintf(format, v))
		}
	}
	if e, ok := s["enum"].([]any); ok {
		var vals []string
		for _, v := range e {
			if s := fmt.Sprint(v); s != "" {
				vals = append(vals, s)
			} else {
				vals = append(vals, `""`)
			}
		}
		out = append(out, "one of "+strings.Join(vals, ", "))
	}
	add("minItems", "at least %v items")
	add("maxItems", "at most %v items")
	add("minLength", "at least %v characters")
	add("maxLength", "at most %v characters")
	add("maxProperties", "at most %v keys")
	add("minimum", "at least %v")
	add("maximum", "at most %v")
	if p, ok := s["pattern"].(string); ok {
		if len(p) > 80 {
			out = append(out, "matches a pattern (see the CRD)")
		} else {
			out = append(out, "matches "+code(p))
		}
	}
	add("x-kubernetes-list-type", "list type %v")
	add("default", "default %v")
	if vs, ok := s["x-kubernetes-validations"].([]any); ok {
		for _, v := range vs {
			if m, ok := v.(map[string]any); ok {
				out = append(out, fmt.Sprint(orEmpty(m["message"])))
			}
		}
	}
	return out
}

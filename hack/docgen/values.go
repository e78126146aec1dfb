package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// valuesPage lists the chart's values from values.yaml, each with the
// comment above it (and after it, on its line) and its default, and the
// rules of values.schema.json.
func valuesPage(root string) (string, error) {
	dir := filepath.Join(root, "charts", "kube-fledged")
	raw, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return "", err
	}
	rawSchema, err := os.ReadFile(filepath.Join(dir, "values.schema.json"))
	if err != nil {
		return "", err
	}
	var schema map[string]any
	if err := json.Unmarshal(rawSchema, &schema); err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("# The Helm chart's values\n\n")
	b.WriteString("From `charts/kube-fledged/values.yaml` and its schema, `values.schema.json`: a value of the wrong type, ")
	b.WriteString("an unknown key or one that breaks a rule fails `helm install` with a message that names it.\n\n")
	b.WriteString("| Value | Default | Rules | Description |\n| --- | --- | --- | --- |\n")
	type level struct {
		indent int
		key    string
	}
	var stack []level
	var comment []string
	for _, line := range strings.Split(string(raw), "\n") {
		trimmed := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " "))
		switch {
		case trimmed == "":
			comment = nil
			continue
		case strings.HasPrefix(trimmed, "#"):
			comment = append(comment, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			continue
		case strings.HasPrefix(trimmed, "- "), !strings.Contains(trimmed, ":"):
			continue // a list item of a default
		}
		key, rest, _ := strings.Cut(trimmed, ":")
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		stack = append(stack, level{indent, key})
		value, inline, _ := strings.Cut(rest, " #")
		value = strings.TrimSpace(value)
		desc := strings.Join(comment, " ")
		if inline = strings.TrimSpace(inline); inline != "" {
			desc = strings.TrimSpace(desc + " Default when empty: " + inline + ".")
		}
		comment = nil
		var path []string
		for _, l := range stack {
			path = append(path, l.key)
		}
		if value == "" && desc == "" {
			continue // a map whose keys follow
		}
		rules := schemaRules(schema, path)
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", code(strings.Join(path, ".")), code(value), cell(strings.Join(rules, "; ")), cell(desc))
	}
	return b.String(), nil
}

// schemaRules says the schema's rules of a value.
func schemaRules(schema map[string]any, path []string) []string {
	s := schema
	for _, k := range path {
		props, ok := s["properties"].(map[string]any)
		if !ok {
			return nil
		}
		if s, ok = props[k].(map[string]any); !ok {
			return nil
		}
	}
	var out []string
	switch t := s["type"].(type) {
	case string:
		out = append(out, t)
	case []any:
		var ts []string
		for _, x := range t {
			ts = append(ts, fmt.Sprint(x))
		}
		out = append(out, strings.Join(ts, " or "))
	}
	out = append(out, constraints(s)...)
	if d, ok := s["description"].(string); ok {
		out = append(out, d)
	}
	return out
}

// chartReadme is the chart's README, which helm show readme and Artifact
// Hub display: how to install it, and its values (valuesPage's table).
func chartReadme(root string) (string, error) {
	values, err := valuesPage(root)
	if err != nil {
		return "", err
	}
	_, table, _ := strings.Cut(values, "| Value |")
	var b strings.Builder
	b.WriteString(`# kube-fledged

kube-fledged caches container images on worker nodes: an ImageCache lists images, each list with an optional node
selector, and the controller pulls them onto the matching nodes ahead of time, with a Job per node, and writes the
outcome, node by node, to the ImageCache's status.

## Install

` + "```" + `sh
helm install kube-fledged kube-fledged-X.Y.Z.tgz --namespace kube-fledged --create-namespace
kubectl label namespace kube-fledged pod-security.kubernetes.io/enforce=privileged
` + "```" + `

The Jobs that remove images (a purge) run in the controller's namespace as root with the node's runtime socket,
which Pod Security ` + "`baseline`" + ` refuses: where your cluster enforces ` + "`baseline`" + ` or stricter, that namespace needs the
` + "`privileged`" + ` label, which Helm cannot set on a namespace it creates (or set ` + "`namespace.create=true`" + ` and
` + "`namespace.name`" + `, with the release in another namespace, to let the chart own it). The CRD is in ` + "`crds/`" + `: Helm
installs it, never upgrades or deletes it (` + "`kubectl apply --server-side -f crds/`" + ` after an upgrade that changes it).

The project's documentation: https://github.com/kube-fledged/kube-fledged

## Values

| Value |`)
	b.WriteString(table)
	return b.String(), nil
}

package main

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"kubefledged.io/kube-fledged/pkg/options"
)

// flagsPage lists the controller's flags, as fledged --help does.
func flagsPage(string) (string, error) {
	fs, _ := options.NewFlagSet(options.New())
	var b strings.Builder
	b.WriteString("# The controller's flags\n\n")
	b.WriteString("`fledged --help` prints the same. An empty default means none; durations are Go durations (`90s`, `5m`).\n")
	b.WriteString("The Helm chart sets them from `controller.*` ([helm-values.md](helm-values.md)).\n\n")
	b.WriteString("| Flag | Type | Default | Description |\n| --- | --- | --- | --- |\n")
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		name := "--" + f.Name
		if f.Shorthand != "" {
			name = "-" + f.Shorthand + ", " + name
		}
		typ, usage := pflag.UnquoteUsage(f)
		// The default images carry the binary's version.
		usage = strings.ReplaceAll(usage, options.DefaultHelperImage(), options.ImageRepository+"-helper:<the binary's version>")
		usage = strings.ReplaceAll(usage, options.DefaultCRIImage(), options.ImageRepository+"-cri:<the binary's version>")
		def := f.DefValue
		if def == "[]" {
			def = ""
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", code(name), typ, code(def), cell(usage))
	})
	return b.String(), nil
}

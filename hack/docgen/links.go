package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var (
	linkPattern = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	codeSpan    = regexp.MustCompile("`[^`]*`")
	notAnchor   = regexp.MustCompile(`[^\w\- ]`)
)

// checkLinks finds the relative links of README.md and docs/ that name a
// file that is not there, or a heading that a page does not have.
func checkLinks(root string) []string {
	pages, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	more, _ := filepath.Glob(filepath.Join(root, "docs", "*", "*.md"))
	pages = append(append([]string{filepath.Join(root, "README.md"), filepath.Join(root, "CHANGELOG.md")}, pages...), more...)
	var bad []string
	for _, page := range pages {
		raw, err := os.ReadFile(page)
		if err != nil {
			bad = append(bad, err.Error())
			continue
		}
		rel, _ := filepath.Rel(root, page)
		inFence := false
		for n, line := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(line, "```") {
				inFence = !inFence
			}
			if inFence {
				continue
			}
			for _, m := range linkPattern.FindAllStringSubmatch(codeSpan.ReplaceAllString(line, ""), -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				path := page
				if file != "" {
					path = filepath.Join(filepath.Dir(page), file)
				}
				if _, err := os.Stat(path); err != nil {
					bad = append(bad, fmt.Sprintf("%s:%d: %s: no such file", rel, n+1, target))
					continue
				}
				if anchor != "" && strings.HasSuffix(path, ".md") && !hasHeading(path, anchor) {
					bad = append(bad, fmt.Sprintf("%s:%d: %s: no such heading", rel, n+1, target))
				}
			}
		}
	}
	return bad
}

// hasHeading says whether a Markdown page has a heading whose GitHub anchor
// is anchor.
func hasHeading(path, anchor string) bool {
	raw, err := os.ReadFile(path)
	if err != nil {
		return false
	}
	inFence := false
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		if strings.ReplaceAll(notAnchor.ReplaceAllString(h, ""), " ", "-") == anchor {
			return true
		}
	}
	return false
}

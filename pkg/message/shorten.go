// Package message shortens the messages kube-fledged passes on (a kubelet's
// or a runtime's) to fit a bound, keeping what matters most in them.
package message

import "unicode/utf8"

// mark stands for the bytes a shortened message leaves out.
const mark = " [...] "

// Shorten cuts s to at most n bytes, keeping its start and its end and
// marking the cut, on UTF-8 boundaries. A kubelet's or a runtime's message
// ends with its cause ("not found", "401 Unauthorized"), so the end gets
// the larger part. Below the length of the mark, it keeps only the start.
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= len(mark) {
		return cutAt(s, max(n, 0))
	}
	head, tail := (n-len(mark))/3, n-len(mark)-(n-len(mark))/3
	start := len(s) - tail
	for start < len(s) && !utf8.RuneStart(s[start]) {
		start++
	}
	return cutAt(s, head) + mark + s[start:]
}

// cutAt returns the longest start of s of at most n bytes that ends on a
// UTF-8 boundary.
func cutAt(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

package message

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShorten(t *testing.T) {
	long := "ErrImagePull: failed to pull " + strings.Repeat("é", 300) + ": 401 Unauthorized"
	for _, n := range []int{0, 3, 7, 8, 20, 128, 512} {
		got := Shorten(long, n)
		if len(got) > n {
			t.Errorf("Shorten(_, %d) is %d bytes", n, len(got))
		}
		if !utf8.ValidString(got) {
			t.Errorf("Shorten(_, %d) cut a character: %q", n, got)
		}
		if n >= 128 && (!strings.HasPrefix(got, "ErrImagePull") || !strings.HasSuffix(got, "401 Unauthorized") || !strings.Contains(got, mark)) {
			t.Errorf("Shorten(_, %d) = %q: want the start, the mark and the cause at the end", n, got)
		}
	}
	if s := "short"; Shorten(s, 5) != s || Shorten(s, 100) != s {
		t.Error("a message that fits was changed")
	}
}

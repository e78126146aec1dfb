package message

import "testing"

func TestListSome(t *testing.T) {
	for _, tc := range []struct {
		items []string
		n     int
		want  string
	}{
		{nil, 3, ""},
		{[]string{"a"}, 3, "a"},
		{[]string{"a", "b", "c"}, 3, "a, b, c"},
		{[]string{"a", "b", "c", "d", "e"}, 3, "a, b, c and 2 more"},
	} {
		if got := ListSome(tc.items, tc.n); got != tc.want {
			t.Errorf("ListSome(%q, %d) = %q, want %q", tc.items, tc.n, got, tc.want)
		}
	}
	if Plural(1, "node", "nodes") != "node" || Plural(0, "node", "nodes") != "nodes" || Plural(2, "node", "nodes") != "nodes" {
		t.Error("Plural")
	}
}

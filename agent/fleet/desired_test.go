package fleet

import (
	"reflect"
	"testing"
)

// put merges scopes item by item: a later scope's item replaces an earlier
// one of the same name in its place; new names go to the end.
func TestPut(t *testing.T) {
	type item struct{ name, from string }
	cases := []struct {
		name   string
		scopes [][]item
		want   []item
	}{
		{"one scope", [][]item{{{"a", "g"}, {"b", "g"}}}, []item{{"a", "g"}, {"b", "g"}}},
		{"device overrides group in place", [][]item{{{"a", "g"}, {"b", "g"}}, {{"a", "d"}}}, []item{{"a", "d"}, {"b", "g"}}},
		{"device adds", [][]item{{{"a", "g"}}, {{"c", "d"}, {"a", "d"}}}, []item{{"a", "d"}, {"c", "d"}}},
		{"three scopes", [][]item{{{"a", "g1"}}, {{"b", "g2"}, {"a", "g2"}}, {{"b", "d"}}}, []item{{"a", "g2"}, {"b", "d"}}},
		{"empty", nil, nil},
	}
	for _, c := range cases {
		var got []item
		at := map[string]int{}
		for _, sc := range c.scopes {
			for _, it := range sc {
				got = put(got, at, it.name, it)
			}
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

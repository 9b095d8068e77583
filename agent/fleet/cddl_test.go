package fleet

import (
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestCDDLMatchesTypes keeps protocol.cddl and the Go types in step: for
// each map rule, the integer keys in the CDDL are exactly the keyasint
// tags of the Go struct, and optional (?) exactly where the Go field is
// omitempty.
func TestCDDLMatchesTypes(t *testing.T) {
	b, err := os.ReadFile("protocol.cddl")
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]map[int]bool{} // rule → key → optional
	ruleRE := regexp.MustCompile(`(?m)^([a-z-]+) = \{`)
	keyRE := regexp.MustCompile(`(\?\s*)?(\d+) =>`)
	src := string(b)
	for _, m := range ruleRE.FindAllStringSubmatchIndex(src, -1) {
		name := src[m[2]:m[3]]
		body := src[m[1]:]
		depth, end := 1, 0
		for i, c := range body {
			if c == '{' {
				depth++
			} else if c == '}' {
				depth--
				if depth == 0 {
					end = i
					break
				}
			}
		}
		keys := map[int]bool{}
		for _, line := range strings.Split(body[:end], "\n") {
			line, _, _ = strings.Cut(line, ";")
			for _, k := range keyRE.FindAllStringSubmatch(line, -1) {
				n, _ := strconv.Atoi(k[2])
				keys[n] = k[1] != ""
			}
		}
		rules[name] = keys
	}
	if len(rules) < 18 || len(rules["status"]) != 12 {
		t.Fatalf("parsed %d rules, status has %d keys", len(rules), len(rules["status"]))
	}
	types := map[string]any{
		"state": State{}, "status": Status{}, "board": Board{}, "agent-info": AgentInfo{}, "image": Image{},
		"container": Container{}, "exit": Exit{}, "usage": Usage{}, "flash": Flash{}, "reached": Reached{},
		"item-error": ItemError{}, "event": Event{}, "command": Command{}, "args": Args{}, "reply": Reply{},
		"desired": Desired{}, "image-ref": ImageRef{}, "container-spec": ContainerSpec{},
	}
	for name, v := range types {
		want, ok := rules[name]
		if !ok {
			t.Errorf("protocol.cddl has no rule %q", name)
			continue
		}
		got := map[int]bool{}
		rt := reflect.TypeOf(v)
		for i := 0; i < rt.NumField(); i++ {
			tag := rt.Field(i).Tag.Get("cbor")
			parts := strings.Split(tag, ",")
			n, err := strconv.Atoi(parts[0])
			if err != nil {
				continue
			}
			got[n] = strings.Contains(tag, "omitempty")
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: Go keys %v, CDDL keys %v (true = optional)", name, sorted(got), sorted(want))
		}
	}
}

func sorted(m map[int]bool) []string {
	var out []string
	for k, v := range m {
		s := strconv.Itoa(k)
		if v {
			s = "?" + s
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

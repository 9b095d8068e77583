package main

import (
	"flag"
	"reflect"
	"strings"
	"testing"
)

func TestSplitShortFlags(t *testing.T) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	for _, b := range []string{"d", "i", "t", "it", "rm"} {
		fs.Bool(b, false, "")
	}
	fs.String("e", "", "")
	fs.String("name", "", "")
	tests := []struct{ in, want string }{
		{"-dit img sh", "-d -i -t img sh"},
		{"-it img", "-it img"},                                     // a flag of its own
		{"-d --rm -ti img", "-d --rm -t -i img"},                   // any order
		{"-e -dit --name -dt img", "-e -dit --name -dt img"},       // values are not flags
		{"-e=x -di img sh -ec true", "-e=x -d -i img sh -ec true"}, // the container's flags are its own
		{"-dz img", "-dz img"},                                     // not all bool flags: left for the error
		{"-- -dit", "-- -dit"},
		{"-d=true img", "-d=true img"},
	}
	for _, tt := range tests {
		got := splitShortFlags(fs, strings.Fields(tt.in))
		if want := strings.Fields(tt.want); !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %q, want %q", tt.in, got, want)
		}
	}
}

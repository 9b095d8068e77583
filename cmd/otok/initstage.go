package main

import (
	"context"
	"fmt"
	"os"

	"github.com/otok/otok/runtime"
)

// The container's init and exec stages: otok re-executes itself
// (/proc/self/exe) into these hidden commands; see runtime/doc.go.
func init() {
	register(&command{
		name: "init", summary: "internal: container init stage", hidden: true, ownSignals: true,
		run: func(ctx context.Context, e *env, args []string) error {
			if err := runtime.InitMain(); err != nil {
				return &exitError{code: 127}
			}
			return nil
		},
	})
	register(&command{
		name: "execstage", summary: "internal: container exec stage", hidden: true, ownSignals: true,
		run: func(ctx context.Context, e *env, args []string) error {
			code, err := runtime.ExecMain()
			fmt.Fprintf(os.Stderr, "otok exec: %v\n", err)
			return &exitError{code: code}
		},
	})
}

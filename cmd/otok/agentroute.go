package main

// Who the container commands talk to.
//
// When an agent answers on its socket (agentSocket: OTOK_SOCKET, else
// <state>/otok.sock with --state/OTOK_STATE, else /var/run/otok/otok.sock;
// 0600, root), the container commands go through its command API (CBOR
// frames over the unix socket): run -d, create, start, stop, restart, rm,
// ps, inspect, logs, stats and image import of a .otok file. The agent
// then supervises what they create: restart policies, health checks, logs
// kept across its own restarts. When no agent runs they drive the runtime
// and the image store directly, as runc does, on the same state directory.
// ps, inspect, logs and stats print the same shapes either way
// (ctrview.go).
//
// Containers the agent does not manage. Foreground `otok run` (no -d)
// stays a child of the CLI whether or not the agent runs: its stdio, its
// terminal and its signals belong to the caller, and its life ends with
// the caller's (the agent API carries no stdio). `exec` also stays direct
// (it works on any running container). `run -d --rm`, and run -d/create
// with options the agent's spec does not carry (--cap-add, --cap-drop,
// --userns, --read-only, --device, --init, --stop-signal, --memory-swap,
// --cpu-shares, --cpu-weight, -i), get their own monitor process as
// without the agent, with a note on stderr: they are not supervised.
// None of these carry the agent's annotation (otok.agent=1), so the agent
// never adopts them (agent/adopt.go adopts only its own), and a name taken
// by one is a conflict for the agent's runtime. The CLI merges them in:
// ps lists them (RESTART "-", source "cli"), and inspect, stop, rm, start,
// logs and stats handle a name the agent does not know directly.
//
// --restart other than "no" needs the agent; without it run/create refuse
// it rather than pretend.

import (
	"context"
	"errors"
	"fmt"

	"github.com/otok/otok/agent"
)

// dialAgent returns a client when an agent answers, nil (and no error)
// when none runs, and the error when one runs but refuses us (a non-root
// caller: permission).
func dialAgent(ctx context.Context, e *env) (*agent.Client, error) {
	c, err := agent.Dial(ctx, agentSocket(e))
	if err == nil {
		return c, nil
	}
	if agent.CodeOf(err) == agent.CodeUnavailable {
		return nil, nil
	}
	return nil, err
}

// isAgentErr reports whether err came from the agent with code.
func isAgentErr(err error, code agent.Code) bool {
	var ae *agent.Error
	return errors.As(err, &ae) && ae.Code == code
}

// exitCodeOf is the exit status for err: the agent's code when it is an
// API error, else 1.
func exitCodeOf(err error) int {
	var ae *agent.Error
	if errors.As(err, &ae) {
		return ae.ExitCode()
	}
	return 1
}

// agentUnsupported lists the run/create options set in f that the agent's
// container spec cannot carry.
func (f *containerFlags) agentUnsupported() []string {
	var o []string
	add := func(set bool, name string) {
		if set {
			o = append(o, name)
		}
	}
	add(len(f.capAdd) > 0, "--cap-add")
	add(len(f.capDrop) > 0, "--cap-drop")
	add(f.userns, "--userns")
	add(f.readOnly, "--read-only")
	add(len(f.devices) > 0, "--device")
	add(f.init, "--init")
	add(f.stopSignal != "", "--stop-signal")
	add(f.memorySwap != "", "--memory-swap")
	add(f.cpuShares != 0, "--cpu-shares")
	add(f.cpuWeight != 0, "--cpu-weight")
	add(f.interactive && !f.tty, "-i") // with -t, stdin is the console the agent holds
	add(f.rm, "--rm")
	return o
}

// needsAgentMsg explains a --restart policy refused without the agent.
func needsAgentMsg(policy string) error {
	return usagef("--restart %s: restart policies are applied by the agent, and none is running (start 'otok agent', or use --restart no)", policy)
}

var errNoAgentRestart = fmt.Errorf("restart: needs the agent (without it: otok stop, then otok start)")

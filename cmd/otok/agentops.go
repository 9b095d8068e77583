package main

// The agent side of `otok update`, `otok kill` and `otok image import`
// (their commands live in update.go, lifecycle.go and image.go and call
// these hooks). A container the running agent manages is changed through
// its command API, so the agent's record (its desired limits, the restart
// policy's view of a kill) stays true; a name the agent does not know (a
// container of `otok run` and its monitor) is left to the direct path.

import (
	"context"
	"fmt"

	"github.com/otok/otok/agent"
)

// agentOps is a connection to the running agent, or nothing when none
// runs (every method then reports "not handled").
type agentOps struct {
	c *agent.Client
}

// dialAgentOps connects when an agent runs; a refusing agent (not root)
// is the error.
func dialAgentOps(ctx context.Context, e *env, cmd string) (*agentOps, error) {
	c, err := agentClient(ctx, e, cmd)
	if err != nil {
		return nil, err
	}
	return &agentOps{c: c}, nil
}

func (a *agentOps) running() bool { return a != nil && a.c != nil }

func (a *agentOps) Close() {
	if a.running() {
		a.c.Close()
	}
}

// update changes name's limits through the agent. handled is false when
// no agent runs or it does not manage name.
func (a *agentOps) update(ctx context.Context, e *env, name string, req agent.UpdateRequest) (handled bool, err error) {
	if !a.running() {
		return false, nil
	}
	req.Name = name
	rep, err := a.c.Update(ctx, &req)
	if isAgentErr(err, agent.CodeNotFound) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	if rep.Note != "" {
		fmt.Fprintf(e.stderr, "otok: note: %s\n", rep.Note)
	}
	if !rep.Live {
		fmt.Fprintf(e.stderr, "otok: note: container %s is not running: the new limits apply when it starts\n", name)
	}
	fmt.Fprintln(e.stdout, name)
	return true, nil
}

// kill sends sig (as given on the command line) to name through the agent.
func (a *agentOps) kill(ctx context.Context, name, sig string) (handled bool, err error) {
	if !a.running() {
		return false, nil
	}
	_, err = a.c.Kill(ctx, name, sig)
	if isAgentErr(err, agent.CodeNotFound) {
		return false, nil
	}
	return true, err
}

// agentUpdateRequest builds the API request from `otok update`'s flags:
// set reports whether a flag was given; mem 0 = no limit, swap -1 =
// unlimited, 0 = the default.
func agentUpdateRequest(set func(string) bool, mem, swap int64, cpus float64, pids int64) agent.UpdateRequest {
	var r agent.UpdateRequest
	if set("memory") {
		r.Memory = &mem
	}
	if set("memory-swap") {
		r.MemorySwap = &swap
	}
	if set("cpus") {
		r.CPUs = &cpus
	}
	if set("pids-limit") {
		r.Pids = &pids
	}
	return r
}

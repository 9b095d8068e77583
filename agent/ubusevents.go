package agent

import (
	"context"
	"os"
	"time"

	"github.com/otok/otok/board"
	"golang.org/x/sys/unix"
)

// Events on ubus, and what the device is.
//
// Every agent event goes out as a ubus event (`ubus listen otok.*`):
//
//	otok.container  container events: create, start, exit, stop, restart,
//	                giveup, remove, health, adopt, error; with the
//	                container's state when it was sent
//	otok.image      images installed and removed
//	otok.agent      reload, agent-stop, errors that concern no container
//
// and, when the object has subscribers (`ubus subscribe otok`), as a
// notification of the same type and data. The data is the event as
// `otok events --json` prints it. Events are not queued while ubusd is
// away: ubus events are for those listening now; the ring (`otok events`)
// keeps the history.

// Ubus event ids.
const (
	UbusEventContainer = "otok.container"
	UbusEventImage     = "otok.image"
	UbusEventAgent     = "otok.agent"
)

// ubusEvent is the data of an event on ubus: the event, with the
// container's state (Event.State) filled in when the event does not say.
type ubusEvent struct {
	Event
}

// ubusEventOf maps an agent event to its ubus id and data.
func (u *UbusService) ubusEventOf(e Event) (string, *ubusEvent) {
	d := &ubusEvent{Event: e}
	switch {
	case e.Container != "":
		if d.State == "" && e.Type != EvRemove {
			if st, err := u.a.Inspect(e.Container); err == nil {
				d.State = st.State
			}
		}
		return UbusEventContainer, d
	case e.Type == EvImage:
		return UbusEventImage, d
	}
	return UbusEventAgent, d
}

// forward sends the agent's events to ubus until ctx ends, then what a
// shutdown still says: the queued events and those that follow within
// a short quiet time (a stopped container's exit is recorded just after
// its stop returns), at most shutdownDrain.
func (u *UbusService) forward(ctx context.Context, events <-chan Event) {
	for {
		select {
		case <-ctx.Done():
			u.drain(events)
			return
		case e := <-events:
			u.publish(ctx, e)
		}
	}
}

const (
	drainQuiet    = 50 * time.Millisecond
	shutdownDrain = 500 * time.Millisecond
)

func (u *UbusService) drain(events <-chan Event) {
	if u.Client() == nil {
		return
	}
	end := time.After(shutdownDrain)
	for {
		select {
		case e := <-events:
			u.publish(context.Background(), e)
		case <-time.After(drainQuiet):
			return
		case <-end:
			return
		}
	}
}

// publish sends one event; while ubusd is away it is dropped (the ubus
// library reconnects in the background).
func (u *UbusService) publish(ctx context.Context, e Event) {
	c := u.Client()
	if c == nil {
		return
	}
	id, data := u.ubusEventOf(e)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = c.Send(ctx, id, data)
	if u.obj.HasSubscribers() {
		_ = u.obj.Notify(ctx, id, data)
	}
}

// BoardInfo says what the device is: from `ubus call system board`
// (procd) when ubus is there, else from /etc/board.json,
// /etc/openwrt_release and uname.
type BoardInfo struct {
	Model     string        `ubus:"model,omitempty" json:"model,omitempty"`           // "CMCC RAX3000M"
	BoardName string        `ubus:"board_name,omitempty" json:"board_name,omitempty"` // "cmcc,rax3000m"
	Hostname  string        `ubus:"hostname,omitempty" json:"hostname,omitempty"`
	Kernel    string        `ubus:"kernel,omitempty" json:"kernel,omitempty"` // "6.6.73"
	System    string        `ubus:"system,omitempty" json:"system,omitempty"` // the CPU, as procd names it
	Machine   string        `ubus:"machine,omitempty" json:"machine,omitempty"`
	Release   *BoardRelease `ubus:"release,omitempty" json:"release,omitempty"`
	// Source is "ubus" (system board) or "files".
	Source string `ubus:"source" json:"source"`
}

// BoardRelease is the release part of `system board`.
type BoardRelease struct {
	Distribution string `ubus:"distribution,omitempty" json:"distribution,omitempty"` // "OpenWrt"
	Version      string `ubus:"version,omitempty" json:"version,omitempty"`           // "24.10.0"
	Revision     string `ubus:"revision,omitempty" json:"revision,omitempty"`
	Target       string `ubus:"target,omitempty" json:"target,omitempty"` // "mediatek/filogic"
	Description  string `ubus:"description,omitempty" json:"description,omitempty"`
}

// Board returns what the device is. The answer of `system board` is kept
// once read (it does not change while the system runs); without ubus, or
// when procd does not answer within a second, the files are read.
func (u *UbusService) Board(ctx context.Context) *BoardInfo {
	u.mu.Lock()
	b, c := u.board, u.c
	u.mu.Unlock()
	if b != nil {
		return b
	}
	if c != nil {
		ctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		var r BoardInfo
		if err := c.Call(ctx, "system", "board", nil, &r); err == nil {
			r.Source = "ubus"
			r.Machine = uname().Machine
			u.mu.Lock()
			u.board = &r
			u.mu.Unlock()
			return &r
		}
	}
	return boardFromFiles(board.BoardJSONPath, board.ReleasePath)
}

type unameInfo struct{ Release, Machine string }

func uname() unameInfo {
	var un unix.Utsname
	if unix.Uname(&un) != nil {
		return unameInfo{}
	}
	return unameInfo{Release: unix.ByteSliceToString(un.Release[:]), Machine: unix.ByteSliceToString(un.Machine[:])}
}

// boardFromFiles reads what `system board` would say from the files
// procd reads it from.
func boardFromFiles(boardJSON, release string) *BoardInfo {
	un := uname()
	b := &BoardInfo{Kernel: un.Release, Machine: un.Machine, Source: "files"}
	b.Hostname, _ = os.Hostname()
	if bj, err := board.ReadBoardJSON(boardJSON); err == nil {
		b.Model, b.BoardName = bj.Model.Name, bj.Model.ID
	}
	if rel, err := board.ReadRelease(release); err == nil {
		b.Release = &BoardRelease{Distribution: rel.ID, Version: rel.Version, Revision: rel.Revision,
			Target: rel.Target, Description: rel.Description}
	}
	return b
}

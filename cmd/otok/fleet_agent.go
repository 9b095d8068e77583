package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/uci"
	"github.com/otok/otok/board"
	"golang.org/x/sys/unix"
)

// startFleet starts the agent's fleet session when the UCI file has a
// `config fleet` section (unless it says enabled '0'); see
// agent/fleet.ParseConfig for its options. The session runs until ctx is
// done; the returned wait blocks until it has published death, so
// `otok agent` calls it after cancelling ctx:
//
//	defer startFleet(sctx, a, *config, state, cfg.Agent.DeviceID, logger.Printf)()
//
// The device id is, in order: the section's device_id, deviceID (config
// agent), the MAC of the first Ethernet interface.
func startFleet(ctx context.Context, a *agent.Agent, configPath, stateDir, deviceID string, logf func(string, ...any)) (wait func()) {
	none := func() {}
	data, err := os.ReadFile(configPath)
	if err != nil {
		return none
	}
	f, err := uci.Parse(configPath, data)
	if err != nil {
		return none // the agent reports config errors itself
	}
	var sec *uci.Section
	for _, s := range f.Sections {
		if s.Type == "fleet" {
			sec = s
			break
		}
	}
	if sec == nil {
		return none
	}
	id := fleet.DeviceIDFromMAC(deviceID)
	if id == "" {
		id = firstMAC()
	}
	s, on, err := fleet.ForAgent(a, sec.Get, sec.List, id, filepath.Join(stateDir, "fleet"), boardInfo())
	if err != nil {
		logf("fleet: %v (not connecting)", err)
		return none
	}
	if !on {
		return none
	}
	s.Logf = logf
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	return func() { <-done }
}

// boardInfo fills the status document's board part from /etc/board.json,
// /etc/openwrt_release and uname.
func boardInfo() fleet.Board {
	b := fleet.Board{Arch: goruntime.GOARCH}
	if bj, err := board.ReadBoardJSON(board.BoardJSONPath); err == nil {
		b.Model = bj.Model.Name
	}
	if rel, err := board.ReadRelease(board.ReleasePath); err == nil {
		b.Release = rel.Version
		if rel.Arch != "" {
			b.Arch = rel.Arch
		}
	}
	var un unix.Utsname
	if unix.Uname(&un) == nil {
		b.Kernel = unix.ByteSliceToString(un.Release[:])
		if b.Model == "" {
			b.Model = unix.ByteSliceToString(un.Machine[:])
		}
	}
	return b
}

// firstMAC is the MAC of the first Ethernet-like interface, as a device id
// of last resort (board.json's label_macaddr is the better one).
func firstMAC() string {
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if len(i.HardwareAddr) == 6 && i.Flags&net.FlagLoopback == 0 && !strings.HasPrefix(i.Name, "veth") {
			return fleet.DeviceIDFromMAC(i.HardwareAddr.String())
		}
	}
	return ""
}

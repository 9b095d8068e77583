package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/agent/fleet"
	"github.com/otok/otok/agent/uci"
	"github.com/otok/otok/board"
	"github.com/otok/otok/flash"
	"golang.org/x/sys/unix"
)

// startFleet starts the agent's fleet session when the UCI file has a
// `config fleet` section (unless it says enabled '0'); see
// agent/fleet.ParseConfig for its options. The session runs until ctx is
// done; the returned wait blocks until it has published death, so
// `otok agent` calls it after cancelling ctx:
//
//	waitFleet := startFleet(sctx, a, *config, state, store, keys, cfg.Agent.DeviceID, logger.Printf)
//	defer func() { stopServe(); waitFleet() }()
//
// The device id is, in order: the section's device_id, deviceID (config
// agent), the MAC of the first Ethernet interface. storeRoot and keysDir
// are the image store's (images named by desired state and `otok fleet
// import` are fetched into it by URL).
func startFleet(ctx context.Context, a *agent.Agent, configPath, stateDir, storeRoot, keysDir, deviceID string, logf func(string, ...any)) (wait func()) {
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
	// config agent's device_id is used as written; only a MAC address is
	// normalised (aa:bb:… → aabb…), as uci-defaults writes it.
	id := deviceID
	if _, err := net.ParseMAC(deviceID); err == nil {
		id = fleet.DeviceIDFromMAC(deviceID)
	}
	if id == "" {
		id = firstMAC()
	}
	s, on, err := fleet.ForAgent(a, sec.Get, sec.List, fleet.AgentOptions{
		DefaultID: id, StateDir: filepath.Join(stateDir, "fleet"), Board: boardInfo(),
		ImportURL: importURL(storeRoot, keysDir),
	})
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

// importURL fetches an .otok image over http(s) into the store (flash's
// own HTTP client, resumed on broken transfers), checks that it is the
// digest desired state named, and removes it again if not.
func importURL(storeRoot, keysDir string) func(ctx context.Context, url string, digest []byte, name string, progress func(uint8)) error {
	return func(ctx context.Context, url string, digest []byte, name string, progress func(uint8)) error {
		root := storeRoot
		if root == "" {
			root = flash.DefaultRoot()
		}
		kr, err := flash.LoadKeyring(keysDir)
		if err != nil {
			return &fleet.Error{Code: fleet.CodeUnavailable, Msg: fmt.Sprintf("image %s: keys %s: %v", name, keysDir, err)}
		}
		st, err := flash.Open(root, flash.Options{Keys: kr})
		if err != nil {
			return &fleet.Error{Code: fleet.CodeUnavailable, Msg: fmt.Sprintf("image %s: store: %v", name, err)}
		}
		want := hex.EncodeToString(digest)
		if img, err := st.Resolve(want); err == nil && img.Digest == want {
			return nil // already there
		}
		rc, _, err := flash.OpenURL(ctx, url, flash.FetchOptions{UserAgent: "otok/" + version})
		if err != nil {
			return &fleet.Error{Code: fleet.CodeUnavailable, Msg: fmt.Sprintf("image %s: fetch %s: %v", name, url, err)}
		}
		defer rc.Close()
		last := -1
		res, err := st.ImportOtok(ctx, rc, flash.ImportOptions{Source: url, Progress: func(done, total int64) {
			if progress != nil && total > 0 {
				if p := int(done * 100 / total); p != last {
					last = p
					progress(uint8(p))
				}
			}
		}})
		if err != nil {
			var ns *flash.NoSpaceError
			code := fleet.CodeVerify
			if errors.As(err, &ns) {
				code = fleet.CodeNoSpace
			}
			return &fleet.Error{Code: code, Msg: fmt.Sprintf("image %s from %s: %v", name, url, err)}
		}
		if res.Image.Digest != want {
			if !res.Existed {
				st.Remove(ctx, res.Image.Digest, func(string) bool { return false })
			}
			return &fleet.Error{Code: fleet.CodeVerify, Msg: fmt.Sprintf("image %s from %s: digest %s, desired %s", name, url, res.Image.Digest, want)}
		}
		return nil
	}
}

package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/otok/otok/flash"
)

// Persistent writable layers (`option persistent 1`).
//
// By default a container's writable layer (the overlay's upper dir) is on
// a size-capped tmpfs: zero flash wear, gone when the container ends. A
// persistent container keeps it on the store's flash instead, at
//
//	<store>/persistent/NAME/upper   the container's changes
//	<store>/persistent/NAME/work    overlayfs' work dir (same filesystem)
//
// It survives restarts, agent restarts and reboots, and is removed with
// the container (API remove, or its section gone from the config file at
// a reload). Turning `persistent` off keeps the directory until the
// container is removed; turning it on again finds the old changes.
//
// Space: flash filesystems (jffs2, ubifs) have no per-directory quota, so
// the bound is the store's free-space reserve (the one image imports
// keep, flash.Reserve: max(2 MiB, 10%) unless configured): a persistent
// container is not started while the store's free space is at or below
// the reserve, and while persistent containers run the agent checks the
// free space every TrimInterval (a statfs, nothing written) and reports
// an error event when it falls below the reserve (once per crossing).
// A container can still fill the space above the reserve while it runs:
// give it a limited `tmpfs` instead when that matters.

// persistDirName is the store subdirectory of the persistent layers.
const persistDirName = "persistent"

// storeRoot is the image store's root: the store's own answer when there
// is one, else `option store`, else the platform default.
func (a *Agent) storeRoot(ctx context.Context) string {
	if a.opts.Images != nil {
		if df, err := a.opts.Images.DF(ctx); err == nil && df.Store != "" {
			return df.Store
		}
	}
	a.mu.Lock()
	root := a.cfg.Agent.Store
	a.mu.Unlock()
	if root == "" {
		root = flash.DefaultRoot()
	}
	return root
}

// persistDir is where container name's persistent layer lives.
func (a *Agent) persistDir(ctx context.Context, name string) string {
	return filepath.Join(a.storeRoot(ctx), persistDirName, name)
}

// preparePersistent makes name's persistent layer (upper and work dirs)
// if the store's free space is above its reserve, and returns its dir.
func (a *Agent) preparePersistent(ctx context.Context, name string) (string, error) {
	if a.opts.Images == nil {
		return "", Errorf(CodeUnavailable, "container %s: persistent: no image store to hold the writable layer", name)
	}
	df, err := a.opts.Images.DF(ctx)
	if err != nil {
		return "", wrapCode(CodeUnavailable, err, "container %s: persistent: image store", name)
	}
	if df.Free <= df.Reserve {
		return "", Errorf(CodeNoSpace, "container %s: persistent: store %s has %s free, not above its reserve of %s: not started",
			name, df.Store, flash.HumanBytes(df.Free), flash.HumanBytes(df.Reserve))
	}
	dir := filepath.Join(df.Store, persistDirName, name)
	a.mu.Lock()
	a.persistReserve, a.persistRoot = df.Reserve, filepath.Dir(dir)
	a.mu.Unlock()
	// the layer's dir keeps host users out (0700); upper is the
	// container's root directory (overlayfs takes its mode): 0755, as the
	// tmpfs layer has it
	for _, d := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Dir(dir), 0o700}, {dir, 0o700}, {filepath.Join(dir, "upper"), 0o755}, {filepath.Join(dir, "work"), 0o700}} {
		if err := os.Mkdir(d.path, d.mode); err != nil && !os.IsExist(err) {
			return "", Errorf(CodeNoSpace, "container %s: persistent: %v", name, err)
		}
	}
	return dir, nil
}

// removePersistent deletes name's persistent layer, if any (the
// container is being removed).
func (a *Agent) removePersistent(ctx context.Context, name string) {
	dir := a.persistDir(ctx, name)
	if _, err := os.Lstat(dir); err != nil {
		return
	}
	if err := os.RemoveAll(dir); err != nil {
		a.log.Printf("container %s: remove persistent layer %s: %v", name, dir, err)
		a.event(Event{Type: EvError, Container: name, Msg: fmt.Sprintf("remove persistent layer %s: %v", dir, err)})
	}
}

// checkPersistentSpace reports (once per crossing) when the store's free
// space falls below its reserve while persistent containers run. It only
// calls statfs: nothing is read from or written to the store.
func (a *Agent) checkPersistentSpace() {
	a.mu.Lock()
	var names []string
	for n, c := range a.ctrs {
		if c.running() && c.run != nil && c.run.Persistent {
			names = append(names, n)
		}
	}
	reserve, root, low := a.persistReserve, a.persistRoot, a.persistLow
	a.mu.Unlock()
	if len(names) == 0 || root == "" {
		return
	}
	var st unix.Statfs_t
	if unix.Statfs(root, &st) != nil {
		return
	}
	bs := int64(st.Bsize)
	if st.Frsize > 0 {
		bs = int64(st.Frsize)
	}
	free := int64(st.Bavail) * bs
	nowLow := free <= reserve
	if nowLow == low {
		return
	}
	a.mu.Lock()
	a.persistLow = nowLow
	a.mu.Unlock()
	slices.Sort(names)
	if nowLow {
		a.event(Event{Type: EvError, Msg: fmt.Sprintf("store %s: %s free, below its reserve of %s; persistent containers writing to it: %s",
			root, flash.HumanBytes(free), flash.HumanBytes(reserve), strings.Join(names, ", "))})
	} else {
		a.event(Event{Type: EvError, Msg: fmt.Sprintf("store %s: %s free, above its reserve of %s again", root, flash.HumanBytes(free), flash.HumanBytes(reserve))})
	}
}

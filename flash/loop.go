package flash

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// attachLoop binds file read-only to a free loop device with autoclear set,
// so the device is released when its last user (the mount) goes. It uses
// LOOP_CONFIGURE (Linux 5.8+) and falls back to LOOP_SET_FD +
// LOOP_SET_STATUS64 on older kernels. The caller must keep file open until
// the mount that uses the device is done, then close both.
func attachLoop(ctx context.Context, file *os.File) (dev string, loop *os.File, err error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", nil, fmt.Errorf("loop: open /dev/loop-control: %w", err)
	}
	defer ctl.Close()
	for attempt := 0; attempt < 64; attempt++ {
		if err := ctx.Err(); err != nil {
			return "", nil, err
		}
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("loop: get free device: %w", err)
		}
		dev = fmt.Sprintf("/dev/loop%d", n)
		loop, err = os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				// udev has not created the node yet; make it ourselves.
				_ = unix.Mknod(dev, unix.S_IFBLK|0o660, int(unix.Mkdev(7, uint32(n))))
				loop, err = os.OpenFile(dev, os.O_RDONLY|unix.O_CLOEXEC, 0)
			}
			if err != nil {
				return "", nil, fmt.Errorf("loop: open %s: %w", dev, err)
			}
		}
		err = configureLoop(int(loop.Fd()), int(file.Fd()))
		if err == nil {
			return dev, loop, nil
		}
		loop.Close()
		if errors.Is(err, unix.EBUSY) {
			// Another process took this device between GET_FREE and
			// configure: try the next free one.
			time.Sleep(time.Millisecond)
			continue
		}
		return "", nil, fmt.Errorf("loop: configure %s: %w", dev, err)
	}
	return "", nil, fmt.Errorf("loop: no free loop device after 64 attempts")
}

func configureLoop(loopFd, fileFd int) error {
	cfg := unix.LoopConfig{Fd: uint32(fileFd)}
	cfg.Info.Flags = unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR
	err := unix.IoctlLoopConfigure(loopFd, &cfg)
	if err == nil || errors.Is(err, unix.EBUSY) {
		return err
	}
	if !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOTTY) {
		return err
	}
	// Pre-5.8 kernel: two steps.
	if err := unix.IoctlSetInt(loopFd, unix.LOOP_SET_FD, fileFd); err != nil {
		return err
	}
	info := unix.LoopInfo64{Flags: unix.LO_FLAGS_READ_ONLY | unix.LO_FLAGS_AUTOCLEAR}
	if err := unix.IoctlLoopSetStatus64(loopFd, &info); err != nil {
		_ = unix.IoctlSetInt(loopFd, unix.LOOP_CLR_FD, 0)
		return err
	}
	return nil
}

// detachLoop clears a loop device that never got mounted.
func detachLoop(loop *os.File) {
	_ = unix.IoctlSetInt(int(loop.Fd()), unix.LOOP_CLR_FD, 0)
}

// sleepCtx waits a millisecond or until ctx is done.
func sleepCtx(ctx context.Context) {
	t := time.NewTimer(time.Millisecond)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

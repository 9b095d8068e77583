package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// The host put into the volume (before the container started):
//
//	abs-link -> <host path of a secret file>   (absolute)
//	rel-link -> ../../../../../../<same, relative to />
//	dir-link -> <host directory of the secret>
//
// Read through them, the container must see its own tree, never the
// host's secret.
func volumeProbes() []probe {
	return []probe{
		{"volume_symlink_escape", func() result {
			if cfg.vol == "" || cfg.secret == "" {
				return blocked("no -vol/-secret given")
			}
			var d []string
			for _, l := range []string{"abs-link", "rel-link"} {
				b, err := os.ReadFile(filepath.Join(cfg.vol, l))
				if err == nil && strings.Contains(string(b), cfg.secret) {
					return allowed("read the host secret through %s", l)
				}
				d = append(d, l+": "+errString(err))
			}
			ents, err := os.ReadDir(filepath.Join(cfg.vol, "dir-link"))
			if err == nil {
				for _, e := range ents {
					if b, err := os.ReadFile(filepath.Join(cfg.vol, "dir-link", e.Name())); err == nil && strings.Contains(string(b), cfg.secret) {
						return allowed("read the host secret through dir-link/%s", e.Name())
					}
				}
			}
			d = append(d, "dir-link: "+errString(err))
			return blocked("%s", strings.Join(d, "; "))
		}},
		{"volume_hardlink_out", func() result {
			// Hard links across the volume's mount are EXDEV; a link of a
			// container file into the volume would let the host see (and
			// a later chown by the host follow) it.
			if cfg.vol == "" {
				return blocked("no -vol given")
			}
			dst := filepath.Join(cfg.vol, "probe-hardlink")
			err := unix.Link("/etc/passwd", dst)
			if err == nil {
				os.Remove(dst)
				return allowed("hard link of /etc/passwd into the volume")
			}
			return blocked("link /etc/passwd into volume: %v", err)
		}},
		{"volume_symlink_plant", func() result {
			// A symlink planted in the volume is resolved by the host only
			// if something on the host follows it; from in here it must
			// resolve inside the container.
			if cfg.vol == "" {
				return blocked("no -vol given")
			}
			l := filepath.Join(cfg.vol, "probe-planted")
			os.Remove(l)
			if err := os.Symlink("/proc/1/root/etc/shadow", l); err != nil {
				return blocked("symlink: %v", err)
			}
			defer os.Remove(l)
			b, err := os.ReadFile(l)
			if err == nil && strings.Contains(string(b), cfg.secret) && cfg.secret != "" {
				return allowed("planted symlink read a host file")
			}
			return blocked("planted symlink resolves inside the container: %s", errString(err))
		}},
		{"ro_volume_write", func() result {
			if cfg.roVol == "" {
				return blocked("no -ro-vol given")
			}
			p := filepath.Join(cfg.roVol, "probe-write")
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
			if err == nil {
				f.Close()
				os.Remove(p)
				return allowed("created a file in the read-only volume")
			}
			if err := unix.Mount("", cfg.roVol, "", unix.MS_REMOUNT|unix.MS_BIND, ""); err == nil {
				return allowed("remounted the read-only volume read-write")
			}
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return blocked("write: %v; remount refused", err)
		}},
	}
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

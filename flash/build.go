package flash

import (
	"archive/tar"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Host side: `otok image build` turns a rootfs directory, a rootfs tarball
// or a Docker/OCI image into a squashfs with mksquashfs and wraps it with a
// signed manifest into a .otok file.
//
// Compression: xz, with the BCJ filter for the target's instruction set,
// which makes executable code compress better (mksquashfs tries each listed
// filter and no filter per block and keeps the smallest):
//
//	amd64, 386      -Xbcj x86
//	arm (GOARM=7)   -Xbcj arm
//	arm64           none: squashfs-tools 4.5 has no arm64 filter (xz 5.4
//	                added one, the kernel decodes it since 6.3, but
//	                mksquashfs cannot write it)
//	mips, mipsle    none: xz has no MIPS BCJ filter at all
//	powerpc         -Xbcj powerpc
//
// This is exactly what OpenWrt uses for its own squashfs root (image.mk:
// BCJ_FILTER := -Xbcj $(LINUX_KARCH) for arm, x86, powerpc, sparc), so the
// device kernel is known to have the decoder (CONFIG_XZ_DEC_<FILTER>).
// armthumb is not used although mksquashfs could try it per block: embedded
// kernel configs commonly leave CONFIG_XZ_DEC_ARMTHUMB off, and a block the
// kernel cannot decode would fail at read time, long after the import.
//
// Why xz: it is the smallest, and OpenWrt kernels enable only xz for
// squashfs. Measured with `make bench` (test/flash TestBenchSizes,
// mksquashfs 4.5.1, 128 KiB blocks, amd64 with -Xbcj x86), bytes:
//
//	rootfs                          files        gzip          xz        zstd
//	busybox (static, 1 binary)    2010991     1040384      888832      978944
//	Debian 12 minbase, apt cleaned 119927133  47742976    39657472    43745280
//
// xz is 15% smaller than gzip and 9% smaller than zstd (level 15 default)
// on the Debian tree; on 16–128 MB of flash that decides.

// BCJFilters returns the mksquashfs -Xbcj filters for a target arch.
func BCJFilters(arch string) string {
	switch arch {
	case "amd64", "386":
		return "x86"
	case "arm":
		return "arm"
	case "ppc", "powerpc", "ppc64", "ppc64le":
		return "powerpc"
	}
	return ""
}

// BuildOptions configure Build.
type BuildOptions struct {
	From          string // directory, rootfs tarball, docker save archive, OCI layout (dir or tar)
	Name, Version string
	Arch          string // "" = the image config's, or the host's
	Entrypoint    []string
	Cmd           []string
	Env           []string // added to / overriding the image config's
	Cwd, User     string
	Ports         []string
	Labels        map[string]string
	Key           ed25519.PrivateKey
	Out           string // .otok file to write
	SquashfsOut   string // also keep the squashfs here (optional)
	Comp          string // mksquashfs compressor; "" = xz
	Created       int64  // Unix seconds; 0 = SOURCE_DATE_EPOCH or now
	AllowSpecial  bool   // keep device nodes and setuid files from tarballs/layers
	TmpDir        string
	Verbose       io.Writer // mksquashfs output (progress on a terminal); nil = quiet
}

// BuildResult describes a built image.
type BuildResult struct {
	Manifest  *Manifest
	Input     string // what From was recognised as
	Squashfs  int64  // bytes
	Otok      int64  // bytes
	BCJ       string
	Signature string // key id
}

// Build makes a signed .otok file.
func Build(ctx context.Context, o BuildOptions) (*BuildResult, error) {
	subject := "image " + o.Name
	if !ValidName(o.Name) {
		return nil, fmt.Errorf("image %q: invalid name (lower case letters, digits, . _ -)", o.Name)
	}
	if !ValidVersion(o.Version) {
		return nil, fmt.Errorf("%s: invalid version %q", subject, o.Version)
	}
	if o.Key == nil {
		return nil, fmt.Errorf("%s: no signing key", subject)
	}
	if o.Comp == "" {
		o.Comp = "xz"
	}
	if o.Created == 0 {
		o.Created = time.Now().Unix()
		if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 || v > 1<<32-1 {
				return nil, fmt.Errorf("%s: SOURCE_DATE_EPOCH=%q is not a Unix time (seconds, 0…4294967295 for squashfs)", subject, s)
			}
			o.Created = v
		}
	}
	work, err := os.MkdirTemp(o.TmpDir, "otok-build-")
	if err != nil {
		return nil, err
	}
	defer removeAllWritable(work)
	res := &BuildResult{}
	rootfs, cfg, kind, err := prepareRootfs(ctx, o, work)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	res.Input = kind
	arch := o.Arch
	if arch == "" && cfg != nil {
		arch = cfg.Arch
	}
	if arch == "" {
		arch = HostArch()
	}
	m := &Manifest{Name: o.Name, Version: o.Version, Arch: arch, Kind: KindSquashfs, Created: o.Created}
	if cfg != nil {
		m.Process, m.Ports, m.Labels = cfg.Process, cfg.Ports, cfg.Labels
	}
	applyOverrides(m, o)
	sq := filepath.Join(work, "rootfs.squashfs")
	res.BCJ, err = mksquashfs(ctx, rootfs, sq, arch, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	if o.SquashfsOut != "" {
		if err := copyFile(sq, o.SquashfsOut); err != nil {
			return nil, fmt.Errorf("%s: %w", subject, err)
		}
	}
	f, err := os.Open(sq)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if m.Size, err = io.Copy(h, f); err != nil {
		return nil, err
	}
	m.Digest = h.Sum(nil)
	payload, err := m.Marshal()
	if err != nil {
		return nil, err
	}
	signed, err := SignCOSE(payload, o.Key)
	if err != nil {
		return nil, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	tmpOut := o.Out + ".tmp"
	out, err := os.OpenFile(tmpOut, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	defer os.Remove(tmpOut)
	err = WriteOtokHeader(out, signed)
	if err == nil {
		_, err = io.Copy(out, f)
	}
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmpOut, o.Out)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: write %s: %w", subject, o.Out, err)
	}
	res.Manifest, res.Squashfs = m, m.Size
	res.Otok = OtokSize(len(signed), m.Size)
	res.Signature = fmt.Sprintf("%x", KeyID(o.Key.Public().(ed25519.PublicKey)))
	return res, nil
}

func applyOverrides(m *Manifest, o BuildOptions) {
	if o.Entrypoint != nil || o.Cmd != nil {
		m.Process.Args = append(append([]string{}, o.Entrypoint...), o.Cmd...)
	}
	for _, kv := range o.Env {
		k, _, _ := strings.Cut(kv, "=")
		kept := m.Process.Env[:0:0]
		for _, e := range m.Process.Env {
			if ek, _, _ := strings.Cut(e, "="); ek != k {
				kept = append(kept, e)
			}
		}
		m.Process.Env = append(kept, kv)
	}
	if o.Cwd != "" {
		m.Process.Cwd = o.Cwd
	}
	if o.User != "" {
		m.Process.User = o.User
	}
	m.Ports = append(m.Ports, o.Ports...)
	if len(o.Labels) > 0 && m.Labels == nil {
		m.Labels = map[string]string{}
	}
	for k, v := range o.Labels {
		m.Labels[k] = v
	}
	if len(m.Process.Args) == 0 {
		m.Process.Args = []string{"/bin/sh"}
	}
}

// prepareRootfs turns o.From into a directory tree and, for Docker/OCI
// input, the image config.
func prepareRootfs(ctx context.Context, o BuildOptions, work string) (string, *ImageConfig, string, error) {
	st, err := os.Stat(o.From)
	if err != nil {
		return "", nil, "", err
	}
	rootfs := filepath.Join(work, "rootfs")
	if err := os.Mkdir(rootfs, 0o755); err != nil {
		return "", nil, "", err
	}
	uopt := UnpackOptions{AllowSpecial: o.AllowSpecial, MaxEntries: 10_000_000}
	if st.IsDir() {
		if IsImageLayout(o.From) {
			cfg, err := ApplyImageLayout(ctx, o.From, rootfs, o.Arch, uopt)
			return rootfs, cfg, "oci-layout", err
		}
		return o.From, nil, "directory", nil
	}
	isImage, err := tarIsImageArchive(o.From)
	if err != nil {
		return "", nil, "", err
	}
	f, err := os.Open(o.From)
	if err != nil {
		return "", nil, "", err
	}
	defer f.Close()
	r, comp, err := Decompress(f)
	if err != nil {
		return "", nil, "", err
	}
	if isImage {
		layout := filepath.Join(work, "layout")
		if err := os.Mkdir(layout, 0o755); err != nil {
			return "", nil, "", err
		}
		if _, err := Unpack(ctx, r, layout, UnpackOptions{Subject: "archive " + o.From}); err != nil {
			return "", nil, "", err
		}
		cfg, err := ApplyImageLayout(ctx, layout, rootfs, o.Arch, uopt)
		kind := "docker-archive"
		if _, e := os.Stat(filepath.Join(layout, "oci-layout")); e == nil {
			kind = "oci-archive"
		}
		return rootfs, cfg, kind, err
	}
	uopt.Subject, uopt.LXD = "rootfs "+o.From, true
	if _, err := Unpack(ctx, r, rootfs, uopt); err != nil {
		return "", nil, "", err
	}
	return rootfs, nil, "rootfs-tar+" + comp, nil
}

// tarIsImageArchive scans a tar's names for a top-level manifest.json or
// oci-layout (docker save / OCI archive).
func tarIsImageArchive(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, _, err := Decompress(f)
	if err != nil {
		return false, err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("%s: read tar: %w", path, err)
		}
		n, _ := cleanName(h.Name)
		if n == "oci-layout" || n == "manifest.json" || n == "index.json" {
			return true, nil
		}
	}
}

// mksquashfs runs mksquashfs reproducibly and returns the BCJ filters used.
func mksquashfs(ctx context.Context, src, out, arch string, o BuildOptions) (string, error) {
	bin, err := exec.LookPath("mksquashfs")
	if err != nil {
		return "", errors.New("mksquashfs not found (install squashfs-tools)")
	}
	t := strconv.FormatInt(o.Created, 10)
	args := []string{src, out, "-noappend", "-comp", o.Comp, "-mkfs-time", t, "-all-time", t}
	bcj := ""
	if o.Comp == "xz" {
		if bcj = BCJFilters(arch); bcj != "" {
			args = append(args, "-Xbcj", bcj)
		}
	}
	if os.Getuid() != 0 {
		// Unprivileged builds cannot preserve ownership from tarballs.
		args = append(args, "-all-root")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	// The times are given on the command line (from --created, else
	// SOURCE_DATE_EPOCH, else now). mksquashfs ≥ 4.5 also reads
	// SOURCE_DATE_EPOCH and refuses it together with -mkfs-time/-all-time,
	// so the child does not inherit it: one source for the timestamps,
	// whatever mksquashfs version is installed.
	cmd.Env = withoutEnv(os.Environ(), "SOURCE_DATE_EPOCH")
	var outBuf strings.Builder
	if o.Verbose != nil {
		cmd.Stdout, cmd.Stderr = o.Verbose, o.Verbose
	} else {
		cmd.Args = append(cmd.Args, "-quiet", "-no-progress")
		cmd.Stdout, cmd.Stderr = &outBuf, &outBuf
	}
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("mksquashfs: %v\n%s", err, outBuf.String())
	}
	return bcj, nil
}

// withoutEnv returns env without the variables named.
func withoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

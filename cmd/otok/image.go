package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/otok/otok/agent"
	"github.com/otok/otok/flash"
	"github.com/otok/otok/runtime"
)

// `otok image SUBCOMMAND`: build (host), import, ls, inspect, rm, gc.

type subcommand struct {
	cmd *command // for newFlags: name "image build", usage, summary
	run func(ctx context.Context, e *env, sc *command, args []string) error
}

var imageSubs = map[string]*subcommand{}

func imageSub(name, usage, summary string, run func(context.Context, *env, *command, []string) error) {
	imageSubs[name] = &subcommand{cmd: &command{name: "image " + name, usage: usage, summary: summary}, run: run}
}

func init() {
	register(&command{
		name:    "image",
		usage:   "build|import|ls|inspect|rm|gc [ARGS…]",
		summary: "build, import and manage images in the store",
		run:     runImage,
	})
	imageSub("build", "--from DIR|ROOTFS.tar[.xz|.gz]|DOCKER-SAVE.tar|OCI-LAYOUT --name N --version V --key PATH.key -o FILE.otok [OPTIONS]",
		"make a signed .otok image (host side; needs mksquashfs)", runImageBuild)
	imageSub("import", "FILE.otok|SQUASHFS|ROOTFS.tar[.xz|.gz]|-|URL [--name N] [--version V]",
		"verify and store an image (streamed: never held in RAM)", runImageImport)
	imageSub("ls", "[--json] [-q]", "list stored images", runImageLs)
	imageSub("inspect", "IMAGE|FILE.otok [--verify]", "show an image's manifest (stored, or a .otok file before import)", runImageInspect)
	imageSub("rm", "IMAGE… [--force]", "remove images (refused while a container uses them)", runImageRm)
	imageSub("gc", "[--keep N] [--dry-run]", "remove images no container uses, keeping the newest N versions per name", runImageGC)
}

func runImage(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := e.stdout
		if len(args) == 0 {
			w = e.stderr
		}
		fmt.Fprintln(w, "Usage: otok image SUBCOMMAND [ARGS…]\n\nSubcommands:")
		var names []string
		for n := range imageSubs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(w, "  %-8s %s\n", n, imageSubs[n].cmd.summary)
		}
		if len(args) == 0 {
			return usagef("missing subcommand")
		}
		return nil
	}
	sc, ok := imageSubs[args[0]]
	if !ok {
		return usagef("unknown subcommand %q", args[0])
	}
	return sc.run(ctx, e, sc.cmd, args[1:])
}

// storeRoot is --store, OTOK_STORE, or the platform default.
func storeRoot(e *env) string {
	if e.store != "" {
		return e.store
	}
	return flash.DefaultRoot()
}

// runDir is where the runtime keeps mounts and state (--state).
func runDir(e *env) string { return stateDir(e) }

// openStore opens the store with the trusted keyring. reserve is a size
// ("4M") or a percentage ("10%"); "" = OTOK_RESERVE or the default.
func openStore(e *env, reserve string) (*flash.Store, error) {
	kr, err := flash.LoadKeyring(keysDir(e))
	if err != nil {
		return nil, err
	}
	if reserve == "" {
		reserve = os.Getenv("OTOK_RESERVE")
	}
	var r flash.Reserve
	if reserve != "" {
		if p, ok := strings.CutSuffix(reserve, "%"); ok {
			n, err := strconv.Atoi(p)
			if err != nil || n < 0 || n > 90 {
				return nil, usagef("bad reserve %q", reserve)
			}
			r.Percent = n
			if n == 0 {
				r.Bytes = -1
			}
		} else {
			n, err := parseByteSize(reserve)
			if err != nil {
				return nil, usagef("bad reserve %q: %v", reserve, err)
			}
			r.Bytes = n
			if n == 0 {
				r.Bytes = -1
			}
		}
	}
	return flash.Open(storeRoot(e), flash.Options{Keys: kr, Reserve: r})
}

// parseByteSize reads 123, 64k, 16M, 1G (binary units).
func parseByteSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "g"), strings.HasSuffix(s, "G"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size")
	}
	return n * mult, nil
}

// parseAll parses flags anywhere among the arguments (`inspect busybox
// --verify`) and returns the positional arguments; "--" ends flags.
func parseAll(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		i := 0
		for i < len(args) && (args[i] == "-" || !strings.HasPrefix(args[i], "-")) {
			i++
		}
		pos = append(pos, args[:i]...)
		args = args[i:]
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		if err := parseFlags(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
	}
}

// repeatFlag collects a repeated flag.
type repeatFlag []string

func (l *repeatFlag) String() string     { return strings.Join(*l, ",") }
func (l *repeatFlag) Set(s string) error { *l = append(*l, s); return nil }

// argvFlag takes a JSON array (["/bin/sh","-c"]) or a space-separated list.
type argvFlag struct {
	v   []string
	set bool
}

func (a *argvFlag) String() string { return strings.Join(a.v, " ") }
func (a *argvFlag) Set(s string) error {
	a.set = true
	if strings.HasPrefix(strings.TrimSpace(s), "[") {
		return json.Unmarshal([]byte(s), &a.v)
	}
	a.v = strings.Fields(s)
	return nil
}

func runImageBuild(ctx context.Context, e *env, sc *command, args []string) error {
	fs := newFlags(e, sc)
	var o flash.BuildOptions
	var env, ports, labels repeatFlag
	var entry, cmd argvFlag
	var key string
	var created int64
	fs.StringVar(&o.From, "from", "", "input: rootfs `DIR`, rootfs tarball, docker save archive, OCI layout (dir or tar)")
	fs.StringVar(&o.Name, "name", "", "image `NAME`")
	fs.StringVar(&o.Version, "version", "", "image `VERSION`")
	fs.StringVar(&o.Arch, "arch", "", "target `ARCH` (mipsle, mips, arm, arm64, amd64, all); default: the image config's, else the host's")
	fs.Var(&entry, "entrypoint", "entrypoint: JSON array or space-separated words")
	fs.Var(&cmd, "cmd", "arguments after the entrypoint: JSON array or space-separated words")
	fs.Var(&env, "env", "`KEY=VALUE` in the default environment (repeatable)")
	fs.StringVar(&o.Cwd, "workdir", "", "default working `DIR`")
	fs.StringVar(&o.User, "user", "", "default `USER` (uid[:gid])")
	fs.Var(&ports, "port", "exposed `PORT/PROTO` (repeatable)")
	fs.Var(&labels, "label", "`KEY=VALUE` label (repeatable)")
	fs.StringVar(&key, "key", "", "signing key `PATH.key` (from 'otok key gen')")
	fs.StringVar(&o.Out, "o", "", "output `FILE.otok`")
	fs.StringVar(&o.SquashfsOut, "squashfs-out", "", "also write the bare squashfs to `FILE`")
	fs.StringVar(&o.Comp, "comp", "xz", "squashfs compressor (xz, gzip, zstd, lz4, lzo); devices' kernels usually have xz only")
	fs.Int64Var(&created, "created", 0, "creation time, Unix `SECONDS` (default SOURCE_DATE_EPOCH or now)")
	fs.BoolVar(&o.AllowSpecial, "allow-special", true, "keep device nodes and setuid/setgid files from tarballs and layers")
	args, err := parseAll(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usagef("unexpected argument %q", args[0])
	}
	if o.From == "" || o.Name == "" || o.Version == "" || key == "" || o.Out == "" {
		return usagef("--from, --name, --version, --key and -o are required")
	}
	k, err := flash.LoadPrivateKey(key)
	if err != nil {
		return err
	}
	o.Key, o.Created, o.Env, o.Ports = k, created, env, ports
	if entry.set {
		o.Entrypoint = entry.v
		if o.Entrypoint == nil {
			o.Entrypoint = []string{}
		}
	}
	if cmd.set {
		o.Cmd = cmd.v
		if o.Cmd == nil {
			o.Cmd = []string{}
		}
	}
	if len(labels) > 0 {
		o.Labels = map[string]string{}
		for _, l := range labels {
			kk, v, ok := strings.Cut(l, "=")
			if !ok {
				return usagef("label %q is not KEY=VALUE", l)
			}
			o.Labels[kk] = v
		}
	}
	if isTerminalWriter(e.stderr) {
		o.Verbose = e.stderr
	}
	res, err := flash.Build(ctx, o)
	if err != nil {
		return err
	}
	m := res.Manifest
	bcj := res.BCJ
	if bcj == "" {
		bcj = "none"
	}
	fmt.Fprintf(e.stdout, "built %s (%s, from %s): squashfs %s %s bcj=%s, sha256:%s, signed by %s → %s (%s)\n",
		m.Ref(), m.Arch, res.Input, o.Comp, flash.HumanBytes(res.Squashfs), bcj, m.DigestHex(), res.Signature, o.Out, flash.HumanBytes(res.Otok))
	return nil
}

func runImageImport(ctx context.Context, e *env, sc *command, args []string) error {
	fs := newFlags(e, sc)
	var name, version, arch, reserve, maxSize string
	var insecure, allowSpecial bool
	fs.StringVar(&name, "name", "", "image `NAME` (required for a bare squashfs or a rootfs tarball)")
	fs.StringVar(&version, "version", "", "image `VERSION` (bare squashfs or tarball; default: a timestamp)")
	fs.StringVar(&arch, "arch", "", "`ARCH` of a bare squashfs or tarball (default: this device's)")
	fs.BoolVar(&insecure, "insecure-skip-verify", false, "accept unsigned or untrusted images (DANGEROUS)")
	fs.BoolVar(&allowSpecial, "allow-special", false, "allow device nodes and setuid/setgid files in a rootfs tarball")
	fs.StringVar(&reserve, "reserve", "", "flash to keep free: `SIZE` (4M) or percent (10%); default max(2M, 10%) or OTOK_RESERVE")
	fs.StringVar(&maxSize, "max-size", "", "cap on a tarball's expanded `SIZE` (default: the free space above the reserve)")
	args, err := parseAll(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want exactly one FILE, - or URL")
	}
	src := args[0]
	// A local file on this device goes through a running agent, so the
	// containers waiting for it start at once; the agent takes the same
	// options. URLs, stdin and --reserve are imported here; the agent
	// finds such an image on its next retry (agent.RetryInterval).
	if reserve == "" && src != "-" && !flash.IsURL(src) {
		if fi, err := os.Stat(src); err == nil && fi.Mode().IsRegular() {
			req := agent.ImageImportRequest{Name: name, Version: version, Arch: arch, InsecureSkipVerify: insecure, AllowSpecial: allowSpecial}
			if err := checkImportArgs(src, &req, maxSize); err != nil {
				return err
			}
			c, err := dialAgent(ctx, e)
			if err != nil {
				return agentError(e, "image import", err)
			}
			if c != nil {
				defer c.Close()
				if insecure {
					fmt.Fprintln(e.stderr, insecureWarning)
				}
				return importViaAgent(ctx, e, c, src, req)
			}
		}
	}
	st, err := openStore(e, reserve)
	if err != nil {
		return err
	}
	if insecure {
		fmt.Fprintln(e.stderr, insecureWarning)
	}
	var r io.Reader
	size := int64(-1)
	switch {
	case flash.IsURL(src):
		body, n, err := flash.OpenURL(ctx, src, flash.FetchOptions{UserAgent: "otok/" + otokVersion()})
		if err != nil {
			return err
		}
		defer body.Close()
		r, size = body, n
	case src == "-":
		r = e.stdin
	default:
		f, err := os.Open(src)
		if err != nil {
			return fmt.Errorf("image %s: %w", src, err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
		r = f
	}
	bar := newProgress(e, "import", size)
	defer bar.finish()
	br := bufio.NewReaderSize(bar.reader(r), 64<<10)
	head, _ := br.Peek(8)
	iopt := flash.ImportOptions{InsecureSkipVerify: insecure, Source: src}
	var res *flash.ImportResult
	start := time.Now()
	switch {
	case bytes.HasPrefix(head, flash.OtokMagic[:]):
		if name != "" || version != "" {
			return usagef("--name/--version apply to bare squashfs and tarballs; a .otok names itself")
		}
		res, err = st.ImportOtok(ctx, br, iopt)
	case bytes.HasPrefix(head, []byte("hsqs")):
		if name == "" {
			return usagef("a bare squashfs needs --name (and --insecure-skip-verify: it carries no signature)")
		}
		if version == "" {
			version = time.Now().UTC().Format("20060102.150405")
		}
		if arch == "" {
			arch = st.Arch()
		}
		m := flash.Manifest{Name: name, Version: version, Arch: arch, Created: time.Now().Unix(), Process: flash.Process{Args: []string{"/bin/sh"}}}
		res, err = st.ImportSquashfs(ctx, br, size, m, iopt)
	default:
		if name == "" {
			return usagef("a rootfs tarball needs --name (and --insecure-skip-verify: it carries no signature)")
		}
		if !insecure {
			return fmt.Errorf("image %s: a rootfs tarball carries no signature; import it with --insecure-skip-verify, or build a signed .otok with 'otok image build'", name)
		}
		var max int64
		if maxSize != "" {
			if max, err = parseByteSize(maxSize); err != nil {
				return usagef("bad --max-size %q", maxSize)
			}
		}
		res, err = st.ImportRootfsTar(ctx, br, flash.RootfsOptions{Name: name, Version: version, Arch: arch, AllowSpecial: allowSpecial, MaxBytes: max, Source: src})
	}
	bar.finish()
	if err != nil {
		return err
	}
	img := res.Image
	if res.Existed {
		fmt.Fprintf(e.stdout, "%s already in the store (sha256:%s); %s written\n", img.Ref(), img.Digest, flash.HumanBytes(res.BytesWritten))
		return nil
	}
	signer := "UNSIGNED"
	if img.Signed {
		signer = "signed by " + img.KeyID
		if insecure {
			signer += " (NOT verified)"
		}
	}
	el := time.Since(start)
	fmt.Fprintf(e.stdout, "imported %s (%s %s, sha256:%s, %s): %s written to flash in %.2fs\n",
		img.Ref(), img.Manifest.Kind, img.Manifest.Arch, img.Digest, signer, flash.HumanBytes(res.BytesWritten), el.Seconds())
	return nil
}

const insecureWarning = "WARNING: --insecure-skip-verify: the signature is NOT checked; whoever supplied this image can run code on this device"

// checkImportArgs applies to a local file the usage rules the direct
// import applies (by the file's magic), before it goes to the agent, and
// fills req.MaxSize.
func checkImportArgs(path string, req *agent.ImageImportRequest, maxSize string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("image %s: %w", path, err)
	}
	head := make([]byte, 8)
	n, _ := io.ReadFull(f, head)
	f.Close()
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, flash.OtokMagic[:]):
		if req.Name != "" || req.Version != "" {
			return usagef("--name/--version apply to bare squashfs and tarballs; a .otok names itself")
		}
	case bytes.HasPrefix(head, []byte("hsqs")):
		if req.Name == "" {
			return usagef("a bare squashfs needs --name (and --insecure-skip-verify: it carries no signature)")
		}
	default:
		if req.Name == "" {
			return usagef("a rootfs tarball needs --name (and --insecure-skip-verify: it carries no signature)")
		}
		if !req.InsecureSkipVerify {
			return fmt.Errorf("image %s: a rootfs tarball carries no signature; import it with --insecure-skip-verify, or build a signed .otok with 'otok image build'", req.Name)
		}
	}
	if maxSize != "" {
		max, err := parseByteSize(maxSize)
		if err != nil {
			return usagef("bad --max-size %q", maxSize)
		}
		req.MaxSize = max
	}
	return nil
}

// importViaAgent asks the agent to import the file at path.
func importViaAgent(ctx context.Context, e *env, c *agent.Client, path string, req agent.ImageImportRequest) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	req.Path = abs
	start := time.Now()
	info, err := c.ImageImportWith(ctx, &req)
	if err != nil {
		return agentError(e, "image import", err)
	}
	ref := info.Name + ":" + info.Version
	if info.Existed {
		fmt.Fprintf(e.stdout, "%s already in the store (sha256:%s); %s written, by the agent\n", ref, info.Digest, flash.HumanBytes(info.Written))
		return nil
	}
	signer := "UNSIGNED"
	if info.KeyID != "" {
		signer = "signed by " + info.KeyID
		if req.InsecureSkipVerify {
			signer += " (NOT verified)"
		}
	}
	fmt.Fprintf(e.stdout, "imported %s (%s %s, sha256:%s, %s): %s written to flash by the agent in %.2fs\n",
		ref, info.Kind, info.Arch, info.Digest, signer, flash.HumanBytes(info.Written), time.Since(start).Seconds())
	return nil
}

// imageJSON is the JSON shape of an image in ls/inspect/df.
type imageJSON struct {
	Name     string            `json:"name"`
	Version  string            `json:"version"`
	Digest   string            `json:"digest"`
	Kind     string            `json:"kind"`
	Arch     string            `json:"arch"`
	Size     int64             `json:"size"`
	Disk     int64             `json:"disk_bytes"`
	Written  int64             `json:"bytes_written"`
	Created  string            `json:"created"`
	Imported string            `json:"imported,omitempty"`
	Signed   bool              `json:"signed"`
	KeyID    string            `json:"key_id,omitempty"`
	Process  flash.Process     `json:"process"`
	Ports    []string          `json:"ports,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
	Source   string            `json:"source,omitempty"`
	Path     string            `json:"path,omitempty"`
	UsedBy   []string          `json:"used_by,omitempty"`
}

func toJSON(m *flash.Manifest) imageJSON {
	return imageJSON{Name: m.Name, Version: m.Version, Digest: "sha256:" + m.DigestHex(), Kind: m.Kind, Arch: m.Arch,
		Size: m.Size, Created: time.Unix(m.Created, 0).UTC().Format(time.RFC3339), Process: m.Process, Ports: m.Ports, Labels: m.Labels}
}

func imgJSON(e *env, img *flash.Image, users func(string) []string) imageJSON {
	j := toJSON(img.Manifest)
	j.Disk, j.Written, j.Signed, j.KeyID, j.Source = img.Info.DiskBytes, img.Info.BytesWritten, img.Signed, img.KeyID, img.Info.Source
	if img.Info.Imported > 0 {
		j.Imported = time.Unix(img.Info.Imported, 0).UTC().Format(time.RFC3339)
	}
	j.Path = img.SquashfsPath()
	if img.Manifest.Kind == flash.KindDir {
		j.Path = img.RootfsDir()
	}
	j.UsedBy = users(img.Digest)
	return j
}

func runImageLs(ctx context.Context, e *env, sc *command, args []string) error {
	fs := newFlags(e, sc)
	asJSON := fs.Bool("json", false, "JSON output")
	quiet := fs.Bool("q", false, "digests only")
	args, err := parseAll(fs, args)
	if err != nil {
		return err
	}
	st, err := openStore(e, "")
	if err != nil {
		return err
	}
	imgs, errs := st.List()
	for _, err := range errs {
		fmt.Fprintf(e.stderr, "otok image ls: %v\n", err)
	}
	switch {
	case *asJSON:
		out := []imageJSON{}
		users := imageUsers(e)
		for _, i := range imgs {
			out = append(out, imgJSON(e, i, users))
		}
		return writeJSON(e.stdout, out)
	case *quiet:
		for _, i := range imgs {
			fmt.Fprintln(e.stdout, i.Digest)
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tKIND\tARCH\tDIGEST\tSIZE\tCREATED\tSIGNED")
	for _, i := range imgs {
		m := i.Manifest
		signed := "no"
		if i.Signed {
			signed = i.KeyID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Version, m.Kind, m.Arch, i.Digest[:12],
			flash.HumanBytes(i.Info.DiskBytes), time.Unix(m.Created, 0).UTC().Format("2006-01-02 15:04"), signed)
	}
	return tw.Flush()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runImageInspect(ctx context.Context, e *env, sc *command, args []string) error {
	fs := newFlags(e, sc)
	verify := fs.Bool("verify", false, "re-check the signature and the squashfs digest")
	args, err := parseAll(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usagef("want one IMAGE or FILE.otok")
	}
	ref := args[0]
	kr, err := flash.LoadKeyring(keysDir(e))
	if err != nil {
		return err
	}
	if fi, err := os.Stat(ref); err == nil && fi.Mode().IsRegular() {
		// A .otok file: show its manifest and whether this device trusts it.
		f, err := os.Open(ref)
		if err != nil {
			return err
		}
		defer f.Close()
		signed, err := flash.ReadOtokHeader(f)
		if err != nil {
			return fmt.Errorf("image %s: %w", ref, err)
		}
		m, kid, err := flash.UnsignedManifest(signed)
		if err != nil {
			return err
		}
		j := struct {
			imageJSON
			Trusted string `json:"signature"`
		}{imageJSON: toJSON(m)}
		j.KeyID, j.Signed = kid, true
		if _, _, err := kr.VerifyManifest(signed); err != nil {
			j.Trusted = err.Error()
		} else {
			j.Trusted = "valid, trusted key " + kid
		}
		return writeJSON(e.stdout, j)
	}
	st, err := openStore(e, "")
	if err != nil {
		return err
	}
	img, err := st.Resolve(ref)
	if err != nil {
		return err
	}
	if *verify {
		if err := st.Verify(img); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "image %s: verified\n", img.Ref())
	}
	return writeJSON(e.stdout, imgJSON(e, img, imageUsers(e)))
}

// imageUsers returns a function listing the containers that use an image
// (by digest): holders of its loop mount, and containers — running or
// stopped, since they can be started again — whose rootfs came from it.
func imageUsers(e *env) func(digest string) []string {
	var states []*runtime.State
	loaded := false
	return func(d string) []string {
		if !loaded {
			states, _ = (&runtime.Runtime{Root: runDir(e)}).List()
			loaded = true
		}
		seen := map[string]bool{}
		var users []string
		add := func(n string) {
			if !seen[n] {
				seen[n] = true
				users = append(users, n)
			}
		}
		for _, h := range flash.Holders(runDir(e), d) {
			add(h)
		}
		dir := filepath.Join(storeRoot(e), "images", d)
		for _, st := range states {
			r := st.Spec.Rootfs
			if r.Digest == d || strings.HasPrefix(r.Path, dir+"/") || strings.HasPrefix(r.File, dir+"/") {
				add(st.Spec.Name)
			}
		}
		sort.Strings(users)
		return users
	}
}

// inUse reports whether any container uses the image.
func inUse(e *env) func(string) bool {
	users := imageUsers(e)
	return func(d string) bool { return len(users(d)) > 0 }
}

func runImageRm(ctx context.Context, e *env, sc *command, args []string) error {
	fs := newFlags(e, sc)
	force := fs.Bool("force", false, "remove even if a container uses it (its mount stays until it stops)")
	args, err := parseAll(fs, args)
	if err != nil {
		return err
	}
	if len(args) == 0 {
		return usagef("want at least one IMAGE")
	}
	st, err := openStore(e, "")
	if err != nil {
		return err
	}
	var check func(string) bool
	if !*force {
		check = inUse(e)
	}
	var errs []error
	for _, ref := range args {
		r, err := st.RemoveImage(ctx, ref, check)
		if err != nil {
			if !*force && strings.Contains(err.Error(), "in use") {
				err = fmt.Errorf("%w by %s (remove the container first, or --force)", err, strings.Join(imageUsers(e)(mustDigest(st, ref)), ", "))
			}
			errs = append(errs, err)
			continue
		}
		fmt.Fprintf(e.stdout, "removed %s (sha256:%s, %s)\n", r.Image.Ref(), r.Image.Digest, freedText(r))
	}
	return errors.Join(errs...)
}

// freedText says what removing an image gave back: its size, or nothing
// when another name still holds the same content.
func freedText(r flash.Removed) string {
	if r.Freed == 0 && r.Image.Info.DiskBytes > 0 {
		return "content shared with another name, nothing freed"
	}
	return flash.HumanBytes(r.Freed) + " freed"
}

func mustDigest(st *flash.Store, ref string) string {
	if img, err := st.Resolve(ref); err == nil {
		return img.Digest
	}
	return ""
}

func runImageGC(ctx context.Context, e *env, sc *command, args []string) error {
	fs := newFlags(e, sc)
	keep := fs.Int("keep", 0, "keep the newest `N` versions of each name even if unused")
	dry := fs.Bool("dry-run", false, "only show what would be removed")
	args, err := parseAll(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 || *keep < 0 {
		return usagef("unexpected arguments")
	}
	st, err := openStore(e, "")
	if err != nil {
		return err
	}
	removed, freed, err := st.GCImages(ctx, flash.GCOptions{Keep: *keep, InUse: inUse(e), DryRun: *dry})
	verb := "removed"
	if *dry {
		verb = "would remove"
	}
	for _, r := range removed {
		fmt.Fprintf(e.stdout, "%s %s (sha256:%s, %s)\n", verb, r.Image.Ref(), r.Image.Digest[:12], freedText(r))
	}
	fmt.Fprintf(e.stdout, "%s %d image(s), %s\n", verb, len(removed), flash.HumanBytes(freed))
	return err
}

// otokVersion is this binary's version (the flag variables of import
// shadow the package-level name).
func otokVersion() string { return version }

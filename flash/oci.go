package flash

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Docker and OCI images, converted on the host by `otok image build`.
//
// Accepted inputs:
//   - `docker save` archives (manifest.json + <id>/layer.tar or, since
//     Docker 25, blobs/sha256/…), plain or inside a tar;
//   - OCI image layouts (oci-layout + index.json + blobs/), as a directory
//     or a tar.
//
// Layers are applied in order into one tree with whiteouts (.wh.NAME
// removes NAME from lower layers, .wh..wh..opq hides a directory's lower
// content) and the image config's Entrypoint/Cmd/Env/WorkingDir/User/
// ExposedPorts/Labels become the manifest's defaults. OCI blobs are checked
// against their sha256 digests as they are read.

// ImageConfig is what otok takes from an OCI/Docker image config.
type ImageConfig struct {
	Arch    string
	Process Process
	Ports   []string
	Labels  map[string]string
}

type ociDescriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
	Size      int64  `json:"size"`
	Platform  *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Variant      string `json:"variant"`
	} `json:"platform"`
}

type ociManifest struct {
	MediaType string          `json:"mediaType"`
	Config    ociDescriptor   `json:"config"`
	Layers    []ociDescriptor `json:"layers"`
	Manifests []ociDescriptor `json:"manifests"` // when it is an index
}

type dockerSaveEntry struct {
	Config string   `json:"Config"`
	Layers []string `json:"Layers"`
}

type ociConfigFile struct {
	Architecture string `json:"architecture"`
	Variant      string `json:"variant"`
	OS           string `json:"os"`
	Config       struct {
		User         string              `json:"User"`
		Env          []string            `json:"Env"`
		Entrypoint   []string            `json:"Entrypoint"`
		Cmd          []string            `json:"Cmd"`
		WorkingDir   string              `json:"WorkingDir"`
		ExposedPorts map[string]struct{} `json:"ExposedPorts"`
		Labels       map[string]string   `json:"Labels"`
	} `json:"config"`
}

// IsImageLayout reports whether dir holds an OCI layout or a docker save.
func IsImageLayout(dir string) bool {
	for _, f := range []string{"oci-layout", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return true
		}
	}
	return false
}

// readBlob reads a small JSON file from the layout (at most 4 MiB).
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4<<20+1))
	if err == nil && len(b) > 4<<20 {
		err = errors.New("larger than 4 MiB")
	}
	return b, err
}

// blobPath maps "sha256:HEX" to its file, rejecting anything else.
func blobPath(layout, digest string) (string, string, error) {
	h, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || !isDigestHex(h) {
		return "", "", fmt.Errorf("unsupported or malformed digest %q", digest)
	}
	return filepath.Join(layout, "blobs", "sha256", h), h, nil
}

// ApplyImageLayout applies the layers of the image in layout (an extracted
// docker save or OCI layout) into dest and returns its config. arch picks a
// manifest out of a multi-platform index ("" = the first).
func ApplyImageLayout(ctx context.Context, layout, dest, arch string, opt UnpackOptions) (*ImageConfig, error) {
	var configPath, configDigest string
	type layer struct{ path, digest string }
	var layers []layer
	if b, err := readSmall(filepath.Join(layout, "index.json")); err == nil {
		var idx ociManifest
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("oci index.json: %w", err)
		}
		m, err := pickManifest(layout, &idx, arch, 0)
		if err != nil {
			return nil, err
		}
		if configPath, configDigest, err = blobPath(layout, m.Config.Digest); err != nil {
			return nil, fmt.Errorf("oci config: %w", err)
		}
		for _, l := range m.Layers {
			p, d, err := blobPath(layout, l.Digest)
			if err != nil {
				return nil, fmt.Errorf("oci layer: %w", err)
			}
			if strings.Contains(l.MediaType, "zstd") {
				return nil, fmt.Errorf("oci layer %s: zstd layers are not supported", l.Digest)
			}
			layers = append(layers, layer{p, d})
		}
	} else if b, err := readSmall(filepath.Join(layout, "manifest.json")); err == nil {
		var ents []dockerSaveEntry
		if err := json.Unmarshal(b, &ents); err != nil {
			return nil, fmt.Errorf("docker manifest.json: %w", err)
		}
		if len(ents) != 1 {
			return nil, fmt.Errorf("docker manifest.json: %d images, want exactly 1 (save one image)", len(ents))
		}
		rel, err := cleanName(ents[0].Config)
		if err != nil || rel == "" {
			return nil, fmt.Errorf("docker manifest.json: config path %q", ents[0].Config)
		}
		configPath = filepath.Join(layout, rel)
		for _, l := range ents[0].Layers {
			rel, err := cleanName(l)
			if err != nil || rel == "" {
				return nil, fmt.Errorf("docker manifest.json: layer path %q", l)
			}
			d := ""
			if h, ok := strings.CutPrefix(rel, "blobs/sha256/"); ok && isDigestHex(h) {
				d = h
			}
			layers = append(layers, layer{filepath.Join(layout, rel), d})
		}
	} else {
		return nil, fmt.Errorf("%s: neither an OCI layout (index.json) nor a docker save (manifest.json)", layout)
	}
	cb, err := readSmall(configPath)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if configDigest != "" {
		if s := sha256.Sum256(cb); hex.EncodeToString(s[:]) != configDigest {
			return nil, fmt.Errorf("image config: digest mismatch")
		}
	}
	var cf ociConfigFile
	if err := json.Unmarshal(cb, &cf); err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	if cf.OS != "" && cf.OS != "linux" {
		return nil, fmt.Errorf("image config: os %q, want linux", cf.OS)
	}
	u := &unpacker{dest: dest, opt: opt, layer: map[string]bool{}}
	if u.opt.MaxEntries == 0 {
		u.opt.MaxEntries = 1_000_000
	}
	u.opt.Whiteouts = true
	for i, l := range layers {
		u.opt.Subject = fmt.Sprintf("layer %d/%d", i+1, len(layers))
		if err := applyLayer(ctx, u, l.path, l.digest); err != nil {
			return nil, err
		}
	}
	sort.Slice(u.dirs, func(i, j int) bool { return len(u.dirs[i].path) > len(u.dirs[j].path) })
	for _, d := range u.dirs {
		os.Chmod(d.path, d.mode)
	}
	c := &ImageConfig{Arch: ociArch(cf.Architecture, cf.Variant), Labels: cf.Config.Labels}
	c.Process = Process{
		Args: append(append([]string{}, cf.Config.Entrypoint...), cf.Config.Cmd...),
		Env:  cf.Config.Env, Cwd: cf.Config.WorkingDir, User: cf.Config.User,
	}
	for p := range cf.Config.ExposedPorts {
		c.Ports = append(c.Ports, p)
	}
	sort.Strings(c.Ports)
	return c, nil
}

func pickManifest(layout string, idx *ociManifest, arch string, depth int) (*ociManifest, error) {
	if depth > 2 || len(idx.Manifests) == 0 {
		return nil, errors.New("oci index: no manifests")
	}
	d := idx.Manifests[0]
	if arch != "" {
		for _, m := range idx.Manifests {
			if m.Platform != nil && ociArch(m.Platform.Architecture, m.Platform.Variant) == arch {
				d = m
				break
			}
		}
	}
	p, _, err := blobPath(layout, d.Digest)
	if err != nil {
		return nil, fmt.Errorf("oci index: %w", err)
	}
	b, err := readSmall(p)
	if err != nil {
		return nil, fmt.Errorf("oci manifest %s: %w", d.Digest, err)
	}
	if s := sha256.Sum256(b); "sha256:"+hex.EncodeToString(s[:]) != d.Digest {
		return nil, fmt.Errorf("oci manifest %s: digest mismatch", d.Digest)
	}
	var m ociManifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("oci manifest %s: %w", d.Digest, err)
	}
	if len(m.Manifests) > 0 { // nested index
		return pickManifest(layout, &m, arch, depth+1)
	}
	return &m, nil
}

// ociArch maps OCI architecture names to GOARCH-style names.
func ociArch(a, variant string) string {
	switch a {
	case "x86_64":
		return "amd64"
	case "aarch64":
		return "arm64"
	}
	return a
}

func applyLayer(ctx context.Context, u *unpacker, path, digest string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", u.opt.Subject, err)
	}
	defer f.Close()
	h := newHashCounter(f)
	r, _, err := Decompress(h)
	if err != nil {
		return fmt.Errorf("%s: %w", u.opt.Subject, err)
	}
	u.resetLayer()
	tr := tar.NewReader(&capReader{r: r, max: u.opt.MaxBytes, sub: u.opt.Subject})
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hd, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: read tar: %w", u.opt.Subject, err)
		}
		if err := u.entry(hd, tr); err != nil {
			return err
		}
	}
	if digest != "" {
		io.Copy(io.Discard, h)
		if hex.EncodeToString(h.Sum()) != digest {
			return fmt.Errorf("%s: blob digest mismatch (want sha256:%s)", u.opt.Subject, digest)
		}
	}
	return nil
}

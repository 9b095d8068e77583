// Package flash is otok's image store on flash, and the host-side tools
// that make images for it.
//
// It owns:
//
//   - the image format: a squashfs file plus a manifest (deterministic CBOR,
//     manifest.go) signed as a COSE_Sign1 with Ed25519 (package cose;
//     cose.go, keys.go: the manifest content type, the keyring);
//     the `.otok` container that bundles both for shipping (otokfile.go,
//     specified in FORMAT.md);
//   - the store: a content-addressed directory on flash (store.go) that
//     imports by streaming — hash while writing, never the whole image in
//     RAM — verifies before it commits (signature, digest, size, arch,
//     squashfs superblock: squashfs.go), commits by rename (commit.go),
//     refuses early when free space minus a reserve is too small (space.go),
//     sweeps temp files, counts the bytes it writes, and collects garbage
//     (gc.go);
//   - the other inputs a device accepts: rootfs tarballs unpacked with strict
//     rules into directory images (tarball.go), images fetched over
//     http/https with resume by Range (url.go, over a minimal HTTP/1.1
//     client in httpget.go — net/http would cost 1.3 MB of flash);
//   - host side: `otok image build` (build.go) from a directory, a rootfs
//     tarball, or a Docker/OCI archive with layers and whiteouts applied
//     (oci.go), made into squashfs with mksquashfs.
//
// Loop mounts of stored squashfs files (loop.go, mount.go) are refcounted
// per digest; the store hands the runtime a mounted rootfs (rootfs.go:
// MountImage), the runtime never mounts images itself.
//
// The wire format (.otok, COSE profile, manifest CDDL) and the store layout
// are specified in FORMAT.md, with golden vectors in testdata/.
//
// It must not know about containers, the agent, MQTT, ubus or networking:
// whoever references images (the agent, the CLI) passes that knowledge in,
// e.g. as the in-use predicate of GC.
//
// Example (device side):
//
//	keys, err := flash.LoadKeyring("/etc/otok/keys")
//	st, err := flash.Open("/overlay/otok", flash.Options{Keys: keys})
//	f, _ := os.Open("adguard.otok")
//	res, err := st.ImportOtok(ctx, f, flash.ImportOptions{})
//	img, err := st.Resolve("adguard:0.107")
//	fmt.Println(img.Digest, img.SquashfsPath())
package flash

package netcfg_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// A container's host veth end is named from its name. A kill -9 of the
// agent mid-attach, or a namespace the kernel is still tearing down, leaves
// one behind; attaching the container again must replace it — but never a
// link of another container that happens to have that name.
func TestStaleVethReplaced(t *testing.T) {
	rtr, h := nlRouter(t)
	la := netlink.NewLinkAttrs()
	la.Name = "br-t"
	if err := h.LinkAdd(&netlink.Bridge{LinkAttrs: la}); err != nil {
		t.Fatal(err)
	}
	br, _ := h.LinkByName("br-t")
	h.LinkSetUp(br)
	vethName := func(container string) string {
		sum := sha256.Sum256([]byte(container))
		return "otk" + hex.EncodeToString(sum[:4])
	}
	tests := []struct {
		container, alias string
		wantErr          error
	}{
		{"stale-untagged", "", nil},                // killed before the tag
		{"stale-tagged", "otok:stale-tagged", nil}, // namespace teardown pending
		{"not-ours", "otok:someone-else", unix.EEXIST},
	}
	state := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.container, func(t *testing.T) {
			name := vethName(tt.container)
			la := netlink.NewLinkAttrs()
			la.Name = name
			if err := h.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: name + "p"}); err != nil {
				t.Fatal(err)
			}
			old, _ := h.LinkByName(name)
			t.Cleanup(func() { h.LinkDel(old) })
			if tt.alias != "" {
				h.LinkSetAlias(old, tt.alias)
			}
			_, err := nlAttach(t, rtr, state, tt.container, "bridge:br-t")
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("attach over a leftover %s (alias %q): %v, want %v", name, tt.alias, err, tt.wantErr)
			}
			now, lerr := h.LinkByName(name)
			if lerr != nil {
				t.Fatalf("%s: %v", name, lerr)
			}
			replaced := now.Attrs().Index != old.Attrs().Index
			if replaced != (tt.wantErr == nil) {
				t.Errorf("%s replaced=%v, want %v", name, replaced, tt.wantErr == nil)
			}
			if tt.wantErr == nil && (now.Attrs().Alias != "otok:"+tt.container || now.Attrs().MasterIndex != br.Attrs().Index) {
				t.Errorf("new %s: alias %q master %d, want otok:%s in br-t", name, now.Attrs().Alias, now.Attrs().MasterIndex, tt.container)
			}
		})
	}
}

package netcfg

import (
	"bytes"
	"fmt"
	"os"
)

// enableForwarding turns on IPv4 forwarding in the host namespace (what
// NAT through otok0 and port publishing need; OpenWrt has it on already).
// /proc/sys/net belongs to the namespace of whoever opens it, so the write
// happens on a thread inside the host namespace.
func enableForwarding(host *nsHandle) error {
	const p = "/proc/sys/net/ipv4/ip_forward"
	return inNS(host.ns, func() error {
		cur, err := os.ReadFile(p)
		if err == nil && bytes.Equal(bytes.TrimSpace(cur), []byte("1")) {
			return nil
		}
		if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
			return fmt.Errorf("enable IPv4 forwarding: %w", err)
		}
		return nil
	})
}

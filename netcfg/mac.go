package netcfg

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// StableMAC derives a container's MAC from the device identity and the
// container name: the first six bytes of SHA-256("otok-mac\x00" + id +
// "\x00" + name), made unicast and locally administered. The same
// container on the same device gets the same MAC after a restart or a
// reboot, so DHCP servers hand it the same lease.
func StableMAC(deviceID, container string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("otok-mac\x00" + deviceID + "\x00" + container))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// ParseMAC parses a --mac value (aa:bb:cc:dd:ee:ff or with dashes) and
// returns it in canonical lower-case colon form. It must be a 6-byte
// unicast address, not all zeros.
func ParseMAC(s string) (string, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return "", fmt.Errorf("mac %s: not a 6-byte MAC address like 02:42:ac:11:00:02", s)
	}
	if mac[0]&0x01 != 0 {
		return "", fmt.Errorf("mac %s: multicast bit set (first byte must be even)", s)
	}
	if bytes.Equal(mac, make([]byte, 6)) {
		return "", fmt.Errorf("mac %s: all zeros", s)
	}
	return mac.String(), nil
}

// DeviceID identifies this device for StableMAC: /etc/machine-id where it
// exists (not on OpenWrt), else the lowest MAC address of a physical
// network device (one with a /sys/class/net/*/device link), else the host
// name. sysfs is read in the caller's mount namespace.
func DeviceID() string {
	if b, err := os.ReadFile("/etc/machine-id"); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id
		}
	}
	var macs []string
	devs, _ := filepath.Glob("/sys/class/net/*/device")
	for _, d := range devs {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(d), "address"))
		if m := strings.TrimSpace(string(b)); err == nil && m != "" && m != "00:00:00:00:00:00" {
			macs = append(macs, m)
		}
	}
	if len(macs) > 0 {
		sort.Strings(macs)
		return "mac:" + macs[0]
	}
	h, _ := os.Hostname()
	return "host:" + h
}

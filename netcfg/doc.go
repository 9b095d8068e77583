// Package netcfg attaches containers to the network over netlink: modes
// none (loopback only), host (the host's namespace, nothing to do), bridge
// (a veth pair whose host end joins br-lan, another bridge, or the
// otok-owned NAT bridge otok0), macvlan and ipvlan on a device port,
// optionally in a VLAN whose sub-interface is created on demand and removed
// with its last user. It sets stable locally administered MACs, static
// addresses and routes, runs a small DHCPv4 client inside the container's
// network namespace, writes /etc/resolv.conf and /etc/hosts into the
// container's root, and publishes ports through an otok-owned nftables
// table.
//
// Everything it creates outside the container's namespace carries a tag —
// the link alias "otok:<container>" (shared links: "otok:+vlan",
// "otok:+bridge"), the nftables tables "otok-<container>" and "otok" —
// and a small JSON record under the state directory (tmpfs, never flash).
// Detach removes what Attach made; Sweep removes what a crash left behind.
//
// netcfg knows nothing of container runtimes, images, MQTT, ubus or board
// files: it is given a network namespace path, a directory to write /etc
// files into, and a function that turns port names ("lan3", "wan") into
// kernel links. It talks netlink only — vishvananda/netlink handles made
// with NETLINK_ROUTE alone, and a minimal nf_tables client of its own
// (nft.go) — and never runs ip, iptables or nft.
//
// Usage:
//
//	spec, err := netcfg.ParseNet("macvlan:lan3.10,mode=bridge") // syntax only
//	a, err := netcfg.ParseAddr("dhcp")
//	spec.Addrs = append(spec.Addrs, a)
//	rec, err := netcfg.Attach(ctx, netcfg.Config{
//		Container: "dns", Spec: spec,
//		NetNS:     "/proc/1234/ns/net", RootDir: "/proc/1234/root",
//		StateDir:  "/run/otok/net", Resolve: resolvePort,
//	})
//	…
//	go netcfg.Maintain(ctx, "/run/otok/net", "dns") // keeps the DHCP lease
//	…
//	err = netcfg.Detach(ctx, "/run/otok/net", "dns")
//	err = netcfg.Sweep(ctx, "/run/otok/net", "", isRunning)
//
// Kernel and OpenWrt: veth, bridge and macvlan always; 8021q for PORT.VID,
// ipvlan for ipvlan:PORT; nf_tables with nft_chain_nat, nft_nat, nft_masq,
// nft_ct and nft_fib_ipv4 for otok0 NAT and -p (on OpenWrt firewall4
// pulls all of these in). fw4's forward chain drops traffic of interfaces
// in no zone, so otok0 must join a zone (lan, or its own with masquerading
// off — otok masquerades) for its containers to reach beyond the router.
// A DSA port that is a member of br-lan cannot carry a macvlan (the
// bridge owns its receive path): use macvlan:br-lan or bridge:br-lan, or
// take the port out of the bridge.
//
// DHCP renewal: Attach obtains the lease synchronously and records it.
// Keeping it is the job of a long-lived process that calls Maintain (the
// agent for every container; `otok run` in the foreground for its own); a
// container whose lease nobody renews keeps its address until the lease
// expires, then the server may hand it out again.
package netcfg

// Package lan finds the addresses this machine has on its local networks,
// the ones phones on the same Wi-Fi can open a listener link at when the
// speaker's browser shows the page as localhost.
package lan

import (
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// Interface is what Addrs needs to know of one network interface: the
// fields of net.Interface and the result of its Addrs method, so that
// tests can describe machines they do not run on.
type Interface struct {
	Name  string
	Flags net.Flags
	Addrs []net.Addr
}

// Interfaces reads this machine's network interfaces and their addresses.
// An interface whose addresses cannot be read is listed without them.
func Interfaces() ([]Interface, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(ifaces))
	for _, ifc := range ifaces {
		addrs, _ := ifc.Addrs()
		out = append(out, Interface{Name: ifc.Name, Flags: ifc.Flags, Addrs: addrs})
	}
	return out, nil
}

// Addrs returns the addresses of ifaces that another device on the local
// network could reach: unicast addresses of interfaces that are up and not
// loopback, leaving out loopback, link-local (169.254/16, fe80::/10, which
// need a zone phones cannot type), multicast and unspecified addresses.
//
// The order is deterministic: IPv4 before IPv6 (phones and QR readers
// handle it everywhere); within a family, interfaces with a carrier before
// those without, physical-looking ones before virtual bridges and tunnels
// (docker0, virbr0, tailscale0, …), then the order of ifaces and of their
// addresses. Each address appears once.
func Addrs(ifaces []Interface) []netip.Addr {
	type cand struct {
		addr netip.Addr
		rank int // lower first
		pos  int
	}
	var cands []cand
	seen := map[netip.Addr]bool{}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		for _, a := range ifc.Addrs {
			ip, ok := addrOf(a)
			if !ok || !reachable(ip) || seen[ip] {
				continue
			}
			seen[ip] = true
			rank := 0
			if ip.Is6() {
				rank += 4
			}
			if ifc.Flags&net.FlagRunning == 0 {
				rank += 2
			}
			if virtual(ifc.Name) {
				rank++
			}
			cands = append(cands, cand{ip, rank, len(cands)})
		}
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].rank < cands[j].rank })
	out := make([]netip.Addr, len(cands))
	for i, c := range cands {
		out[i] = c.addr
	}
	return out
}

// MachineAddrs returns Addrs of this machine's interfaces.
func MachineAddrs() ([]netip.Addr, error) {
	ifaces, err := Interfaces()
	if err != nil {
		return nil, err
	}
	return Addrs(ifaces), nil
}

// URLs returns the base URLs (scheme://address:port, no trailing slash)
// this machine is reachable at on its local networks, in the order of
// Addrs; none when it has no such address or its interfaces cannot be
// read. The server prints them at start.
func URLs(scheme string, port int) []string {
	addrs, err := MachineAddrs()
	if err != nil {
		return nil
	}
	out := make([]string, len(addrs))
	for i, a := range addrs {
		out[i] = BaseURL(scheme, a.String(), port)
	}
	return out
}

// BaseURL returns scheme://host:port, bracketing an IPv6 address and
// leaving out the port when it is the scheme's default (or 0).
func BaseURL(scheme, host string, port int) string {
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	if port != 0 && !(scheme == "http" && port == 80) && !(scheme == "https" && port == 443) {
		host += ":" + strconv.Itoa(port)
	}
	return scheme + "://" + host
}

// addrOf reads the IP of an interface address (*net.IPNet on every
// platform Go supports, *net.IPAddr on some), unmapping IPv4-in-IPv6.
func addrOf(a net.Addr) (netip.Addr, bool) {
	var ip net.IP
	switch v := a.(type) {
	case *net.IPNet:
		ip = v.IP
	case *net.IPAddr:
		if v.Zone != "" {
			return netip.Addr{}, false
		}
		ip = v.IP
	default:
		return netip.Addr{}, false
	}
	addr, ok := netip.AddrFromSlice(ip)
	return addr.Unmap(), ok
}

// reachable reports whether another device could open a link to ip.
func reachable(ip netip.Addr) bool {
	return ip.IsValid() && !ip.IsUnspecified() && !ip.IsLoopback() && !ip.IsMulticast() &&
		!ip.IsLinkLocalUnicast()
}

// virtualPrefixes name interfaces that are usually bridges to containers
// or virtual machines, or VPN tunnels: phones in the room cannot reach
// them, but the speaker may still pick them.
var virtualPrefixes = []string{
	"docker", "br-", "veth", "virbr", "vboxnet", "vmnet", "lxc", "lxdbr", "cni", "flannel",
	"podman", "tailscale", "utun", "tun", "tap", "wg", "zt", "awdl", "llw",
}

func virtual(name string) bool {
	for _, p := range virtualPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

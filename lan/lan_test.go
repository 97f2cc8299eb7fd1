package lan_test

import (
	"net"
	"net/netip"
	"net/url"
	"reflect"
	"testing"

	"github.com/pentecost/pentecost/lan"
)

// ipnet parses an address with its prefix, as an interface reports it.
func ipnet(t *testing.T, s string) net.Addr {
	t.Helper()
	ip, n, err := net.ParseCIDR(s)
	if err != nil {
		t.Fatal(err)
	}
	n.IP = ip
	return n
}

func addrs(ss ...string) []netip.Addr {
	out := []netip.Addr{}
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

const upRunning = net.FlagUp | net.FlagRunning | net.FlagBroadcast | net.FlagMulticast

func TestLANAddrs(t *testing.T) {
	lo := func(t *testing.T) lan.Interface {
		return lan.Interface{Name: "lo", Flags: net.FlagUp | net.FlagRunning | net.FlagLoopback,
			Addrs: []net.Addr{ipnet(t, "127.0.0.1/8"), ipnet(t, "::1/128")}}
	}
	for _, tc := range []struct {
		name   string
		ifaces func(t *testing.T) []lan.Interface
		want   []netip.Addr
	}{
		{"LoopbackOnly", func(t *testing.T) []lan.Interface { return []lan.Interface{lo(t)} }, addrs()},
		{"None", func(t *testing.T) []lan.Interface { return nil }, addrs()},
		{"Laptop", func(t *testing.T) []lan.Interface {
			return []lan.Interface{lo(t), {Name: "wlan0", Flags: upRunning, Addrs: []net.Addr{
				ipnet(t, "fe80::1c2:3ff:fe04:506/64"), ipnet(t, "2001:db8::20/64"), ipnet(t, "192.168.1.20/24")}}}
		}, addrs("192.168.1.20", "2001:db8::20")},
		{"LinkLocalOnly", func(t *testing.T) []lan.Interface {
			return []lan.Interface{lo(t), {Name: "eth0", Flags: upRunning, Addrs: []net.Addr{
				ipnet(t, "169.254.10.3/16"), ipnet(t, "fe80::1/64")}}}
		}, addrs()},
		{"Down", func(t *testing.T) []lan.Interface {
			return []lan.Interface{
				{Name: "eth0", Flags: net.FlagBroadcast, Addrs: []net.Addr{ipnet(t, "10.0.0.5/8")}},
				{Name: "wlan0", Flags: upRunning, Addrs: []net.Addr{ipnet(t, "192.168.1.20/24")}},
			}
		}, addrs("192.168.1.20")},
		{"IPv6Only", func(t *testing.T) []lan.Interface {
			return []lan.Interface{lo(t), {Name: "eth0", Flags: upRunning, Addrs: []net.Addr{
				ipnet(t, "fe80::2/64"), ipnet(t, "fd00::2/64"), ipnet(t, "2001:db8::5/64")}}}
		}, addrs("fd00::2", "2001:db8::5")},
		{"IPv4First", func(t *testing.T) []lan.Interface {
			return []lan.Interface{
				{Name: "eth0", Flags: upRunning, Addrs: []net.Addr{ipnet(t, "2001:db8::5/64")}},
				{Name: "eth1", Flags: upRunning, Addrs: []net.Addr{ipnet(t, "10.1.2.3/16")}},
			}
		}, addrs("10.1.2.3", "2001:db8::5")},
		{"VirtualLast", func(t *testing.T) []lan.Interface {
			// docker0 comes first by index but no phone can reach it.
			return []lan.Interface{
				{Name: "docker0", Flags: upRunning, Addrs: []net.Addr{ipnet(t, "172.17.0.1/16")}},
				{Name: "tailscale0", Flags: upRunning, Addrs: []net.Addr{ipnet(t, "100.64.0.7/32")}},
				{Name: "enp3s0", Flags: upRunning, Addrs: []net.Addr{ipnet(t, "192.168.0.14/24")}},
			}
		}, addrs("192.168.0.14", "172.17.0.1", "100.64.0.7")},
		{"NoCarrierLast", func(t *testing.T) []lan.Interface {
			return []lan.Interface{
				{Name: "eth0", Flags: net.FlagUp | net.FlagBroadcast, Addrs: []net.Addr{ipnet(t, "10.0.0.5/8")}},
				{Name: "wlan0", Flags: upRunning, Addrs: []net.Addr{ipnet(t, "192.168.1.20/24")}},
			}
		}, addrs("192.168.1.20", "10.0.0.5")},
		{"Deduplicated", func(t *testing.T) []lan.Interface {
			return []lan.Interface{
				{Name: "eth0", Flags: upRunning, Addrs: []net.Addr{ipnet(t, "10.0.0.5/8"), &net.IPAddr{IP: net.ParseIP("10.0.0.5")}}},
				{Name: "eth0:1", Flags: upRunning, Addrs: []net.Addr{ipnet(t, "10.0.0.5/8")}},
			}
		}, addrs("10.0.0.5")},
		{"OddAddresses", func(t *testing.T) []lan.Interface {
			return []lan.Interface{{Name: "eth0", Flags: upRunning, Addrs: []net.Addr{
				ipnet(t, "0.0.0.0/0"), ipnet(t, "224.0.0.1/32"), ipnet(t, "ff02::1/128"), ipnet(t, "127.0.1.1/8"),
				&net.IPAddr{IP: net.ParseIP("fe80::9"), Zone: "eth0"}, &net.UnixAddr{Name: "/x", Net: "unix"},
				&net.IPNet{IP: net.ParseIP("::ffff:192.168.5.5"), Mask: net.CIDRMask(120, 128)},
			}}}
		}, addrs("192.168.5.5")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lan.Addrs(tc.ifaces(t))
			if got == nil {
				got = []netip.Addr{}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Addrs = %v, want %v", got, tc.want)
			}
			// The same input gives the same order every time.
			if again := lan.Addrs(tc.ifaces(t)); len(got) > 0 && !reflect.DeepEqual(again, got) {
				t.Fatalf("second call = %v, first %v", again, got)
			}
		})
	}
}

// TestLANMachine runs against this machine's real interfaces: every
// address found must belong to an interface that is up, not be loopback
// or link-local, and come out of URLs as a link a phone could open.
func TestLANMachine(t *testing.T) {
	ifaces, err := lan.Interfaces()
	if err != nil {
		t.Fatalf("Interfaces: %v", err)
	}
	if len(ifaces) == 0 {
		t.Fatal("Interfaces found none; every machine has at least loopback")
	}
	got := lan.Addrs(ifaces)
	if len(got) == 0 {
		t.Skip("this machine has no LAN address (no interface that is up, not loopback, with a non-link-local address); the synthetic cases of TestLANAddrs still ran")
	}
	real, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	owner := map[netip.Addr]net.Interface{}
	for _, ifc := range real {
		as, _ := ifc.Addrs()
		for _, a := range as {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					owner[ip.Unmap()] = ifc
				}
			}
		}
	}
	seen6 := false
	for _, a := range got {
		ifc, ok := owner[a]
		if !ok {
			t.Errorf("%s is not an address of any interface", a)
			continue
		}
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 || a.IsLoopback() || a.IsLinkLocalUnicast() {
			t.Errorf("%s (%s, %v) should not be listed", a, ifc.Name, ifc.Flags)
		}
		if a.Is4() && seen6 {
			t.Errorf("IPv4 %s comes after an IPv6 address in %v", a, got)
		}
		seen6 = seen6 || a.Is6()
	}
	t.Logf("LAN addresses: %v", got)

	urls := lan.URLs("http", 8080)
	if len(urls) != len(got) {
		t.Fatalf("URLs = %v, want one per address of %v", urls, got)
	}
	for i, u := range urls {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "http" || p.Port() != "8080" || p.Path != "" {
			t.Errorf("URLs[%d] = %q is not http://ADDR:8080 (%v)", i, u, err)
			continue
		}
		if ip, err := netip.ParseAddr(p.Hostname()); err != nil || ip != got[i] {
			t.Errorf("URLs[%d] = %q, want address %s", i, u, got[i])
		}
	}
}

func TestLANBaseURL(t *testing.T) {
	for _, tc := range []struct {
		scheme, host string
		port         int
		want         string
	}{
		{"http", "192.168.1.20", 8080, "http://192.168.1.20:8080"},
		{"http", "fd00::2", 8080, "http://[fd00::2]:8080"},
		{"http", "[fd00::2]", 80, "http://[fd00::2]"},
		{"https", "live.example.org", 443, "https://live.example.org"},
		{"https", "live.example.org", 0, "https://live.example.org"},
		{"http", "10.0.0.1", 443, "http://10.0.0.1:443"},
	} {
		if got := lan.BaseURL(tc.scheme, tc.host, tc.port); got != tc.want {
			t.Errorf("BaseURL(%q, %q, %d) = %q, want %q", tc.scheme, tc.host, tc.port, got, tc.want)
		}
	}
}

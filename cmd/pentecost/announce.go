package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pentecost/pentecost/lan"
)

// ListenerURLs returns the base URLs phones can open the listener pages
// at: PUBLIC_URL when set; with --tls-auto its domains; else, when the server listens on every
// address, this machine's LAN addresses (a phone cannot open localhost);
// else the one address it listens on. Listeners use plain HTTP when it is
// served (they only play sound, which needs no certificate).
func (m *Main) ListenerURLs() []string {
	if u := strings.TrimSuffix(m.Config.PublicURL, "/"); u != "" {
		return []string{u}
	}
	if m.ACME != nil {
		// A public server: its domains, over HTTPS.
		return m.HTTPSURLs()
	}
	plain, tlsAddr := m.Listening()
	scheme, addr := "http", plain
	if addr == nil {
		scheme, addr = "https", tlsAddr
	}
	if addr == nil {
		return nil
	}
	if !addr.IP.IsUnspecified() {
		return []string{lan.BaseURL(scheme, addr.IP.String(), addr.Port)}
	}
	if urls := lan.URLs(scheme, addr.Port); len(urls) > 0 {
		return urls
	}
	return []string{scheme + "://" + net.JoinHostPort("localhost", strconv.Itoa(addr.Port))}
}

// announceListeners logs, and prints once as text, where listeners join,
// so that whoever starts the server at a venue knows what phones open.
func (m *Main) announceListeners() {
	urls := m.ListenerURLs()
	if len(urls) == 0 {
		return
	}
	m.Logger.Info("listeners can join at", "urls", urls)
	var b strings.Builder
	b.WriteString("\nListeners on this network open (or scan the QR code on the speaker page):\n")
	for _, u := range urls {
		fmt.Fprintf(&b, "  %s/\n", u)
	}
	b.WriteString("\n")
	fmt.Fprint(m.Stdout, b.String())
}

// addrPort returns the port of a listen address such as ":8080", or 0.
func addrPort(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

package main

import (
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pentecost/pentecost/certs"
	pentecosthttp "github.com/pentecost/pentecost/http"
)

// Directories kept in the data dir for TLS.
const (
	tlsDir  = "tls"  // --tls-self-signed: the private CA and this machine's certificate
	acmeDir = "acme" // --tls-auto: the ACME account key and certificates
)

// openCerts sets up the certificates of --tls-self-signed or --tls-auto
// for s (--tls-cert is s's own business).
func (m *Main) openCerts(s *pentecosthttp.Server) error {
	cfg := m.Config
	switch {
	case cfg.TLSSelfSigned:
		l := certs.NewLocal(filepath.Join(cfg.DataDir, tlsDir))
		l.Logger = m.Logger.With("component", "certs")
		if err := l.Open(); err != nil {
			return err
		}
		m.Local = l
		s.TLSConfig = l.TLSConfig()
	case len(cfg.TLSAuto) > 0:
		a := certs.NewACME(cfg.TLSAuto, filepath.Join(cfg.DataDir, acmeDir))
		a.DirectoryURL = cfg.ACMEDirectory
		a.Email = cfg.ACMEEmail
		a.HTTPAddr = m.ACMEHTTPAddr
		a.HTTPClient = m.ACMEHTTPClient
		a.Logger = m.Logger.With("component", "acme")
		// The manager must exist before the TLS port opens; Run opens the
		// :80 server once the TLS port is known.
		if err := a.Prepare(); err != nil {
			return err
		}
		m.ACME = a
		s.TLSConfig = a.TLSConfig()
	}
	return nil
}

// Listening returns the addresses the server listens on: plain HTTP (for
// listeners) and HTTPS (for speakers, who need it for the microphone).
// Either is nil when not served: with only --tls-cert, --addr itself is
// HTTPS and plain is nil. Call it after Run.
func (m *Main) Listening() (plain, tls *net.TCPAddr) {
	if m.HTTPServer == nil {
		return nil, nil
	}
	return m.HTTPServer.Addrs()
}

// HTTPSURLs returns the base URLs the speaker's page can be opened at
// over HTTPS, most useful first: with --tls-auto its domains; with
// --tls-self-signed the names and addresses in the certificate, LAN
// addresses first.
func (m *Main) HTTPSURLs() []string {
	_, tlsAddr := m.Listening()
	if tlsAddr == nil {
		return nil
	}
	var hosts []string
	switch {
	case m.ACME != nil:
		hosts = m.Config.TLSAuto
	case !tlsAddr.IP.IsUnspecified():
		hosts = []string{tlsAddr.IP.String()}
	case m.Local != nil:
		leaf := m.Local.Leaf()
		for _, ip := range leaf.IPAddresses {
			if !ip.IsLoopback() {
				hosts = append(hosts, ip.String())
			}
		}
		for _, n := range leaf.DNSNames {
			if n != "localhost" {
				hosts = append(hosts, n)
			}
		}
		hosts = append(hosts, "localhost")
	default:
		hosts = []string{"localhost"}
	}
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = certs.HTTPSURL(h, tlsAddr.Port)
	}
	return out
}

// announceHTTPS logs, and prints once as text, where the speaker's page
// is served over HTTPS and, with --tls-self-signed, where the CA is.
func (m *Main) announceHTTPS() {
	urls := m.HTTPSURLs()
	if len(urls) == 0 || (m.Local == nil && m.ACME == nil) {
		return
	}
	var b strings.Builder
	b.WriteString("\nHTTPS for speakers (the microphone needs it):\n")
	for _, u := range urls {
		fmt.Fprintf(&b, "  %s/speak\n", u)
	}
	if m.Local != nil {
		caURL := ""
		if plain, _ := m.Listening(); plain != nil {
			host := "localhost"
			if len(urls) > 0 && !strings.Contains(urls[0], "localhost") {
				host = strings.TrimPrefix(urls[0], "https://")
				if h, _, err := net.SplitHostPort(host); err == nil {
					host = h
				}
			}
			if !plain.IP.IsUnspecified() {
				host = plain.IP.String()
			}
			caURL = "http://" + net.JoinHostPort(host, strconv.Itoa(plain.Port)) + "/ca.crt"
		}
		// /ca.crt travels over plain HTTP: the fingerprint lets whoever
		// installs it check that nobody on the network swapped it.
		fingerprint := caFingerprint(m.Local.CA())
		fmt.Fprintf(&b, "The certificate comes from this server's own CA, so browsers warn the first time:\naccept the warning, or install the CA on the device from %s (file %s;\nits SHA-256 fingerprint, to check on the device before trusting it: %s).\n\n", caURL, m.Local.CAPath(), fingerprint)
		m.Logger.Info("serving HTTPS with a private CA", "urls", urls, "ca", m.Local.CAPath(), "ca_url", caURL,
			"spki_sha256", certs.SPKIHash(m.Local.Leaf()), "ca_sha256", fingerprint)
	} else {
		b.WriteString("Certificates come from the ACME CA on the first visit to each name.\n\n")
		http := "off"
		if a := m.ACME.HTTPListenAddr(); a != nil {
			http = a.String()
		}
		m.Logger.Info("serving HTTPS with ACME certificates", "urls", urls, "directory", m.Config.ACMEDirectory, "http_challenges_and_redirect", http)
	}
	fmt.Fprint(m.Stdout, b.String())
}

// caFingerprint returns the SHA-256 of a certificate as phones and
// browsers show it: upper-case hex pairs separated by colons.
func caFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

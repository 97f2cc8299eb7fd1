// Package certs gives Pentecost its TLS certificates without a proxy or
// openssl: a private certificate authority kept in the data dir and a
// certificate it signs for this machine (Local, for --tls-self-signed),
// certificates from an ACME CA such as Let's Encrypt (ACME, for
// --tls-auto), and a listener that answers plain HTTP sent to a TLS port
// with a redirect (NewListener).
package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Files Local keeps in its directory.
const (
	CAFile      = "ca.pem"
	CAKeyFile   = "ca-key.pem"
	LeafFile    = "cert.pem"
	LeafKeyFile = "key.pem"
)

// Defaults for a new Local.
const (
	DefaultCAValidity    = 10 * 365 * 24 * time.Hour
	DefaultLeafValidity  = 90 * 24 * time.Hour
	DefaultRenewBefore   = 30 * 24 * time.Hour
	DefaultCheckInterval = time.Hour

	// addrRecheck bounds how often a connection to an address the
	// certificate lacks makes GetCertificate list the interfaces again.
	addrRecheck = time.Minute
)

// Local is a private certificate authority kept in Dir and a certificate it
// signs for this machine's names (its hostname, hostname.local, localhost)
// and addresses (those of its up, non-loopback interfaces, 127.0.0.1, ::1).
//
// The CA is created once and reused; devices that installed it keep
// trusting the server. The machine's certificate is renewed before it
// expires and reissued when the machine's addresses change; TLS
// connections get the current one through GetCertificate, so no restart is
// needed. Its key is kept across renewals, so its SPKI hash stays the same.
type Local struct {
	// Dir holds the CA and the certificate (created with mode 0700).
	Dir string
	// Hostname is the machine's name (os.Hostname by default).
	Hostname string
	// Addrs returns the machine's LAN addresses (LANAddrs by default).
	Addrs func() ([]netip.Addr, error)
	// Now returns the current time. Tests replace it.
	Now func() time.Time

	LeafValidity  time.Duration // DefaultLeafValidity
	RenewBefore   time.Duration // renew when less than this is left (DefaultRenewBefore)
	CheckInterval time.Duration // how often Open's background check runs (DefaultCheckInterval)

	Logger *slog.Logger

	mu          sync.Mutex
	ca          *x509.Certificate
	caKey       *ecdsa.PrivateKey
	leafKey     *ecdsa.PrivateKey
	cert        *tls.Certificate // current; Leaf is set
	lastRecheck time.Time

	stop chan struct{}
	done chan struct{}
}

// NewLocal returns a Local keeping its files in dir.
func NewLocal(dir string) *Local {
	return &Local{
		Dir:           dir,
		Addrs:         LANAddrs,
		Now:           time.Now,
		LeafValidity:  DefaultLeafValidity,
		RenewBefore:   DefaultRenewBefore,
		CheckInterval: DefaultCheckInterval,
		Logger:        slog.New(slog.DiscardHandler),
	}
}

// Open loads the CA from Dir or creates it, loads the machine's certificate
// or issues it, renews it if due, and starts checking it every
// CheckInterval until Close.
func (l *Local) Open() error {
	if l.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		l.Hostname = strings.ToLower(h)
	}
	if l.Addrs == nil {
		l.Addrs = LANAddrs
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	if l.LeafValidity <= 0 {
		l.LeafValidity = DefaultLeafValidity
	}
	if l.RenewBefore <= 0 || l.RenewBefore >= l.LeafValidity {
		l.RenewBefore = l.LeafValidity / 3
	}
	if l.CheckInterval <= 0 {
		l.CheckInterval = DefaultCheckInterval
	}
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := l.loadOrCreateCA(); err != nil {
		return err
	}
	if err := l.loadLeaf(); err != nil {
		return err
	}
	if _, err := l.Check(); err != nil {
		return err
	}
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.run()
	return nil
}

// Close stops the background check.
func (l *Local) Close() error {
	if l.stop != nil {
		close(l.stop)
		<-l.done
		l.stop = nil
	}
	return nil
}

func (l *Local) run() {
	defer close(l.done)
	t := time.NewTicker(l.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			if _, err := l.Check(); err != nil {
				l.Logger.Error("renew the self-signed certificate", "error", err)
			}
		}
	}
}

// Check reissues the machine's certificate when it expires within
// RenewBefore, lacks one of the machine's current names or addresses, or
// was not signed by the CA. It reports whether it reissued.
func (l *Local) Check() (bool, error) {
	names, ips := l.wanted()
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.Now()
	if c := l.cert; c != nil && c.Leaf.CheckSignatureFrom(l.ca) == nil &&
		now.Before(c.Leaf.NotAfter.Add(-l.RenewBefore)) && sameNames(c.Leaf, names, ips) {
		return false, nil
	}
	reason := "first start"
	if l.cert != nil {
		reason = "names or addresses changed"
		if !now.Before(l.cert.Leaf.NotAfter.Add(-l.RenewBefore)) {
			reason = "expires soon"
		}
	}
	if err := l.issueLocked(names, ips); err != nil {
		return false, err
	}
	l.Logger.Info("issued the self-signed certificate", "reason", reason,
		"names", strings.Join(names, ","), "addresses", joinIPs(ips), "expires", l.cert.Leaf.NotAfter.Format(time.RFC3339))
	return true, nil
}

// GetCertificate returns the current certificate, for tls.Config. A
// connection to an address the certificate lacks (the machine joined
// another network) makes it look at the interfaces again, at most once a
// minute.
func (l *Local) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.mu.Lock()
	cert := l.cert
	recheck := false
	if hello != nil && hello.Conn != nil && l.Now().Sub(l.lastRecheck) > addrRecheck {
		if a, ok := hello.Conn.LocalAddr().(*net.TCPAddr); ok && !slices.ContainsFunc(cert.Leaf.IPAddresses, a.IP.Equal) {
			recheck = true
			l.lastRecheck = l.Now()
		}
	}
	l.mu.Unlock()
	if recheck {
		if renewed, err := l.Check(); err != nil {
			l.Logger.Error("reissue the self-signed certificate", "error", err)
		} else if renewed {
			l.mu.Lock()
			cert = l.cert
			l.mu.Unlock()
		}
	}
	return cert, nil
}

// TLSConfig returns a server configuration serving the current certificate.
func (l *Local) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: l.GetCertificate}
}

// Leaf returns the machine's current certificate.
func (l *Local) Leaf() *x509.Certificate {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cert.Leaf
}

// CA returns the CA certificate.
func (l *Local) CA() *x509.Certificate {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ca
}

// CAPath returns the path of the CA certificate (PEM).
func (l *Local) CAPath() string { return filepath.Join(l.Dir, CAFile) }

// SPKIHash returns base64(sha256(SubjectPublicKeyInfo)) of the machine's
// certificate, the form Chromium's --ignore-certificate-errors-spki-list
// and HTTP public key pins take. It survives renewals.
func SPKIHash(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ServeHTTP serves the CA certificate, DER-encoded as
// application/x-x509-ca-cert: the form iOS, Android and desktop browsers
// offer to install when they download it.
func (l *Local) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ca := l.CA()
	w.Header().Set("Content-Type", "application/x-x509-ca-cert")
	w.Header().Set("Content-Disposition", `attachment; filename="pentecost-local-ca.crt"`)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", ca.NotBefore, bytes.NewReader(ca.Raw))
}

// wanted returns the names and addresses the certificate should cover.
func (l *Local) wanted() ([]string, []net.IP) {
	names := []string{l.Hostname}
	if short, _, _ := strings.Cut(l.Hostname, "."); short != "" && short != "localhost" {
		names = append(names, short+".local")
	}
	names = append(names, "localhost")
	ips := []net.IP{net.IPv4(127, 0, 0, 1).To4(), net.IPv6loopback}
	addrs, err := l.Addrs()
	if err != nil {
		l.Logger.Warn("list network addresses for the certificate", "error", err)
	}
	for _, a := range addrs {
		ips = append(ips, net.IP(a.Unmap().AsSlice()))
	}
	return dedupe(names), dedupeIPs(ips)
}

func (l *Local) loadOrCreateCA() error {
	certPath, keyPath := filepath.Join(l.Dir, CAFile), filepath.Join(l.Dir, CAKeyFile)
	certPEM, cerr := os.ReadFile(certPath)
	keyPEM, kerr := os.ReadFile(keyPath)
	switch {
	case cerr == nil && kerr == nil:
		ca, key, err := parsePair(certPEM, keyPEM)
		if err != nil {
			return fmt.Errorf("certs: the CA in %s: %w", l.Dir, err)
		}
		l.ca, l.caKey = ca, key
		return nil
	case errors.Is(cerr, os.ErrNotExist) && errors.Is(kerr, os.ErrNotExist):
	case cerr != nil && !errors.Is(cerr, os.ErrNotExist):
		return fmt.Errorf("certs: %w", cerr)
	case kerr != nil && !errors.Is(kerr, os.ErrNotExist):
		return fmt.Errorf("certs: %w", kerr)
	default:
		// Making a new CA would silently break every device that trusts
		// the old one: a person must decide.
		return fmt.Errorf("certs: %s has only one of %s and %s; restore the missing one, or remove both to create a new CA (devices that installed the old one must then install the new one)", l.Dir, CAFile, CAKeyFile)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	now := l.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Pentecost local CA (" + l.Hostname + ")", Organization: []string{"Pentecost"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(DefaultCAValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("certs: create CA: %w", err)
	}
	ca, _ := x509.ParseCertificate(der)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	// The key first: a certificate without its key would block the next start.
	if err := writeFileAtomic(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return err
	}
	if err := writeFileAtomic(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	l.ca, l.caKey = ca, key
	l.Logger.Info("created a private certificate authority", "ca", certPath)
	return nil
}

// loadLeaf loads the machine's certificate and key if present. A missing
// or unusable certificate is reissued by Check; the key is kept when it
// can be read, so that the SPKI hash survives.
func (l *Local) loadLeaf() error {
	keyPEM, err := os.ReadFile(filepath.Join(l.Dir, LeafKeyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		l.Logger.Warn("unreadable certificate key: making a new one", "file", LeafKeyFile, "error", err)
		return nil
	}
	l.leafKey = key
	certPEM, err := os.ReadFile(filepath.Join(l.Dir, LeafFile))
	if err != nil {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil
	}
	l.cert = &cert
	return nil
}

func (l *Local) issueLocked(names []string, ips []net.IP) error {
	if l.leafKey == nil {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return fmt.Errorf("certs: %w", err)
		}
		if err := writeFileAtomic(filepath.Join(l.Dir, LeafKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
			return err
		}
		l.leafKey = key
	}
	now := l.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[0], Organization: []string{"Pentecost"}},
		NotBefore:    now.Add(-time.Hour), // clocks of phones differ
		NotAfter:     now.Add(l.LeafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, l.ca, &l.leafKey.PublicKey, l.caKey)
	if err != nil {
		return fmt.Errorf("certs: issue certificate: %w", err)
	}
	leaf, _ := x509.ParseCertificate(der)
	// The chain includes the CA, so that a client given only the CA's
	// fingerprint, or one that trusts it, can build the path.
	chainPEM := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: l.ca.Raw})...)
	if err := writeFileAtomic(filepath.Join(l.Dir, LeafFile), chainPEM, 0o644); err != nil {
		return err
	}
	l.cert = &tls.Certificate{Certificate: [][]byte{der, l.ca.Raw}, PrivateKey: l.leafKey, Leaf: leaf}
	return nil
}

// LANAddrs returns the addresses of the machine's up, non-loopback
// interfaces, leaving out link-local ones (a certificate cannot name
// their zone).
func LANAddrs() ([]netip.Addr, error) {
	ifaces, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []netip.Addr
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			n, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, ok := netip.AddrFromSlice(n.IP)
			if !ok {
				continue
			}
			ip = ip.Unmap()
			if ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsUnspecified() {
				continue
			}
			out = append(out, ip)
		}
	}
	return out, nil
}

func sameNames(c *x509.Certificate, names []string, ips []net.IP) bool {
	if !slices.Equal(sortedCopy(c.DNSNames), sortedCopy(names)) || len(c.IPAddresses) != len(ips) {
		return false
	}
	for _, ip := range ips {
		if !slices.ContainsFunc(c.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func dedupe(names []string) []string {
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

func dedupeIPs(ips []net.IP) []net.IP {
	var out []net.IP
	for _, ip := range ips {
		if !slices.ContainsFunc(out, ip.Equal) {
			out = append(out, ip)
		}
	}
	return out
}

func joinIPs(ips []net.IP) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail
	}
	return n.Add(n, big.NewInt(1))
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, nil, errors.New("no PEM certificate")
	}
	cert, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := parseKey(keyPEM)
	if err != nil {
		return nil, nil, err
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("the key does not match the certificate")
	}
	return cert, key, nil
}

func parseKey(keyPEM []byte) (*ecdsa.PrivateKey, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("no PEM key")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, err
	}
	key, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, errors.New("not an ECDSA key")
	}
	return key, nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, so that a crash leaves the old file or the new one, never half.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}

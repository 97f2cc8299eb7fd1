package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfig(t *testing.T) {
	t.Run("Defaults", func(t *testing.T) {
		c, err := LoadConfig(nil, env(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if c.Addr != ":8080" || c.DataDir != "./pentecost-data" {
			t.Fatalf("addr=%q dataDir=%q", c.Addr, c.DataDir)
		}
		if c.MaxListeners != 500 || c.SessionsPerHour != 50 || c.ListenerJoinsPerMin != 10 || c.ConnAttemptsPerMin != 20 {
			t.Fatalf("limits: %+v", c)
		}
		if c.Retention != 24*time.Hour || c.RefreshAfter != 0 {
			t.Fatalf("retention=%v refresh=%v", c.Retention, c.RefreshAfter)
		}
	})
	t.Run("DecimalDurations", func(t *testing.T) {
		c, err := LoadConfig(nil, env(map[string]string{"CONNECTION_REFRESH_MINUTES": "0.1", "DATA_RETENTION_HOURS": "0.5", "HEARTBEAT_TIMEOUT_SECONDS": "45.5"}), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if c.RefreshAfter != 6*time.Second || c.Retention != 30*time.Minute || c.HeartbeatTimeout != 45500*time.Millisecond {
			t.Fatalf("refresh=%v retention=%v timeout=%v", c.RefreshAfter, c.Retention, c.HeartbeatTimeout)
		}
	})
	t.Run("Precedence", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "pentecost.env")
		if err := os.WriteFile(file, []byte("# comment\nMAX_LISTENERS_PER_SESSION=100\nPENTECOST_ADDR=:7000\nLOG_LEVEL=warn\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig([]string{"--config", file, "--addr", ":9000"},
			env(map[string]string{"PENTECOST_ADDR": ":8000", "LOG_LEVEL": "debug"}), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		// flag > env > file > default
		if c.Addr != ":9000" || c.LogLevel != "debug" || c.MaxListeners != 100 {
			t.Fatalf("addr=%q level=%q max=%d", c.Addr, c.LogLevel, c.MaxListeners)
		}
	})
	t.Run("ErrUnknownFileKey", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "pentecost.env")
		if err := os.WriteFile(file, []byte("MAX_LISTENER_PER_SESSION=100\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadConfig([]string{"--config", file}, env(nil), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "MAX_LISTENER_PER_SESSION") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("SilenceWarning", func(t *testing.T) {
		c, err := LoadConfig(nil, env(nil), &bytes.Buffer{})
		if err != nil || c.SilenceWarning != 10*time.Second {
			t.Fatalf("default = %v, %v", c.SilenceWarning, err)
		}
		c, err = LoadConfig([]string{"--silence-warning", "0"}, env(map[string]string{"SPEAKER_SILENCE_WARNING_SECONDS": "30"}), &bytes.Buffer{})
		if err != nil || c.SilenceWarning != 0 {
			t.Fatalf("flag over environment = %v, %v", c.SilenceWarning, err)
		}
		if _, err := LoadConfig(nil, env(map[string]string{"SPEAKER_SILENCE_WARNING_SECONDS": "-1"}), &bytes.Buffer{}); err == nil {
			t.Fatal("negative seconds accepted")
		}
	})
	t.Run("SignInLinks", func(t *testing.T) {
		c, err := LoadConfig([]string{"--sign-in-links", "Cognito|https://auth.example.org/oauth2/authorize?client_id=x&response_type=token|access_token; Keycloak|https://id.example.org/auth"}, env(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.SignInLinks) != 2 || c.SignInLinks[0].TokenParam != "access_token" || c.SignInLinks[1].TokenParam != "id_token" || c.SignInLinks[1].Name != "Keycloak" {
			t.Fatalf("%+v", c.SignInLinks)
		}
		for _, bad := range []string{"NoURL", "X|ftp://a", "X|https://a|code"} {
			if _, err := LoadConfig([]string{"--sign-in-links", bad}, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "SIGN_IN_LINKS") {
				t.Errorf("%q: err = %v", bad, err)
			}
		}
	})
	t.Run("TLS", func(t *testing.T) {
		for _, tt := range []struct {
			args         []string
			addr, domain string
		}{
			{[]string{"--tls-self-signed"}, ":8443", ""},
			{[]string{"--tls-auto", "Live.Example.org., www.example.org"}, ":443", "live.example.org"},
			{[]string{"--tls-self-signed", "--tls-addr", "127.0.0.1:9443"}, "127.0.0.1:9443", ""},
			{[]string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, "", ""},
		} {
			c, err := LoadConfig(tt.args, env(nil), &bytes.Buffer{})
			if err != nil {
				t.Fatalf("%v: %v", tt.args, err)
			}
			if c.TLSAddr != tt.addr || (tt.domain != "" && c.TLSAuto[0] != tt.domain) {
				t.Errorf("%v: tls addr %q, domains %v", tt.args, c.TLSAddr, c.TLSAuto)
			}
		}
	})
	t.Run("TrustedProxies", func(t *testing.T) {
		c, err := LoadConfig([]string{"--trusted-proxies", "10.0.0.0/8, 127.0.0.1"}, env(nil), &bytes.Buffer{})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.TrustedProxies) != 2 || c.TrustedProxies[1].String() != "127.0.0.1/32" {
			t.Fatalf("%v", c.TrustedProxies)
		}
	})
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"ErrNotANumber", nil, map[string]string{"MAX_LISTENERS_PER_SESSION": "lots"}, "MAX_LISTENERS_PER_SESSION"},
		{"ErrNegative", []string{"--heartbeat-interval", "-1"}, nil, "--heartbeat-interval"},
		{"ErrFractionalCount", nil, map[string]string{"RATE_LIMIT_SESSIONS_PER_HOUR": "1.5"}, "RATE_LIMIT_SESSIONS_PER_HOUR"},
		{"ErrTLSHalf", []string{"--tls-cert", "c.pem"}, nil, "--tls-key"},
		{"ErrTLSModes", []string{"--tls-self-signed", "--tls-auto", "live.example.org"}, nil, "--tls-auto"},
		{"ErrTLSModesCert", []string{"--tls-cert", "c.pem", "--tls-key", "k.pem"}, map[string]string{"PENTECOST_TLS_SELF_SIGNED": "1"}, "--tls-self-signed"},
		{"ErrTLSAutoIP", []string{"--tls-auto", "192.168.1.20"}, nil, "PENTECOST_TLS_AUTO"},
		{"ErrTLSAutoNoDot", []string{"--tls-auto", "lectern"}, nil, "--tls-auto"},
		{"ErrTLSAddrAlone", []string{"--tls-addr", ":8443"}, nil, "--tls-addr"},
		{"ErrTLSAddrSame", []string{"--tls-self-signed", "--tls-addr", ":8080"}, nil, "--tls-addr"},
		{"ErrACMEEmailAlone", []string{"--acme-email", "ops@example.org"}, nil, "--tls-auto"},
		{"ErrACMEDirectoryAlone", []string{"--acme-directory", "https://acme-staging-v02.api.letsencrypt.org/directory"}, nil, "--tls-auto"},
		{"ErrCognitoHalf", nil, map[string]string{"COGNITO_USER_POOL_ID": "eu-west-1_abc"}, "AWS_REGION"},
		{"ErrProxy", []string{"--trusted-proxies", "not-an-ip"}, nil, "not-an-ip"},
		{"ErrHeartbeat", nil, map[string]string{"HEARTBEAT_TIMEOUT_SECONDS": "10", "HEARTBEAT_INTERVAL_SECONDS": "30"}, "HEARTBEAT_TIMEOUT_SECONDS"},
		{"ErrLevel", []string{"--log-level", "loud"}, nil, "--log-level"},
		{"ErrExtraArg", []string{"extra"}, nil, "extra"},
		{"ErrMissingFile", []string{"--config", "/nonexistent/pentecost.env"}, nil, "config file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadConfig(tt.args, env(tt.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			}
		})
	}
}

// TestServeHelp checks that --help documents every setting with its
// flag, environment variable and default.
func TestServeHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := LoadConfig([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v", err)
	}
	for _, s := range settings {
		if !strings.Contains(out.String(), "--"+s.flag) || !strings.Contains(out.String(), "env "+s.env) {
			t.Errorf("help lacks --%s / %s", s.flag, s.env)
		}
	}
	for _, name := range []string{"SESSION_MAX_DURATION_HOURS", "MAX_LISTENERS_PER_SESSION", "RATE_LIMIT_SESSIONS_PER_HOUR",
		"RATE_LIMIT_LISTENER_JOINS_PER_MIN", "RATE_LIMIT_CONNECTION_ATTEMPTS_PER_MIN", "RATE_LIMIT_HEARTBEATS_PER_MIN",
		"HEARTBEAT_INTERVAL_SECONDS", "HEARTBEAT_TIMEOUT_SECONDS", "CONNECTION_REFRESH_MINUTES", "CONNECTION_WARNING_MINUTES",
		"CONNECTION_MAX_DURATION_HOURS", "DATA_RETENTION_HOURS"} {
		if !strings.Contains(out.String(), name) {
			t.Errorf("help lacks the original system's %s", name)
		}
	}
}

// TestREADMEConfigTable keeps the README's configuration table equal to
// the settings table; on failure it prints the table to paste.
func TestREADMEConfigTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| environment | flag | default | meaning |\n|---|---|---|---|\n")
	for _, s := range settings {
		def := s.def
		if def == "" {
			def = "(none)"
		}
		fmt.Fprintf(&b, "| `%s` | `--%s` | `%s` | %s |\n", s.env, s.flag, def, strings.ReplaceAll(s.help, "|", "\\|"))
	}
	if !strings.Contains(string(readme), b.String()) {
		t.Fatalf("README.md configuration table is out of date; it should contain:\n%s", b.String())
	}
}

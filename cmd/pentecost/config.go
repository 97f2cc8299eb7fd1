package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"math"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pentecost/pentecost/certs"
	"github.com/pentecost/pentecost/redis"
	"github.com/pentecost/pentecost/web"
)

// setting is one configuration value: a default, an optional file entry and
// environment variable, and a flag, applied in that order.
type setting struct {
	flag, env, def, help string
	// set parses the final text into the config; its error names the setting.
	set func(c *Config, v string) error
}

// Config is everything `pentecost serve` can be told. Every field has a
// default, a flag and an environment variable (see settings).
type Config struct {
	Addr    string
	DataDir string
	TLSCert string
	TLSKey  string
	// TLSAddr serves HTTPS and WSS beside Addr; set by validate from the
	// TLS mode when not given.
	TLSAddr       string
	TLSSelfSigned bool
	TLSAuto       []string // ACME domains
	ACMEDirectory string
	ACMEEmail     string
	PublicURL     string
	LogLevel      string
	LogFormat     string
	Pprof         bool
	MetricsAddr   string // own listener for /metrics; empty: the API port, private clients only
	TokenTTL      time.Duration

	TrustedProxies []netip.Prefix
	AllowedOrigins []string
	OIDCIssuers    []string // raw specs, parsed by auth.ParseOIDCConfig
	SignInLinks    []web.SignInLink
	CognitoRegion  string
	CognitoPool    string
	CognitoClient  string
	WorkerSecrets  []string

	SessionMaxIdle      time.Duration
	MaxListeners        int
	SessionsPerHour     int
	ListenerJoinsPerMin int
	ConnAttemptsPerMin  int
	HeartbeatsPerMin    int
	LoginAttemptsPerMin int
	SessionMissesPerMin int // lookups of unknown session IDs per client
	MaxConnsPerClient   int // open WebSocket connections per client and node
	ClientIPv4Prefix    int // bits of an IPv4 address that make one client
	ClientIPv6Prefix    int // bits of an IPv6 address that make one client

	HeartbeatInterval time.Duration
	HeartbeatTimeout  time.Duration
	RefreshAfter      time.Duration
	WarningAfter      time.Duration
	MaxConnDuration   time.Duration
	SpeakerGrace      time.Duration
	SilenceWarning    time.Duration // speaker's microphone silent this long while live: warn (0: never)
	AccountCheck      time.Duration // live speakers' tokens are verified again this often (0: never)
	Retention         time.Duration
	ShutdownTimeout   time.Duration
	WriteCoalesce     time.Duration
	CoalesceAbove     int
	IOURing           bool
	MaxFrameAge       time.Duration // audio older than this reaching a hub is skipped (0: never)

	// RedisURL, when set, shares every node's state through Redis.
	RedisURL    string
	PresenceTTL time.Duration
}

// settings lists every setting once; --help, the README table and parsing
// all come from here so they cannot drift apart.
var settings = []setting{
	{"addr", "PENTECOST_ADDR", ":8080", "address to listen on", func(c *Config, v string) error { c.Addr = v; return nil }},
	{"data-dir", "PENTECOST_DATA_DIR", "./pentecost-data", "directory for the database and signing key", func(c *Config, v string) error {
		if v == "" {
			return fmt.Errorf("must not be empty")
		}
		c.DataDir = v
		return nil
	}},
	{"tls-cert", "PENTECOST_TLS_CERT", "", "TLS certificate file (PEM); with --tls-key serves HTTPS and WSS, TLS 1.2+, on --addr itself, or on --tls-addr when given", func(c *Config, v string) error { c.TLSCert = v; return nil }},
	{"tls-key", "PENTECOST_TLS_KEY", "", "TLS private key file (PEM)", func(c *Config, v string) error { c.TLSKey = v; return nil }},
	{"tls-self-signed", "PENTECOST_TLS_SELF_SIGNED", "false", "HTTPS on --tls-addr with a private CA made once in the data dir (tls/ca.pem, served at /ca.crt) and a certificate for this machine's names and LAN addresses, renewed by itself; --addr stays plain HTTP for listeners", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.TLSSelfSigned = b
		return err
	}},
	{"tls-auto", "PENTECOST_TLS_AUTO", "", "comma-separated public DNS names: HTTPS on --tls-addr with certificates from an ACME CA (Let's Encrypt), obtained and renewed by themselves and cached in the data dir (acme/); HTTP-01 challenges and a redirect to HTTPS on :80", func(c *Config, v string) error {
		c.TLSAuto = nil
		for _, d := range splitList(v, ",") {
			d = strings.TrimSuffix(strings.ToLower(d), ".")
			if err := certs.ValidDomain(d); err != nil {
				return err
			}
			c.TLSAuto = append(c.TLSAuto, d)
		}
		return nil
	}},
	{"tls-addr", "PENTECOST_TLS_ADDR", "", "address for HTTPS and WSS beside --addr; default :8443 with --tls-self-signed, :443 with --tls-auto; with --tls-cert it serves that certificate here and keeps --addr plain", func(c *Config, v string) error { c.TLSAddr = v; return nil }},
	{"acme-directory", "PENTECOST_ACME_DIRECTORY", certs.DefaultACMEDirectory, "with --tls-auto: the ACME CA's directory URL (e.g. Let's Encrypt staging, https://acme-staging-v02.api.letsencrypt.org/directory)", func(c *Config, v string) error {
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return fmt.Errorf("must be the https URL of an ACME directory")
		}
		c.ACMEDirectory = v
		return nil
	}},
	{"acme-email", "PENTECOST_ACME_EMAIL", "", "with --tls-auto: contact address the ACME CA may write to about the certificates (optional)", func(c *Config, v string) error {
		if v != "" && !strings.Contains(v, "@") {
			return fmt.Errorf("must be an email address")
		}
		c.ACMEEmail = v
		return nil
	}},
	{"public-url", "PUBLIC_URL", "", "base URL listeners reach the server at (for QR codes and shared links); default: the URL each request came in on, with this machine's LAN address in place of localhost", func(c *Config, v string) error {
		if v == "" {
			c.PublicURL = ""
			return nil
		}
		u, err := url.Parse(v)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("must be an http or https URL such as https://live.example.org")
		}
		c.PublicURL = strings.TrimRight(v, "/")
		return nil
	}},
	{"log-level", "LOG_LEVEL", "info", "debug, info, warn or error", func(c *Config, v string) error {
		switch strings.ToLower(v) {
		case "debug", "info", "warn", "error":
			c.LogLevel = strings.ToLower(v)
			return nil
		}
		return fmt.Errorf("must be debug, info, warn or error")
	}},
	{"log-format", "LOG_FORMAT", "json", "json or text", func(c *Config, v string) error {
		if v != "json" && v != "text" {
			return fmt.Errorf("must be json or text")
		}
		c.LogFormat = v
		return nil
	}},
	{"pprof", "PENTECOST_PPROF", "false", "serve /debug/pprof/ for profiling, to loopback and private clients only (keep off in production)", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.Pprof = b
		return err
	}},
	{"metrics-addr", "PENTECOST_METRICS_ADDR", "", "address of a listener of its own for Prometheus' /metrics (e.g. 127.0.0.1:9090), which --addr then no longer answers; empty: /metrics on --addr, for clients on loopback and private addresses only", func(c *Config, v string) error { c.MetricsAddr = v; return nil }},
	{"token-ttl", "TOKEN_TTL_HOURS", "12", "lifetime of tokens from /auth/login, in hours", hours(func(c *Config) *time.Duration { return &c.TokenTTL })},
	{"trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated CIDRs or IPs whose X-Forwarded-For is believed", func(c *Config, v string) error {
		c.TrustedProxies = nil
		for _, s := range splitList(v, ",") {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return fmt.Errorf("%q is neither an IP nor a CIDR", s)
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			c.TrustedProxies = append(c.TrustedProxies, p.Masked())
		}
		return nil
	}},
	{"allowed-origins", "ALLOWED_ORIGINS", "", "comma-separated origins allowed to open WebSockets besides the server's own (e.g. https://app.example.org)", func(c *Config, v string) error {
		c.AllowedOrigins = splitList(v, ",")
		return nil
	}},
	{"oidc", "OIDC_ISSUERS", "", "external OIDC issuers, ';'-separated, each name=…,issuer=…,jwks=…,audience=a|b,client_id=…,token_use=id|access,alg=RS256", func(c *Config, v string) error {
		c.OIDCIssuers = splitList(v, ";")
		return nil
	}},
	{"sign-in-links", "SIGN_IN_LINKS", "", "sign-in buttons on the speaker page for OIDC issuers, ';'-separated, each Name|authorization URL (implicit flow, redirect_uri = this server's /speak)|id_token or access_token", func(c *Config, v string) error {
		c.SignInLinks = nil
		for _, spec := range splitList(v, ";") {
			parts := strings.Split(spec, "|")
			if len(parts) < 2 || len(parts) > 3 || strings.TrimSpace(parts[0]) == "" {
				return fmt.Errorf("%q is not Name|URL[|id_token or access_token]", spec)
			}
			u, err := url.Parse(strings.TrimSpace(parts[1]))
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return fmt.Errorf("%q: the authorization URL must be an http(s) URL", spec)
			}
			link := web.SignInLink{Name: strings.TrimSpace(parts[0]), URL: u.String(), TokenParam: "id_token"}
			if len(parts) == 3 {
				link.TokenParam = strings.TrimSpace(parts[2])
				if link.TokenParam != "id_token" && link.TokenParam != "access_token" {
					return fmt.Errorf("%q: the token parameter must be id_token or access_token", spec)
				}
			}
			c.SignInLinks = append(c.SignInLinks, link)
		}
		return nil
	}},
	{"cognito-region", "AWS_REGION", "", "AWS region of a Cognito user pool (with --cognito-user-pool-id)", func(c *Config, v string) error { c.CognitoRegion = v; return nil }},
	{"cognito-user-pool-id", "COGNITO_USER_POOL_ID", "", "Cognito user pool whose tokens are accepted, as in the original system", func(c *Config, v string) error { c.CognitoPool = v; return nil }},
	{"cognito-client-id", "COGNITO_CLIENT_ID", "", "Cognito app client id (audience / client_id)", func(c *Config, v string) error { c.CognitoClient = v; return nil }},
	{"worker-credentials", "WORKER_CREDENTIALS", "", "comma-separated secrets translation workers present; empty: one is generated in the data dir", func(c *Config, v string) error {
		c.WorkerSecrets = splitList(v, ",")
		return nil
	}},
	{"session-max-duration-hours", "SESSION_MAX_DURATION_HOURS", "6", "a session no speaker has used for this long ends by itself", hours(func(c *Config) *time.Duration { return &c.SessionMaxIdle })},
	{"max-listeners", "MAX_LISTENERS_PER_SESSION", "500", "listener cap per session", count(func(c *Config) *int { return &c.MaxListeners })},
	{"rate-limit-sessions", "RATE_LIMIT_SESSIONS_PER_HOUR", "50", "sessions a speaker may create per hour (0: unlimited)", count(func(c *Config) *int { return &c.SessionsPerHour })},
	{"rate-limit-joins", "RATE_LIMIT_LISTENER_JOINS_PER_MIN", "10", "listener joins per minute per client IP (0: unlimited)", count(func(c *Config) *int { return &c.ListenerJoinsPerMin })},
	{"rate-limit-connections", "RATE_LIMIT_CONNECTION_ATTEMPTS_PER_MIN", "20", "WebSocket connection attempts per minute per client IP (0: unlimited)", count(func(c *Config) *int { return &c.ConnAttemptsPerMin })},
	{"rate-limit-heartbeats", "RATE_LIMIT_HEARTBEATS_PER_MIN", "10", "heartbeats per minute per connection (0: unlimited)", count(func(c *Config) *int { return &c.HeartbeatsPerMin })},
	{"rate-limit-logins", "RATE_LIMIT_LOGIN_ATTEMPTS_PER_MIN", "10", "POST /auth/login attempts per minute per client IP (0: unlimited)", count(func(c *Config) *int { return &c.LoginAttemptsPerMin })},
	{"rate-limit-session-misses", "RATE_LIMIT_SESSION_MISSES_PER_MIN", "30", "lookups of session IDs that do not exist per minute per client, over HTTP and WebSocket; a client over it gets 429 for every session lookup until it is under it again (0: unlimited)", count(func(c *Config) *int { return &c.SessionMissesPerMin })},
	{"max-connections-per-client", "MAX_CONNECTIONS_PER_CLIENT", "1000", "WebSocket connections one client may hold open on a node at once (one venue behind one public address can fill a session and reconnect after a Wi-Fi blip); more are refused with 429 (0: no cap)", count(func(c *Config) *int { return &c.MaxConnsPerClient })},
	{"client-ipv4-prefix", "CLIENT_IPV4_PREFIX", "32", "leading bits of an IPv4 address that per-client limits count as one client (32: each address)", count(func(c *Config) *int { return &c.ClientIPv4Prefix })},
	{"client-ipv6-prefix", "CLIENT_IPV6_PREFIX", "64", "leading bits of an IPv6 address that per-client limits count as one client (64: a subscriber's /64, which one home or phone usually holds whole)", count(func(c *Config) *int { return &c.ClientIPv6Prefix })},
	{"heartbeat-interval", "HEARTBEAT_INTERVAL_SECONDS", "30", "how often clients are expected to heartbeat and the server pings", seconds(func(c *Config) *time.Duration { return &c.HeartbeatInterval })},
	{"heartbeat-timeout", "HEARTBEAT_TIMEOUT_SECONDS", "90", "a connection silent this long is closed", seconds(func(c *Config) *time.Duration { return &c.HeartbeatTimeout })},
	{"connection-refresh", "CONNECTION_REFRESH_MINUTES", "0", "ask clients to open a fresh connection after this long (0: never)", minutes(func(c *Config) *time.Duration { return &c.RefreshAfter })},
	{"connection-warning", "CONNECTION_WARNING_MINUTES", "0", "warn clients their connection will close after this long (0: never)", minutes(func(c *Config) *time.Duration { return &c.WarningAfter })},
	{"connection-max-duration", "CONNECTION_MAX_DURATION_HOURS", "0", "close connections after this long (0: never)", hours(func(c *Config) *time.Duration { return &c.MaxConnDuration })},
	{"speaker-grace", "SPEAKER_GRACE_SECONDS", "120", "how long a session waits for a disconnected speaker before it ends", seconds(func(c *Config) *time.Duration { return &c.SpeakerGrace })},
	{"silence-warning", "SPEAKER_SILENCE_WARNING_SECONDS", "10", "warn the speaker when their microphone stays silent this long while live (0: never)", seconds(func(c *Config) *time.Duration { return &c.SilenceWarning })},
	{"account-check", "SPEAKER_ACCOUNT_CHECK_SECONDS", "5", "how often a live speaker connection's token is verified again; a removed account, a changed password or an expired token closes it with 4004 (0: never)", seconds(func(c *Config) *time.Duration { return &c.AccountCheck })},
	{"data-retention", "DATA_RETENTION_HOURS", "24", "ended sessions are deleted after this long", hours(func(c *Config) *time.Duration { return &c.Retention })},
	{"shutdown-timeout", "SHUTDOWN_TIMEOUT_SECONDS", "15", "on SIGTERM, how long clients get to move before connections close", seconds(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"write-coalesce", "WRITE_COALESCE_MS", "45", "the longest an audio frame is held back to go out in one write with the next ones (0: never)", unit(time.Millisecond, func(c *Config) *time.Duration { return &c.WriteCoalesce })},
	{"write-coalesce-above", "WRITE_COALESCE_ABOVE", "60000", "audio deliveries per second that one write per frame may serve: above it a listener's writes carry 2 frames, above twice it 3, and so on, within --write-coalesce (0: as many as --write-coalesce allows)", count(func(c *Config) *int { return &c.CoalesceAbove })},
	{"write-io-uring", "WRITE_IO_URING", "true", "send a stream's audio to many listeners with one system call through io_uring, where the kernel allows it (a seccomp filter or kernel.io_uring_disabled may not; then, or with false, a write(2) per listener)", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		c.IOURing = b
		return err
	}},
	{"max-frame-age", "MAX_FRAME_AGE_MS", "2000", "audio older than this is not published (a speaker's node stalled on Redis), not delivered when it reaches a node late (a backlog after a Redis outage; listeners are told with audioSkipped) and not replayed to a resuming listener; nodes' clocks must agree well within it (0: never skip)", unit(time.Millisecond, func(c *Config) *time.Duration { return &c.MaxFrameAge })},
	{"redis", "REDIS_URL", "", "Redis or Valkey shared by several nodes (redis://host:6379/0, rediss://, redis-sentinel://, redis-cluster://; see docs/redis.md); empty: one node, embedded store", func(c *Config, v string) error { c.RedisURL = v; return nil }},
	{"presence-ttl", "PRESENCE_TTL_SECONDS", "30", "with --redis: how long a node that stopped (crashed) still counts its listeners; nodes refresh every third of it", seconds(func(c *Config) *time.Duration { return &c.PresenceTTL })},
}

// bareFlags are switches that may be given without a value
// (--tls-self-signed for --tls-self-signed=true). Older boolean settings
// keep taking a separate value (--pprof true).
var bareFlags = map[string]bool{"tls-self-signed": true}

// boolFlag is a string flag that, given bare, means "true".
type boolFlag string

func (b *boolFlag) String() string     { return string(*b) }
func (b *boolFlag) Set(v string) error { *b = boolFlag(v); return nil }
func (b *boolFlag) IsBoolFlag() bool   { return true }

// LoadConfig builds the configuration: defaults, then the file named by
// --config (KEY=VALUE lines using the environment names), then the
// environment, then flags. getenv is os.Getenv outside tests.
func LoadConfig(args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	fs := flag.NewFlagSet("pentecost serve", flag.ContinueOnError)
	// The flag package's own message would repeat the error main prints.
	fs.SetOutput(io.Discard)
	fs.Usage = func() { printServeUsage(stderr) }
	configFile := fs.String("config", "", "")
	flagValues := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := new(string)
		if bareFlags[s.flag] {
			fs.Var((*boolFlag)(v), s.flag, "")
		} else {
			fs.StringVar(v, s.flag, "", "")
		}
		flagValues[s.flag] = v
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	setFlags := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })

	var file map[string]string
	if *configFile != "" {
		var err error
		if file, err = readEnvFile(*configFile); err != nil {
			return nil, err
		}
		// A typo in a file would otherwise be silently ignored.
		known := map[string]bool{}
		for _, s := range settings {
			known[s.env] = true
		}
		for k := range file {
			if !known[k] {
				return nil, fmt.Errorf("config file %s: unknown setting %s (see pentecost serve --help)", *configFile, k)
			}
		}
	}

	c := &Config{}
	for _, s := range settings {
		v := s.def
		if fv, ok := file[s.env]; ok {
			v = fv
		}
		if ev := getenv(s.env); ev != "" {
			v = ev
		}
		if setFlags[s.flag] {
			v = *flagValues[s.flag]
		}
		if err := s.set(c, strings.TrimSpace(v)); err != nil {
			return nil, fmt.Errorf("invalid --%s / %s value %q: %v", s.flag, s.env, v, err)
		}
	}
	return c, c.validate()
}

// validate checks what single settings cannot check alone.
func (c *Config) validate() error {
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--tls-cert and --tls-key must be given together")
	}
	modes := 0
	for _, on := range []bool{c.TLSCert != "", c.TLSSelfSigned, len(c.TLSAuto) > 0} {
		if on {
			modes++
		}
	}
	if modes > 1 {
		return fmt.Errorf("--tls-cert, --tls-self-signed and --tls-auto are alternatives: give one of them")
	}
	if c.ACMEEmail != "" && len(c.TLSAuto) == 0 {
		return fmt.Errorf("--acme-email (PENTECOST_ACME_EMAIL) needs --tls-auto")
	}
	if c.ACMEDirectory != certs.DefaultACMEDirectory && len(c.TLSAuto) == 0 {
		return fmt.Errorf("--acme-directory (PENTECOST_ACME_DIRECTORY) needs --tls-auto")
	}
	switch {
	case c.TLSAddr != "" && modes == 0:
		return fmt.Errorf("--tls-addr (PENTECOST_TLS_ADDR) needs --tls-self-signed, --tls-auto or --tls-cert")
	case c.TLSAddr == "" && c.TLSSelfSigned:
		c.TLSAddr = ":8443"
	case c.TLSAddr == "" && len(c.TLSAuto) > 0:
		c.TLSAddr = ":443"
	}
	if c.TLSAddr != "" && c.TLSAddr == c.Addr && !strings.HasSuffix(c.Addr, ":0") {
		return fmt.Errorf("--tls-addr and --addr must differ: plain HTTP and HTTPS each need a port")
	}
	if c.MetricsAddr != "" && (c.MetricsAddr == c.Addr || c.MetricsAddr == c.TLSAddr) && !strings.HasSuffix(c.MetricsAddr, ":0") {
		return fmt.Errorf("--metrics-addr must differ from --addr and --tls-addr: metrics get a port of their own")
	}
	if c.CognitoPool != "" && (c.CognitoRegion == "" || c.CognitoClient == "") {
		return fmt.Errorf("COGNITO_USER_POOL_ID needs AWS_REGION and COGNITO_CLIENT_ID as well")
	}
	if c.MaxListeners < 1 {
		return fmt.Errorf("MAX_LISTENERS_PER_SESSION must be at least 1")
	}
	if c.ClientIPv4Prefix < 1 || c.ClientIPv4Prefix > 32 || c.ClientIPv6Prefix < 1 || c.ClientIPv6Prefix > 128 {
		return fmt.Errorf("CLIENT_IPV4_PREFIX must be from 1 to 32 and CLIENT_IPV6_PREFIX from 1 to 128")
	}
	if c.TokenTTL <= 0 || c.SessionMaxIdle <= 0 || c.Retention <= 0 {
		return fmt.Errorf("TOKEN_TTL_HOURS, SESSION_MAX_DURATION_HOURS and DATA_RETENTION_HOURS must be greater than 0")
	}
	if c.RedisURL != "" {
		if _, err := redis.ParseURL(c.RedisURL); err != nil {
			return fmt.Errorf("REDIS_URL: %v", err)
		}
	}
	if c.PresenceTTL < 300*time.Millisecond {
		return fmt.Errorf("PRESENCE_TTL_SECONDS must be at least 0.3")
	}
	if c.HeartbeatInterval <= 0 || c.HeartbeatTimeout <= c.HeartbeatInterval {
		return fmt.Errorf("HEARTBEAT_TIMEOUT_SECONDS must be greater than HEARTBEAT_INTERVAL_SECONDS, both above 0")
	}
	return nil
}

// serveCommand is `pentecost serve`; its flags are the settings table.
var serveCommand = &command{
	Name: "serve", Args: "[flags]",
	Summary: "Run the Pentecost server: the API, the WebSocket protocol and the pages.",
	Details: "Every flag can also be set by the environment variable shown, or in a file\n" +
		"given with --config (KEY=VALUE lines). Flags win over the environment,\n" +
		"which wins over the file. Durations accept decimals (0.1 minutes = 6 s).",
}

func printServeUsage(w io.Writer) {
	docs := []flagDoc{{Name: "config", Value: "FILE", Usage: "read settings from FILE"}}
	for _, s := range settings {
		docs = append(docs, flagDoc{Name: s.flag, Value: settingValue(s), Usage: s.help, Env: s.env, Def: s.def})
	}
	printHelp(w, serveCommand, docs)
}

// settingValue is the placeholder --help shows for a setting's value.
func settingValue(s setting) string {
	switch {
	case bareFlags[s.flag]:
		return ""
	case s.def == "true" || s.def == "false":
		return "BOOL"
	case strings.HasSuffix(s.flag, "-addr") || s.flag == "addr":
		return "ADDRESS"
	case s.flag == "data-dir":
		return "DIR"
	case s.flag == "tls-cert" || s.flag == "tls-key":
		return "FILE"
	case s.flag == "public-url" || s.flag == "acme-directory" || s.flag == "redis":
		return "URL"
	case s.flag == "log-level" || s.flag == "log-format":
		return strings.ToUpper(strings.TrimPrefix(s.flag, "log-"))
	case s.def == "" && strings.Contains(s.help, "-separated"):
		return "LIST"
	}
	for _, unit := range []string{"HOURS", "MINUTES", "SECONDS", "MS"} {
		if strings.HasSuffix(s.env, "_"+unit) {
			return unit
		}
	}
	if _, err := strconv.ParseFloat(s.def, 64); err == nil {
		return "N"
	}
	return "VALUE"
}

// readEnvFile reads KEY=VALUE lines; blank lines and # comments are skipped.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("config file %s line %d: expected KEY=VALUE", path, n)
		}
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
	}
	return out, sc.Err()
}

func splitList(v, sep string) []string {
	var out []string
	for _, s := range strings.Split(v, sep) {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// number parses a non-negative decimal, as the original system's settings allow.
func number(v string) (float64, error) {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, fmt.Errorf("not a number")
	}
	if f < 0 {
		return 0, fmt.Errorf("must not be negative")
	}
	return f, nil
}

func unit(u time.Duration, field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		f, err := number(v)
		if err != nil {
			return err
		}
		if f*float64(u) > float64(math.MaxInt64) {
			return fmt.Errorf("too large")
		}
		*field(c) = time.Duration(f * float64(u))
		return nil
	}
}

func seconds(f func(*Config) *time.Duration) func(*Config, string) error { return unit(time.Second, f) }
func minutes(f func(*Config) *time.Duration) func(*Config, string) error { return unit(time.Minute, f) }
func hours(f func(*Config) *time.Duration) func(*Config, string) error   { return unit(time.Hour, f) }

func count(field func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		f, err := number(v)
		if err != nil {
			return err
		}
		if f != math.Trunc(f) || f > 1e9 {
			return fmt.Errorf("must be a whole number")
		}
		*field(c) = int(f)
		return nil
	}
}

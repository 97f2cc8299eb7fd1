package redis

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Connection defaults, applied unless the URL sets them: fail fast while
// Redis is down, so that a join is refused with 503 in about a second
// rather than after several seconds of retries.
const (
	defaultDialTimeout   = 2 * time.Second
	defaultDialerRetries = 2
	defaultMaxRetries    = 2
)

// Config is a parsed Redis URL.
type Config struct {
	// Exactly one of these is set.
	Single   *goredis.Options
	Failover *goredis.FailoverOptions
	Cluster  bool
	cluster  *goredis.ClusterOptions

	// Redacted is the URL without its password, for messages and logs.
	Redacted string
}

// ParseURL parses the URL forms Pentecost accepts:
//
//	redis://[user:password@]host[:port][/db][?option=value…]
//	rediss://…                      the same over TLS
//	redis-sentinel://[user:password@]host[:port][,host[:port]…]/master[/db][?option=value…]
//	rediss-sentinel://…             the same over TLS
//	redis-cluster://[user:password@]host[:port][,host[:port]…][?option=value…]
//	rediss-cluster://…              the same over TLS
//
// The user and password are the Redis servers' own. For Sentinel, the
// sentinels' credentials, if any, go in the sentinel_username and
// sentinel_password options; db may also be given as an option. The other
// options are go-redis's, in snake case (dial_timeout=3s, pool_size=50,
// max_retries=2, …). The default port is 6379, 26379 for sentinels.
func ParseURL(raw string) (*Config, error) {
	if raw == "" {
		return nil, fmt.Errorf("redis: URL required")
	}
	// url.Parse cannot read a list of hosts: take it out first.
	hostList, placeholder, err := cutHosts(raw)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(placeholder)
	if err != nil {
		return nil, fmt.Errorf("redis: invalid URL: %v", redactErr(err))
	}
	u.Host = hostList
	cfg := &Config{Redacted: u.Redacted()}
	scheme, kind, _ := strings.Cut(u.Scheme, "-")
	if scheme != "redis" && scheme != "rediss" {
		return nil, fmt.Errorf("redis: URL scheme %q: want redis, rediss, redis-sentinel, redis-cluster (or rediss-…)", u.Scheme)
	}
	q := u.Query()
	given := func(name string) bool { return q.Has(name) }

	switch kind {
	case "":
		u.RawQuery = q.Encode()
		opts, err := goredis.ParseURL(u.String())
		if err != nil {
			return nil, fmt.Errorf("redis: %s: %v", cfg.Redacted, redactErr(err))
		}
		if !given("dial_timeout") {
			opts.DialTimeout = defaultDialTimeout
		}
		if !given("max_retries") {
			opts.MaxRetries = defaultMaxRetries
		}
		opts.DialerRetries = defaultDialerRetries
		cfg.Single = opts
	case "sentinel":
		hosts, err := splitHosts(u.Host, "26379")
		if err != nil {
			return nil, err
		}
		parts := strings.FieldsFunc(u.Path, func(r rune) bool { return r == '/' })
		if len(parts) == 0 || len(parts) > 2 {
			return nil, fmt.Errorf("redis: %s: want the master name as the path, then optionally the db: /mymaster/0", cfg.Redacted)
		}
		q.Set("master_name", parts[0])
		if len(parts) == 2 {
			q.Set("db", parts[1])
		}
		if u.User != nil {
			q.Set("username", u.User.Username())
			if p, ok := u.User.Password(); ok {
				q.Set("password", p)
			}
		}
		sentinel := &url.URL{Scheme: scheme, Host: hosts[0]}
		if user, pass := q.Get("sentinel_username"), q.Get("sentinel_password"); user != "" || pass != "" {
			sentinel.User = url.UserPassword(user, pass)
		}
		q.Del("sentinel_username")
		q.Del("sentinel_password")
		for _, h := range hosts[1:] {
			q.Add("addr", h)
		}
		sentinel.RawQuery = q.Encode()
		opts, err := goredis.ParseFailoverURL(sentinel.String())
		if err != nil {
			return nil, fmt.Errorf("redis: %s: %v", cfg.Redacted, redactErr(err))
		}
		if !given("dial_timeout") {
			opts.DialTimeout = defaultDialTimeout
		}
		if !given("max_retries") {
			opts.MaxRetries = defaultMaxRetries
		}
		if !given("dialer_retries") {
			opts.DialerRetries = defaultDialerRetries
		}
		cfg.Failover = opts
	case "cluster":
		hosts, err := splitHosts(u.Host, "6379")
		if err != nil {
			return nil, err
		}
		if strings.Trim(u.Path, "/") != "" {
			return nil, fmt.Errorf("redis: %s: a cluster has no database number", cfg.Redacted)
		}
		for _, h := range hosts[1:] {
			q.Add("addr", h)
		}
		first := &url.URL{Scheme: scheme, User: u.User, Host: hosts[0], RawQuery: q.Encode()}
		opts, err := goredis.ParseClusterURL(first.String())
		if err != nil {
			return nil, fmt.Errorf("redis: %s: %v", cfg.Redacted, redactErr(err))
		}
		if !given("dial_timeout") {
			opts.DialTimeout = defaultDialTimeout
		}
		if !given("max_retries") {
			opts.MaxRetries = defaultMaxRetries
		}
		if !given("dialer_retries") {
			opts.DialerRetries = defaultDialerRetries
		}
		cfg.Cluster, cfg.cluster = true, opts
	default:
		return nil, fmt.Errorf("redis: URL scheme %q: want redis, rediss, redis-sentinel, redis-cluster (or rediss-…)", u.Scheme)
	}
	return cfg, nil
}

// hostPlaceholder stands for the host list while url.Parse reads the rest.
const hostPlaceholder = "hosts.invalid"

// cutHosts returns the host list of a URL ("a:1,b") and the URL with a
// placeholder in its place.
func cutHosts(raw string) (hosts, rest string, err error) {
	i := strings.Index(raw, "://")
	if i < 0 {
		return "", "", errors.New("redis: URL has no scheme: want redis://host:port")
	}
	start := i + 3
	end := len(raw)
	if j := strings.IndexAny(raw[start:], "/?#"); j >= 0 {
		end = start + j
	}
	authority := raw[start:end]
	at := strings.LastIndex(authority, "@")
	hosts = authority[at+1:]
	return hosts, raw[:start+at+1] + hostPlaceholder + raw[end:], nil
}

// splitHosts splits "a:1,b:2" into host:port pairs, adding the default port.
func splitHosts(s, port string) ([]string, error) {
	var hosts []string
	for _, h := range strings.Split(s, ",") {
		if h == "" {
			continue
		}
		if !strings.Contains(h, ":") || strings.HasSuffix(h, "]") {
			h += ":" + port
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return nil, fmt.Errorf("redis: URL names no host")
	}
	return hosts, nil
}

// redactErr drops anything after "://" in parse errors, which quote the URL
// and with it the password.
func redactErr(err error) string {
	s := err.Error()
	if i := strings.Index(s, "://"); i >= 0 {
		return s[:i] + "://…"
	}
	return s
}

func (c *Config) newClient() goredis.UniversalClient {
	switch {
	case c.Failover != nil:
		return goredis.NewFailoverClient(c.Failover)
	case c.cluster != nil:
		return goredis.NewClusterClient(c.cluster)
	}
	return goredis.NewClient(c.Single)
}

package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/pentecost/pentecost"
	"golang.org/x/time/rate"
)

// Defaults for external issuers.
const (
	DefaultHTTPTimeout     = 10 * time.Second
	DefaultRefreshInterval = time.Hour
	// DefaultUnknownKIDEvery bounds refetches caused by tokens naming a key
	// we do not have: enough to pick up a rotation promptly, too few for
	// anyone to hammer the issuer through us.
	DefaultUnknownKIDEvery = time.Minute
	// DefaultRetryEvery bounds refetches while no key has ever been loaded.
	DefaultRetryEvery = 10 * time.Second
)

// logKeyJWKSURL is the log key of an issuer's JWKS URL.
const logKeyJWKSURL = "jwks_url"

// errNoKeys marks a verification that failed because the issuer's keys are
// not loaded, as opposed to a bad token.
var errNoKeys = errors.New("no keys loaded from JWKS")

// OIDC verifies tokens of one external OpenID Connect issuer against the
// keys it publishes at its JWKS URL. Keys are cached, refreshed every
// RefreshInterval and, at a bounded rate, when a token names an unknown key.
type OIDC struct {
	// Config describes the issuer.
	Config OIDCConfig
	// Logger receives JWKS fetch failures.
	Logger *slog.Logger
	// Now returns the current time; Leeway tolerates clock skew.
	Now    func() time.Time
	Leeway time.Duration

	// HTTPClient fetches the JWKS; HTTPTimeout bounds each fetch.
	HTTPClient  *http.Client
	HTTPTimeout time.Duration
	// RefreshInterval is the period of the background refresh.
	RefreshInterval time.Duration
	// UnknownKIDLimiter bounds refetches caused by unknown key ids once keys
	// are loaded. A request that finds it empty is refused at once, never
	// made to wait.
	UnknownKIDLimiter *rate.Limiter
	// RetryLimiter bounds refetches while no key is loaded (issuer down at
	// start); tokens are then refused with EAUTHUNAVAILABLE.
	RetryLimiter *rate.Limiter

	keys      atomic.Pointer[oidcKeys]
	closeOnce sync.Once
	cancel    context.CancelFunc
}

// oidcKeys is the key cache built by Open.
type oidcKeys struct {
	store   jwkset.Storage  // the cache itself; reading never fetches
	cached  keyfunc.Keyfunc // reads store only
	refetch keyfunc.Keyfunc // fetches the JWKS when a kid is unknown
	fetcher jwkset.Storage  // the client behind refetch
}

// NewOIDC returns a verifier for cfg with defaults. Call Open before use.
func NewOIDC(cfg OIDCConfig) *OIDC {
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"RS256"}
	}
	return &OIDC{
		Config:            cfg,
		Logger:            slog.New(slog.DiscardHandler),
		Now:               time.Now,
		Leeway:            DefaultLeeway,
		HTTPTimeout:       DefaultHTTPTimeout,
		RefreshInterval:   DefaultRefreshInterval,
		UnknownKIDLimiter: rate.NewLimiter(rate.Every(DefaultUnknownKIDEvery), 1),
		RetryLimiter:      rate.NewLimiter(rate.Every(DefaultRetryEvery), 1),
	}
}

// Open validates the configuration and fetches the keys. An unreachable
// JWKS is not an error: the server starts, the failure is logged as a
// warning naming the issuer, and this issuer's tokens are refused with
// EAUTHUNAVAILABLE until a fetch succeeds (tried again when a token comes,
// at most every RetryLimiter allows, and at every RefreshInterval).
// Open waits at most HTTPTimeout for the first fetch.
func (o *OIDC) Open(ctx context.Context) error {
	if err := o.Config.Validate(); err != nil {
		return err
	}
	if o.keys.Load() != nil {
		return fmt.Errorf("OIDC issuer %q: already open", o.Config.Name)
	}
	client := o.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: o.HTTPTimeout}
	}
	logger := o.Logger.With(logKeyIssuer, o.Config.Name)

	// The cache outlives ctx, which may only cover start-up.
	life, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// The first fetch's failure is logged below, once, in words that say
	// what it means for the issuer's speakers.
	var mu sync.Mutex
	starting, startErr := true, error(nil)
	store, err := jwkset.NewStorageFromHTTP(o.Config.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    client,
		Ctx:                       life,
		HTTPTimeout:               o.HTTPTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshInterval:           o.RefreshInterval,
		RefreshErrorHandler: func(ctx context.Context, err error) {
			mu.Lock()
			if starting {
				startErr = err
				mu.Unlock()
				return
			}
			mu.Unlock()
			logger.WarnContext(ctx, "Cannot fetch JWKS.", logKeyError, err)
		},
	})
	mu.Lock()
	starting = false
	mu.Unlock()
	if err != nil {
		cancel()
		return fmt.Errorf("OIDC issuer %q: %w", o.Config.Name, err)
	}
	// Our own limiters decide when to refetch (without waiting); the fetching
	// client itself is unlimited and bounded in time only.
	fetcher, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{o.Config.JWKSURL: store},
		RateLimitWaitMax:  o.HTTPTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Inf, 1),
	})
	if err != nil {
		cancel()
		return fmt.Errorf("OIDC issuer %q: %w", o.Config.Name, err)
	}
	// Keys marked for encryption are never used to verify.
	uses := []jwkset.USE{jwkset.UseSig, ""}
	cached, err := keyfunc.New(keyfunc.Options{Ctx: life, Storage: store, UseWhitelist: uses})
	if err != nil {
		cancel()
		return fmt.Errorf("OIDC issuer %q: %w", o.Config.Name, err)
	}
	refetch, err := keyfunc.New(keyfunc.Options{Ctx: life, Storage: fetcher, UseWhitelist: uses})
	if err != nil {
		cancel()
		return fmt.Errorf("OIDC issuer %q: %w", o.Config.Name, err)
	}
	o.cancel = cancel
	keys := &oidcKeys{store: store, cached: cached, refetch: refetch, fetcher: fetcher}
	o.keys.Store(keys)
	if startErr != nil || keys.empty(ctx) {
		attrs := []any{logKeyJWKSURL, o.Config.JWKSURL}
		if startErr != nil {
			attrs = append(attrs, logKeyError, startErr)
		}
		logger.WarnContext(ctx, "No keys fetched from the issuer's JWKS at start: its speakers are refused (503) until a fetch succeeds; retrying.", attrs...)
	}
	return nil
}

// Close stops the background refresh.
func (o *OIDC) Close() error {
	o.closeOnce.Do(func() {
		if o.cancel != nil {
			o.cancel()
		}
	})
	return nil
}

// oidcClaims are the claims we read from an external token.
type oidcClaims struct {
	jwt.RegisteredClaims
	TokenUse          string `json:"token_use,omitempty"`
	ClientID          string `json:"client_id,omitempty"`
	Name              string `json:"name,omitempty"`
	Email             string `json:"email,omitempty"`
	CognitoUsername   string `json:"cognito:username,omitempty"`
	Username          string `json:"username,omitempty"` // Cognito access tokens
	PreferredUsername string `json:"preferred_username,omitempty"`
}

// VerifyToken checks a token of this issuer and returns the speaker.
// Errors: EAUTHREQUIRED, EAUTHINVALID, EAUTHUNAVAILABLE (no keys loaded).
func (o *OIDC) VerifyToken(ctx context.Context, token string) (*pentecost.User, error) {
	if token == "" {
		return nil, tokenRequired()
	} else if len(token) > maxTokenLength {
		return nil, invalid("token too long")
	}
	if err := checkStrict(token); err != nil {
		return nil, invalid("%s: %v", o.Config.Name, err)
	}
	keys := o.keys.Load()
	if keys == nil {
		return nil, unavailable("%s: issuer not opened", o.Config.Name)
	}

	cfg := o.Config
	algs := cfg.Algorithms
	if len(algs) == 0 {
		algs = []string{"RS256"} // never let an empty list mean "any"
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(algs),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(o.Leeway),
		jwt.WithTimeFunc(o.Now),
	)
	var claims oidcClaims
	if _, err := parser.ParseWithClaims(token, &claims, o.keyfunc(ctx, keys)); errors.Is(err, errNoKeys) {
		return nil, unavailable("%s: %v", cfg.Name, err)
	} else if err != nil {
		return nil, invalid("%s: %v", cfg.Name, err)
	}

	if claims.Subject == "" {
		return nil, invalid("%s: no subject", cfg.Name)
	}
	if len(cfg.TokenUse) > 0 && !slices.Contains(cfg.TokenUse, claims.TokenUse) {
		return nil, invalid("%s: token_use %q not accepted", cfg.Name, claims.TokenUse)
	}
	if claims.TokenUse == TokenUseAccess {
		// Cognito access tokens carry client_id instead of aud.
		if cfg.ClientID == "" || claims.ClientID != cfg.ClientID {
			return nil, invalid("%s: client_id does not match", cfg.Name)
		}
	} else {
		accepted := cfg.Audience
		if len(accepted) == 0 {
			accepted = []string{cfg.ClientID}
		}
		if !slices.ContainsFunc(claims.Audience, func(a string) bool { return a != "" && slices.Contains(accepted, a) }) {
			return nil, invalid("%s: audience does not match", cfg.Name)
		}
	}

	name := claims.Subject
	for _, n := range []string{claims.Name, claims.Email, claims.CognitoUsername, claims.Username, claims.PreferredUsername} {
		if n != "" {
			name = n
			break
		}
	}
	return &pentecost.User{ID: cfg.Name + ":" + claims.Subject, Name: name, Issuer: cfg.Name}, nil
}

// keyfunc finds the verification key. A key id we do not know triggers a
// refetch only when a limiter allows it, so that forged kids can neither
// hammer the issuer nor make a healthy issuer look unavailable: with keys
// loaded, an unknown kid is simply an invalid token.
func (o *OIDC) keyfunc(ctx context.Context, keys *oidcKeys) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if keys.empty(ctx) {
			if o.RetryLimiter.Allow() {
				// Any kid is unknown in an empty cache, so this fetches.
				_, _ = keys.fetcher.KeyRead(ctx, "")
				if !keys.empty(ctx) {
					o.Logger.InfoContext(ctx, "Keys fetched from the issuer's JWKS.", logKeyIssuer, o.Config.Name)
				}
			}
			if keys.empty(ctx) {
				return nil, errNoKeys
			}
		}
		key, err := keys.cached.KeyfuncCtx(ctx)(t)
		if errors.Is(err, jwkset.ErrKeyNotFound) && o.UnknownKIDLimiter.Allow() {
			key, err = keys.refetch.KeyfuncCtx(ctx)(t)
		}
		return key, err
	}
}

func (k *oidcKeys) empty(ctx context.Context) bool {
	all, err := k.store.KeyReadAll(ctx)
	return err != nil || len(all) == 0
}

var _ pentecost.TokenVerifier = (*OIDC)(nil)

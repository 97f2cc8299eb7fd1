package http

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/pentecost/pentecost"
)

// loginRequest is the body of POST /auth/login. Name is accepted as another
// spelling of Username.
type loginRequest struct {
	Username string `json:"username"`
	Name     string `json:"name,omitempty"`
	Password string `json:"password"`
}

// LoginResponse is the body of a successful POST /auth/login.
type LoginResponse struct {
	Token     string    `json:"token"`
	TokenType string    `json:"tokenType"` // always "Bearer"
	ExpiresAt int64     `json:"expiresAt"` // Unix milliseconds
	User      LoginUser `json:"user"`
}

// LoginUser names the account a token was issued for, with its role at
// sign-in (pages use it to choose what to show; the server checks the role
// again at every request).
type LoginUser struct {
	ID   string         `json:"id"`
	Name string         `json:"name"`
	Role pentecost.Role `json:"role,omitempty"`
}

// LoginBackoff limits the sign-in attempts made for one account, from
// however many addresses, so that guessing spread over many IPs is slow
// too. Attempts are counted before the password is checked, successful
// ones included, so that attempts sent at once cannot all get through.
//
// It cannot lock the owner out: a browser that signed in to the account
// since its password was last set carries a device cookie and is counted on
// its own, neither with the account nor with its client address (OWASP's
// "device cookies"). Anyone else is told to come back within Slow.Per, but
// under a sustained attack the attacker is told the same and may take the
// slot first, so a new browser can be refused for as long as the attack
// lasts; `pentecost token` on the server needs no sign-in at all.
type LoginBackoff struct {
	// Burst is how many attempts may come at once.
	Burst pentecost.Limit
	// Daily is how many attempts may come at Burst's pace; once they are
	// used up, attempts come at Slow's pace until some leave its window.
	Daily pentecost.Limit
	// Slow is the pace beyond Daily; its Per is the longest Retry-After.
	Slow pentecost.Limit
}

// deviceCookie names the cookie a browser gets when it signs in: signed
// proof that it signed in to an account before, which exempts it from that
// account's backoff and from its client address's limit (it gets a backoff
// of its own). It only ever reaches /auth/login's directory and says
// nothing about the password. One issued before the account's password was
// last set counts for nothing, so that whoever knew an old password cannot
// keep budgets of their own.
const deviceCookie = "pentecost_device"

// deviceTTL is how long a device cookie lasts after its last sign-in. A
// cookie holds its expiry, so its issue time is the expiry less deviceTTL:
// changing deviceTTL shifts the issue time of every cookie out there.
const deviceTTL = 90 * 24 * time.Hour

// maxDeviceCookie bounds the cookie values worth parsing; real ones have
// about 120 bytes.
const maxDeviceCookie = 256

// DeriveDeviceKey derives the key that signs device cookies from a secret
// that every node of a deployment shares (e.g. its token signing key), so
// that a cookie from one node is good at every other and after a restart.
func DeriveDeviceKey(secret []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("pentecost login device cookie v1"))
	return m.Sum(nil)
}

// handleLogin checks an embedded account's password and issues a token.
//
// A browser with a valid device cookie for the account is counted against
// its own backoff only, so that nobody sharing its address (a venue's NAT,
// an IPv6 /64) or guessing at the account can lock it out. Every other
// attempt counts against the client's limit before any other check, so
// that guessing is slow whatever the guesses look like, and then against
// the account's backoff. Reading the body first costs no more than any
// other route: it is bounded by MaxBodyBytes and ReadTimeout.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if s.Accounts == nil || s.Issuer == nil {
		Error(w, r, pentecost.Errorf(pentecost.ENOTFOUND, "Password sign-in is not enabled on this server."))
		return
	}

	var req loginRequest
	bodyErr := decodeJSON(r, &req)
	name := req.Username
	if name == "" {
		name = req.Name
	}

	// A device cookie counts only when it was issued for this account
	// since its password was last set.
	account := accountKey(name)
	device, issued, cookie := "", time.Time{}, false
	if c, err := r.Cookie(deviceCookie); err == nil && bodyErr == nil && name != "" {
		device, issued, cookie = readDeviceCookie(s.DeviceKey, c.Value, account, s.Now())
	}
	var found *pentecost.User
	var findErr error
	if cookie {
		found, findErr = s.findAccount(r.Context(), name)
	}
	known := cookie && found != nil && !issued.Before(found.PasswordChangedAt.Truncate(time.Second))

	if !known {
		if err := s.allow(r, "login:"+s.clientKey(r), s.Limits.LoginAttemptsPerMinute); err != nil {
			Error(w, r, err)
			return
		}
	}
	if bodyErr != nil {
		Error(w, r, bodyErr)
		return
	}
	if name == "" {
		Error(w, r, invalidField("username", "username is required."))
		return
	}
	if req.Password == "" {
		Error(w, r, invalidField("password", "password is required."))
		return
	}

	// Names that do not exist are counted alike, so that a 429 tells
	// nobody which accounts exist, but under keys of their own: a flood of
	// made-up names then cannot push real accounts' counts out of an
	// in-memory limiter (inmem.RateLimiter evicts by kind of key).
	key := "login-device:" + device
	if !known {
		if !cookie {
			found, findErr = s.findAccount(r.Context(), name)
		}
		if findErr != nil {
			Error(w, r, findErr)
			return
		}
		key = "login-unknown:" + account
		if found != nil {
			key = "login-account:" + account
		}
	}
	if err := s.allowBackoff(r, key, s.Limits.LoginAttemptsPerAccount); err != nil {
		if pentecost.ErrorCode(err) == pentecost.ERATELIMIT {
			err = &pentecost.Error{
				Code:       pentecost.ERATELIMIT,
				Message:    "Too many sign-in attempts for this account. Please try again later.",
				RetryAfter: pentecost.ErrorRetryAfter(err),
			}
		}
		Error(w, r, err)
		return
	}

	u, err := s.Accounts.Authenticate(r.Context(), name, req.Password)
	if err != nil {
		Error(w, r, err)
		return
	}
	if !known {
		device = rand.Text()
	}
	http.SetCookie(w, &http.Cookie{
		Name:     deviceCookie,
		Value:    deviceCookieValue(s.DeviceKey, account, device, s.Now().Add(deviceTTL)),
		MaxAge:   int(deviceTTL / time.Second),
		HttpOnly: true,
		Secure:   s.overTLS(r),
		SameSite: http.SameSiteStrictMode,
	})
	expiresAt := s.Now().Add(s.TokenTTL)
	token, err := s.Issuer.IssueToken(r.Context(), u, s.TokenTTL)
	if err != nil {
		Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, LoginResponse{
		Token:     token,
		TokenType: "Bearer",
		ExpiresAt: expiresAt.UnixMilli(),
		User:      LoginUser{ID: u.ID, Name: u.Name, Role: u.Role},
	})
}

// accountFinder is what handleLogin needs of Accounts besides checking
// passwords: the account, without its password, before the password is
// checked. auth.Accounts has it.
type accountFinder interface {
	// Find returns an account. Errors: EUSERNOTFOUND, EUNAVAILABLE.
	Find(ctx context.Context, name string) (*pentecost.User, error)
}

// findAccount returns the account name names, or nil when there is none.
// Accounts that cannot look accounts up count every name as one that
// exists, with a password never changed.
func (s *Server) findAccount(ctx context.Context, name string) (*pentecost.User, error) {
	f, ok := s.Accounts.(accountFinder)
	if !ok {
		return &pentecost.User{ID: name, Name: name}, nil
	}
	u, err := f.Find(ctx, name)
	if pentecost.ErrorCode(err) == pentecost.EUSERNOTFOUND {
		return nil, nil
	}
	return u, err
}

// overTLS reports whether r reached the client's side over HTTPS: it came
// over TLS, or through a trusted proxy that says, in X-Forwarded-Proto, that
// its client used HTTPS (a proxy terminating TLS in front of us).
func (s *Server) overTLS(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !isTrusted(peer.Addr().Unmap(), s.TrustedProxies) {
		return false
	}
	// With proxies in a chain the first value is what the client used.
	proto, _, _ := strings.Cut(r.Header.Get("X-Forwarded-Proto"), ",")
	return strings.EqualFold(strings.TrimSpace(proto), "https")
}

// allowBackoff counts one attempt under key against b: Burst first, then
// Daily and, once Daily is used up, Slow.
func (s *Server) allowBackoff(r *http.Request, key string, b LoginBackoff) error {
	if err := s.allow(r, key+":burst", b.Burst); err != nil {
		return err
	}
	err := s.allow(r, key+":daily", b.Daily)
	if pentecost.ErrorCode(err) != pentecost.ERATELIMIT || b.Slow.Zero() {
		return err
	}
	return s.allow(r, key+":slow", b.Slow)
}

// accountKey stands for an account name in limiter keys and cookies: of
// fixed size whatever the name, and not the name itself.
func accountKey(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:16])
}

// deviceCookieValue returns a device cookie for account (an accountKey)
// naming device and lasting until expires, signed with key:
// account.device.expiry.mac, the MAC an HMAC-SHA256 of the rest.
func deviceCookieValue(key []byte, account, device string, expires time.Time) string {
	payload := account + "." + device + "." + strconv.FormatInt(expires.Unix(), 10)
	return payload + "." + deviceMAC(key, payload)
}

// parseDeviceCookie returns the device a cookie names when it is a device
// cookie for account, signed with key and not expired at now.
func parseDeviceCookie(key []byte, value, account string, now time.Time) (device string, ok bool) {
	device, _, ok = readDeviceCookie(key, value, account, now)
	return device, ok
}

// readDeviceCookie is parseDeviceCookie that also returns when the cookie
// was issued.
func readDeviceCookie(key []byte, value, account string, now time.Time) (device string, issued time.Time, ok bool) {
	if len(key) == 0 || len(value) > maxDeviceCookie {
		return "", time.Time{}, false
	}
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return "", time.Time{}, false
	}
	payload, mac := value[:i], value[i+1:]
	if !hmac.Equal([]byte(mac), []byte(deviceMAC(key, payload))) {
		return "", time.Time{}, false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || parts[0] != account || parts[1] == "" {
		return "", time.Time{}, false
	}
	expires, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || now.Unix() >= expires {
		return "", time.Time{}, false
	}
	return parts[1], time.Unix(expires, 0).Add(-deviceTTL), true
}

func deviceMAC(key []byte, payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

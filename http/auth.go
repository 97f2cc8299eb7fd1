package http

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/http"
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

// LoginUser names the account a token was issued for.
type LoginUser struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// LoginBackoff limits the sign-in attempts made for one account, from
// however many addresses, so that guessing spread over many IPs is slow
// too. Attempts are counted before the password is checked, successful
// ones included, so that attempts sent at once cannot all get through.
//
// It cannot lock the owner out: a browser that signed in to the account
// before carries a device cookie and is counted on its own, not with the
// account (OWASP's "device cookies"), and everyone else waits at most
// Slow.Per between attempts however long an attack lasts.
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
// account's backoff (it gets one of its own). It only ever reaches
// /auth/login's directory and says nothing about the password.
const deviceCookie = "pentecost_device"

// deviceTTL is how long a device cookie lasts after its last sign-in.
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
// Every attempt counts against the client IP's limit, before any check, so
// that guessing is slow whatever the guesses look like; once the account
// is known, it counts against the account's backoff too (or, from a
// browser that signed in to it before, against that browser's).
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	if s.Accounts == nil || s.Issuer == nil {
		Error(w, r, pentecost.Errorf(pentecost.ENOTFOUND, "Password sign-in is not enabled on this server."))
		return
	}
	if err := s.allow(r, "login:"+s.clientKey(r), s.Limits.LoginAttemptsPerMinute); err != nil {
		Error(w, r, err)
		return
	}

	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		Error(w, r, err)
		return
	}
	name := req.Username
	if name == "" {
		name = req.Name
	}
	if name == "" {
		Error(w, r, invalidField("username", "username is required."))
		return
	}
	if req.Password == "" {
		Error(w, r, invalidField("password", "password is required."))
		return
	}

	// Unknown names are counted alike, so that a 429 tells nobody which
	// accounts exist.
	account := accountKey(name)
	device, known := "", false
	if c, err := r.Cookie(deviceCookie); err == nil {
		device, known = parseDeviceCookie(s.DeviceKey, c.Value, account, s.Now())
	}
	key := "login-account:" + account
	if known {
		key = "login-device:" + device
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
		Secure:   r.TLS != nil,
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
		User:      LoginUser{ID: u.ID, Name: u.Name},
	})
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
	if len(key) == 0 || len(value) > maxDeviceCookie {
		return "", false
	}
	i := strings.LastIndexByte(value, '.')
	if i < 0 {
		return "", false
	}
	payload, mac := value[:i], value[i+1:]
	if !hmac.Equal([]byte(mac), []byte(deviceMAC(key, payload))) {
		return "", false
	}
	parts := strings.Split(payload, ".")
	if len(parts) != 3 || parts[0] != account || parts[1] == "" {
		return "", false
	}
	expires, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil || now.Unix() >= expires {
		return "", false
	}
	return parts[1], true
}

func deviceMAC(key []byte, payload string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}


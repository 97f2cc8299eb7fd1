package http

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pentecost/pentecost"
)

// fuzzBodyLimit is the body limit under fuzzing, small enough that the
// fuzzer reaches it.
const fuzzBodyLimit = 1 << 10

// bodyTargets are the types the API decodes request bodies into.
var bodyTargets = map[string]func() any{
	"createSession": func() any { return new(createSessionRequest) },
	"updateSession": func() any { return new(pentecost.SessionUpdate) },
	"login":         func() any { return new(loginRequest) },
}

// decodeBody runs decodeJSON on a request carrying body and contentType.
func decodeBody(contentType string, body []byte, limit int64, v any) error {
	r := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	r.Header.Set("Content-Type", contentType)
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, limit)
	return decodeJSON(r, v)
}

// FuzzDecodeJSON feeds arbitrary bodies and content types to the request
// body decoder: it never panics, refuses only with the documented codes,
// and what it accepts survives encoding and decoding again unchanged.
func FuzzDecodeJSON(f *testing.F) {
	f.Add("application/json", []byte(`{"sourceLanguage":"en","qualityTier":"premium"}`))
	f.Add("application/json; charset=utf-8", []byte(`{"broadcastState":{"volume":0.5,"speakerState":"speaking"}}`))
	f.Add("application/merge-patch+json", []byte(`{"username":"alice","password":"x"}`))
	f.Add("text/plain", []byte(`{}`))
	f.Add("application/json", []byte(`{"a":1} {"b":2}`))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		for name, target := range bodyTargets {
			v := target()
			err := decodeBody(contentType, body, fuzzBodyLimit, v)
			if err != nil {
				switch code := pentecost.ErrorCode(err); code {
				case pentecost.EVALIDATIONBODY, pentecost.EVALIDATIONFIELD, pentecost.EPAYLOADTOOLARGE:
				default:
					t.Fatalf("%s: code %q (%v) for %q", name, code, err, body)
				}
				continue
			}
			encoded, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: accepted %q but cannot encode it: %v", name, body, err)
			}
			again := target()
			if err := decodeBody("application/json", encoded, int64(len(encoded)), again); err != nil {
				t.Fatalf("%s: accepted %q, refused its encoding %s: %v", name, body, encoded, err)
			}
			if !reflect.DeepEqual(v, again) {
				t.Fatalf("%s: %q decoded to %+v, its encoding %s to %+v", name, body, v, encoded, again)
			}
		}
	})
}

// FuzzClientIP feeds arbitrary peer addresses and X-Forwarded-For headers
// (one header line per text line) to ClientIP: it never panics, believes
// the header only from a trusted peer, and answers either the peer or an
// address written in the header.
func FuzzClientIP(f *testing.F) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("127.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
	}
	f.Add("10.1.2.3:5000", "198.51.100.1, 10.9.9.9\n10.8.8.8")
	f.Add("203.0.113.7:5000", "198.51.100.1")
	f.Add("[::ffff:10.1.2.3]:5000", "::ffff:198.51.100.1")
	f.Add("[fd00::1]:443", "2001:db8::5, nonsense")
	f.Add("not an address", "198.51.100.1")
	f.Fuzz(func(t *testing.T, remoteAddr, xff string) {
		r := &http.Request{RemoteAddr: remoteAddr, Header: http.Header{}}
		if xff != "" {
			for _, line := range strings.Split(xff, "\n") {
				r.Header.Add("X-Forwarded-For", line)
			}
		}
		got := ClientIP(r, trusted)

		peer, err := netip.ParseAddrPort(remoteAddr)
		if err != nil {
			if got.IsValid() {
				t.Fatalf("peer %q does not parse, yet ClientIP = %v", remoteAddr, got)
			}
			return
		}
		if got == peer.Addr().Unmap() {
			return
		}
		if !isTrusted(peer.Addr().Unmap(), trusted) {
			t.Fatalf("untrusted peer %q, yet ClientIP = %v from the header %q", remoteAddr, got, xff)
		}
		for _, v := range r.Header.Values("X-Forwarded-For") {
			for _, part := range strings.Split(v, ",") {
				if a, err := netip.ParseAddr(strings.TrimSpace(part)); err == nil && a.Unmap() == got {
					return
				}
			}
		}
		t.Fatalf("ClientIP = %v is neither the peer %q nor in the header %q", got, remoteAddr, xff)
	})
}

// FuzzDeviceCookie feeds arbitrary cookie values and account names to the
// device-cookie parser: it never panics, accepts only values the server
// itself would have minted for that account with its key, and takes back
// every value it mints.
func FuzzDeviceCookie(f *testing.F) {
	key := DeriveDeviceKey([]byte("fuzz"))
	now := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	account := accountKey("owner")
	good := deviceCookieValue(key, account, "DEVICE2345", now.Add(deviceTTL))
	f.Add(good, "owner", "DEVICE2345")
	f.Add(good, "mallory", "D")
	f.Add(deviceCookieValue(key, account, "DEVICE2345", now.Add(-time.Second)), "owner", "x")
	f.Add(strings.Replace(good, ".", "x.", 1), "owner", "DEVICE2345")
	f.Add("...", "", "")
	f.Add(strings.Repeat("a.", 200), "owner", "a.b")
	f.Fuzz(func(t *testing.T, value, name, device string) {
		account := accountKey(name)
		if got, ok := parseDeviceCookie(key, value, account, now); ok {
			i := strings.LastIndexByte(value, '.')
			parts := strings.Split(value[:i], ".")
			exp, err := strconv.ParseInt(parts[2], 10, 64)
			if err != nil || got != parts[1] || deviceCookieValue(key, account, got, time.Unix(exp, 0)) != value {
				t.Fatalf("accepted %q for %q, which the server would not have minted", value, name)
			}
			if _, ok := parseDeviceCookie(DeriveDeviceKey([]byte("other")), value, account, now); ok {
				t.Fatalf("%q accepted under another key", value)
			}
		}
		if device == "" || strings.Contains(device, ".") || len(device) > 64 {
			return // the server mints base32 device IDs only
		}
		minted := deviceCookieValue(key, account, device, now.Add(deviceTTL))
		if got, ok := parseDeviceCookie(key, minted, account, now); !ok || got != device {
			t.Fatalf("minted %q for %q, parsed back as %q, %v", minted, name, got, ok)
		}
		if _, ok := parseDeviceCookie(key, minted, account, now.Add(deviceTTL)); ok {
			t.Fatalf("%q accepted once expired", minted)
		}
	})
}

// FuzzParseSessionFilter feeds arbitrary query strings to the session
// list's filter parser: it never panics, refuses only with
// VALIDATION_INVALID_FIELD, and what it accepts is within bounds.
func FuzzParseSessionFilter(f *testing.F) {
	for _, q := range []string{"", "status=active&limit=10&offset=20", "limit=0", "limit=101", "offset=-1",
		"status=gone", "limit=1e3", "limit=%2B5", "limit=9999999999999999999999", "status=active&status=ended", "%zz"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, _ := url.ParseQuery(raw) // what a request's URL.Query gives, errors and all
		filter, err := parseSessionFilter(q)
		if err != nil {
			if code := pentecost.ErrorCode(err); code != pentecost.EVALIDATIONFIELD {
				t.Fatalf("code %q for %q", code, raw)
			}
			return
		}
		if filter.Limit < 1 || filter.Limit > maxListLimit || filter.Offset < 0 {
			t.Fatalf("%q gave limit %d, offset %d", raw, filter.Limit, filter.Offset)
		}
		if filter.Status != nil && !filter.Status.Valid() {
			t.Fatalf("%q gave status %q", raw, *filter.Status)
		}
	})
}

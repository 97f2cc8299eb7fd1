package http

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pentecost/pentecost"
)

// maxResponseBytes bounds what the client reads of one response.
const maxResponseBytes = 4 << 20

// Client calls the REST API. Errors the server reports come back as
// *pentecost.Error, so pentecost.ErrorCode works on them as on local calls.
type Client struct {
	// URL is the server's base URL, such as https://pentecost.example.org.
	URL string
	// Token is the speaker's bearer token, sent when set.
	Token string
	// HTTPClient sends the requests (http.DefaultClient when nil).
	HTTPClient *http.Client
}

// NewClient returns a client of the server at url.
func NewClient(url string) *Client {
	return &Client{URL: url, HTTPClient: http.DefaultClient}
}

// CreateSession creates a session from s.SourceLanguage and s.QualityTier
// and fills s with the session the server created.
func (c *Client) CreateSession(ctx context.Context, s *pentecost.Session) error {
	req := createSessionRequest{SourceLanguage: s.SourceLanguage, QualityTier: s.QualityTier}
	var w sessionWire
	if err := c.do(ctx, "POST", "/sessions", req, &w); err != nil {
		return err
	}
	*s = *w.session()
	return nil
}

// FindSessionByID returns a session by its ID, which the server normalises.
func (c *Client) FindSessionByID(ctx context.Context, id string) (*pentecost.Session, error) {
	var w sessionWire
	if err := c.do(ctx, "GET", "/sessions/"+url.PathEscape(id), nil, &w); err != nil {
		return nil, err
	}
	return w.session(), nil
}

// FindSessions returns the caller's own sessions and their total. The
// server ignores filter.OwnerID: a speaker only ever lists their own.
func (c *Client) FindSessions(ctx context.Context, filter pentecost.SessionFilter) ([]*pentecost.Session, int, error) {
	q := url.Values{}
	if filter.Status != nil {
		q.Set("status", string(*filter.Status))
	}
	if filter.Limit > 0 {
		q.Set("limit", strconv.Itoa(filter.Limit))
	}
	if filter.Offset > 0 {
		q.Set("offset", strconv.Itoa(filter.Offset))
	}
	path := "/sessions"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var resp struct {
		Sessions []sessionWire `json:"sessions"`
		Total    int           `json:"total"`
	}
	if err := c.do(ctx, "GET", path, nil, &resp); err != nil {
		return nil, 0, err
	}
	out := make([]*pentecost.Session, len(resp.Sessions))
	for i := range resp.Sessions {
		out[i] = resp.Sessions[i].session()
	}
	return out, resp.Total, nil
}

// UpdateSession changes a session the caller owns and returns it.
func (c *Client) UpdateSession(ctx context.Context, id string, upd pentecost.SessionUpdate) (*pentecost.Session, error) {
	var w sessionWire
	if err := c.do(ctx, "PATCH", "/sessions/"+url.PathEscape(id), upd, &w); err != nil {
		return nil, err
	}
	return w.session(), nil
}

// EndSession ends a session the caller owns. Unlike the service it returns
// no session, as the server answers 204 with no body.
func (c *Client) EndSession(ctx context.Context, id string) error {
	return c.do(ctx, "DELETE", "/sessions/"+url.PathEscape(id), nil, nil)
}

// Login signs in to an embedded account and returns a bearer token. It
// does not set c.Token.
func (c *Client) Login(ctx context.Context, name, password string) (string, error) {
	var resp LoginResponse
	if err := c.do(ctx, "POST", "/auth/login", loginRequest{Username: name, Password: password}, &resp); err != nil {
		return "", err
	}
	return resp.Token, nil
}

// Languages returns the languages sessions can use.
func (c *Client) Languages(ctx context.Context) ([]pentecost.Language, error) {
	var resp languagesResponse
	if err := c.do(ctx, "GET", "/languages", nil, &resp); err != nil {
		return nil, err
	}
	return resp.Languages, nil
}

// do sends a request with an optional JSON body and decodes a JSON answer
// into out, or the error shape into a *pentecost.Error.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.URL, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}

	hc := c.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return err
	}

	if resp.StatusCode >= 400 {
		return decodeError(resp, data)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %s %s response: %w", method, path, err)
	}
	return nil
}

// decodeError turns an error response into a *pentecost.Error. A body not
// in our shape (say, from a proxy) becomes a plain error, internal to
// pentecost.ErrorCode.
func decodeError(resp *http.Response, data []byte) error {
	var e ErrorResponse
	if err := json.Unmarshal(data, &e); err != nil || e.Code == "" {
		return fmt.Errorf("unexpected response: %s", resp.Status)
	}
	out := &pentecost.Error{Code: e.Code, Message: e.Message, Details: e.Details}
	if e.RetryAfter > 0 {
		out.RetryAfter = time.Duration(e.RetryAfter) * time.Second
	} else if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		out.RetryAfter = time.Duration(s) * time.Second
	}
	return out
}

// sessionWire is a session as the API writes it, timestamps in Unix ms.
type sessionWire struct {
	ID             string                  `json:"sessionId"`
	OwnerID        string                  `json:"speakerId"`
	SourceLanguage string                  `json:"sourceLanguage"`
	QualityTier    pentecost.QualityTier   `json:"qualityTier"`
	AudioFormat    string                  `json:"audioFormat"`
	Status         pentecost.SessionStatus `json:"status"`
	BroadcastState struct {
		Paused          bool    `json:"isPaused"`
		Muted           bool    `json:"isMuted"`
		Volume          float64 `json:"volume"`
		SpeakerState    string  `json:"speakerState"`
		LastStateChange int64   `json:"lastStateChange"`
	} `json:"broadcastState"`
	ListenerCount int    `json:"listenerCount"`
	CreatedAt     int64  `json:"createdAt"`
	LastActiveAt  int64  `json:"lastActiveAt"`
	ExpiresAt     int64  `json:"expiresAt"`
	EndedAt       *int64 `json:"endedAt"`
}

func (w *sessionWire) session() *pentecost.Session {
	s := &pentecost.Session{
		ID:             w.ID,
		OwnerID:        w.OwnerID,
		SourceLanguage: w.SourceLanguage,
		QualityTier:    w.QualityTier,
		AudioFormat:    w.AudioFormat,
		Status:         w.Status,
		BroadcastState: pentecost.BroadcastState{
			Paused:       w.BroadcastState.Paused,
			Muted:        w.BroadcastState.Muted,
			Volume:       w.BroadcastState.Volume,
			SpeakerState: w.BroadcastState.SpeakerState,
			ChangedAt:    fromMilli(w.BroadcastState.LastStateChange),
		},
		ListenerCount: w.ListenerCount,
		CreatedAt:     fromMilli(w.CreatedAt),
		LastActiveAt:  fromMilli(w.LastActiveAt),
		ExpiresAt:     fromMilli(w.ExpiresAt),
	}
	if w.EndedAt != nil {
		s.EndedAt = fromMilli(*w.EndedAt)
	}
	return s
}

// fromMilli is the inverse of pentecost.UnixMilli: 0 is the zero time.
func fromMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

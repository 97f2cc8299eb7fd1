package http

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/pentecost/pentecost"
)

// Paging bounds for GET /sessions.
const (
	defaultListLimit = 20
	maxListLimit     = 100
)

// createSessionRequest is the body of POST /sessions.
type createSessionRequest struct {
	SourceLanguage string                `json:"sourceLanguage"`
	QualityTier    pentecost.QualityTier `json:"qualityTier,omitempty"`
}

// listSessionsResponse is the body of GET /sessions.
type listSessionsResponse struct {
	Sessions []*pentecost.Session `json:"sessions"`
	Total    int                  `json:"total"`
}

// handleCreateSession creates a session for the speaker. The input is
// checked before the rate limit so that mistakes do not use up the quota.
func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request) {
	var req createSessionRequest
	if err := decodeJSON(r, &req); err != nil {
		Error(w, r, err)
		return
	}
	lang, err := pentecost.ValidateLanguage(req.SourceLanguage)
	if err != nil {
		Error(w, r, err)
		return
	}
	if req.QualityTier != "" && !req.QualityTier.Valid() {
		Error(w, r, &pentecost.Error{
			Code:    pentecost.EVALIDATIONFIELD,
			Message: "qualityTier must be \"standard\" or \"premium\".",
			Details: map[string]string{"field": "qualityTier"},
		})
		return
	}

	if err := s.allow(r, "sessions:"+pentecost.UserIDFromContext(r.Context()), s.Limits.SessionsPerHour); err != nil {
		Error(w, r, err)
		return
	}

	sess := &pentecost.Session{SourceLanguage: lang, QualityTier: req.QualityTier}
	start := time.Now()
	err = s.Sessions.CreateSession(r.Context(), sess)
	s.metrics.sessionCreate.Observe(time.Since(start).Seconds())
	if err != nil {
		Error(w, r, err)
		return
	}
	if info := infoFrom(r); info != nil {
		info.sessionID = sess.ID
	}
	w.Header().Set("Location", "/sessions/"+url.PathEscape(sess.ID))
	writeJSON(w, http.StatusCreated, sess)
}

// handleGetSession returns one session to anyone who knows its ID. Only
// its speaker, signed in, sees whose it is: for embedded accounts the owner
// ID is the login name, which strangers must not learn.
func (s *Server) handleGetSession(w http.ResponseWriter, r *http.Request) {
	var sess *pentecost.Session
	err := s.lookup(r, func() (err error) {
		sess, err = s.Sessions.FindSessionByID(r.Context(), r.PathValue("id"))
		return err
	})
	if err != nil {
		Error(w, r, err)
		return
	}
	if sess.OwnerID != s.optionalUserID(r) {
		sess.OwnerID = ""
	}
	writeJSON(w, http.StatusOK, sess)
}

// sessionLanguagesResponse is the body of GET /sessions/{id}/languages.
type sessionLanguagesResponse struct {
	*pentecost.SessionLanguages
	Timestamp int64 `json:"timestamp"`
}

// handleSessionLanguages tells anyone who knows a session's ID which
// languages it offers: its source, the translations workers produce now
// (live) and those connected workers can start when a listener picks them
// (available). The answer comes from presence, through Sessions when it is
// a pentecost.SessionLanguageService (the real-time server's
// NotifyingSessions); a server without one knows only the source.
func (s *Server) handleSessionLanguages(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var langs *pentecost.SessionLanguages
	err := s.lookup(r, func() error {
		if svc, ok := s.Sessions.(pentecost.SessionLanguageService); ok {
			var err error
			langs, err = svc.SessionLanguages(r.Context(), id)
			return err
		}
		sess, err := s.Sessions.FindSessionByID(r.Context(), id)
		if err != nil {
			return err
		}
		langs = pentecost.BuildSessionLanguages(sess.ID, sess.SourceLanguage, nil, nil)
		return nil
	})
	if err != nil {
		Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sessionLanguagesResponse{SessionLanguages: langs, Timestamp: s.Now().UnixMilli()})
}

// handleListSessions returns the speaker's own sessions, newest first.
func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request) {
	filter, err := parseSessionFilter(r.URL.Query())
	if err != nil {
		Error(w, r, err)
		return
	}
	owner := pentecost.UserIDFromContext(r.Context())
	filter.OwnerID = &owner

	sessions, total, err := s.Sessions.FindSessions(r.Context(), filter)
	if err != nil {
		Error(w, r, err)
		return
	}
	if sessions == nil {
		sessions = []*pentecost.Session{}
	}
	writeJSON(w, http.StatusOK, listSessionsResponse{Sessions: sessions, Total: total})
}

// parseSessionFilter reads status, limit and offset from a query string.
func parseSessionFilter(q url.Values) (pentecost.SessionFilter, error) {
	f := pentecost.SessionFilter{Limit: defaultListLimit}
	if v := q.Get("status"); v != "" {
		st := pentecost.SessionStatus(v)
		if !st.Valid() {
			return f, invalidField("status", "status must be active, paused or ended.")
		}
		f.Status = &st
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxListLimit {
			return f, invalidField("limit", "limit must be a whole number from 1 to "+strconv.Itoa(maxListLimit)+".")
		}
		f.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, invalidField("offset", "offset must be a whole number, 0 or more.")
		}
		f.Offset = n
	}
	return f, nil
}

// handleUpdateSession changes a session the speaker owns.
func (s *Server) handleUpdateSession(w http.ResponseWriter, r *http.Request) {
	var upd pentecost.SessionUpdate
	if err := decodeJSON(r, &upd); err != nil {
		Error(w, r, err)
		return
	}
	if isEmptyUpdate(upd) {
		Error(w, r, pentecost.Errorf(pentecost.EVALIDATION, "The update changes nothing: give at least one field."))
		return
	}
	var sess *pentecost.Session
	err := s.lookup(r, func() (err error) {
		sess, err = s.Sessions.UpdateSession(r.Context(), r.PathValue("id"), upd)
		return err
	})
	if err != nil {
		Error(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sess)
}

// isEmptyUpdate reports whether upd sets no field at all.
func isEmptyUpdate(upd pentecost.SessionUpdate) bool {
	if upd.Status != nil || upd.SourceLanguage != nil || upd.QualityTier != nil {
		return false
	}
	b := upd.BroadcastState
	return b == nil || (b.Paused == nil && b.Muted == nil && b.Volume == nil && b.SpeakerState == nil)
}

// handleEndSession ends a session the speaker owns.
func (s *Server) handleEndSession(w http.ResponseWriter, r *http.Request) {
	err := s.lookup(r, func() error {
		_, err := s.Sessions.EndSession(r.Context(), r.PathValue("id"))
		return err
	})
	if err != nil {
		Error(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// allow asks the rate limiter, if there is one, to let an event for key pass.
func (s *Server) allow(r *http.Request, key string, limit pentecost.Limit) error {
	if s.RateLimiter == nil {
		return nil
	}
	return s.RateLimiter.Allow(r.Context(), key, limit)
}

// invalidField returns VALIDATION_INVALID_FIELD naming the field.
func invalidField(field, message string) error {
	return &pentecost.Error{Code: pentecost.EVALIDATIONFIELD, Message: message, Details: map[string]string{"field": field}}
}

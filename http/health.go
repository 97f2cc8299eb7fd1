package http

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/pentecost/pentecost"
)

// readyTimeout bounds one readiness check, so a hung store fails the probe
// rather than hanging it.
const readyTimeout = 3 * time.Second

// languagesResponse is the body of GET /languages.
type languagesResponse struct {
	Languages []pentecost.Language `json:"languages"`
}

// statusResponse is the body of the health endpoints.
type statusResponse struct {
	Status string `json:"status"`
}

// handleLanguages lists the languages sessions can use.
func (s *Server) handleLanguages(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, languagesResponse{Languages: pentecost.Languages()})
}

// handleHealthz answers as long as the process serves HTTP.
func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	// Probes come every few seconds from every balancer and orchestrator:
	// at info they would bury the requests people read the log for.
	logAtDebug(r)
	writeJSON(w, http.StatusOK, statusResponse{Status: "ok"})
}

// handleReadyz answers 200 when Ready succeeds and 503 otherwise. The cause
// is logged, not shown.
func (s *Server) handleReadyz(w http.ResponseWriter, r *http.Request) {
	logAtDebug(r) // a failure is logged at warn below
	if s.Ready != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := s.Ready(ctx); err != nil {
			s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "not ready",
				slog.String(logKeyCorrelationID, CorrelationID(r.Context())),
				slog.String(logKeyError, err.Error()))
			Error(w, r, pentecost.Errorf(pentecost.EUNAVAILABLE, "Not ready."))
			return
		}
	}
	writeJSON(w, http.StatusOK, statusResponse{Status: "ok"})
}

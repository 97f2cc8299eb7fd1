package http

import (
	"net/http"

	"github.com/pentecost/pentecost"
)

// capabilitiesResponse is GET /capabilities.
type capabilitiesResponse struct {
	*pentecost.Capabilities
	Timestamp int64 `json:"timestamp"`
}

// handleCapabilities tells the speaker page, before it creates a session,
// what the connected translation workers (on every node) can do: the
// quality tiers they serve and the languages they offer by source. The
// answer comes through Sessions when it is a pentecost.CapabilityService
// (the real-time server's NotifyingSessions); a server without one serves
// the standard tier and knows no languages.
func (s *Server) handleCapabilities(w http.ResponseWriter, r *http.Request) {
	caps := pentecost.CapabilitiesOf(nil)
	if svc, ok := s.Sessions.(pentecost.CapabilityService); ok {
		var err error
		if caps, err = svc.Capabilities(r.Context()); err != nil {
			Error(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, capabilitiesResponse{Capabilities: caps, Timestamp: s.Now().UnixMilli()})
}

package auth_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/pentecost/pentecost"
	"github.com/pentecost/pentecost/auth"
)

// TestVerifier_Log checks the line logged for a refused token: its reason
// and, when the context carries one, the request's correlation ID, never
// the token itself.
func TestVerifier_Log(t *testing.T) {
	for _, tt := range []struct {
		name          string
		correlationID string
	}{
		{"WithCorrelationID", "req-42"},
		{"WithoutCorrelationID", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			v := auth.NewVerifier(auth.NewEmbedded(newEd25519Key(t)))
			v.Logger = slog.New(slog.NewJSONHandler(&buf, nil))
			ctx := t.Context()
			if tt.correlationID != "" {
				ctx = pentecost.NewContextWithCorrelationID(ctx, tt.correlationID)
			}
			const token = "not.a-token.at-all"
			_, err := v.VerifyToken(ctx, token)
			wantCode(t, err, pentecost.EAUTHINVALID)

			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("log %q: %v", buf.String(), err)
			}
			if rec["msg"] != "Token refused." || rec["code"] != pentecost.EAUTHINVALID || rec["reason"] == "" {
				t.Fatalf("log line = %s", buf.String())
			}
			if got, ok := rec["correlation_id"]; tt.correlationID != "" && got != tt.correlationID || tt.correlationID == "" && ok {
				t.Fatalf("correlation_id = %v, want %q; log line %s", got, tt.correlationID, buf.String())
			}
			if strings.Contains(buf.String(), token) {
				t.Fatalf("the token was logged: %s", buf.String())
			}
		})
	}
}

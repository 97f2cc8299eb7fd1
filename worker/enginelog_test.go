package worker

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// TestEngineFailureLog: an offline engine's failure is logged with its
// exit status but without its error output, which may quote the
// transcript, at any level.
func TestEngineFailureLog(t *testing.T) {
	const secret = "the confession of Brother Anselm"
	err := fmt.Errorf("wrapped: %w", &ProcessError{Program: "apertium", Err: errors.New("exit status 1"), Stderr: "cannot parse: " + secret})
	for _, level := range []slog.Level{slog.LevelInfo, slog.LevelDebug} {
		var buf bytes.Buffer
		log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: level}))
		logEngineFailure(log, "translation failed: utterance skipped", "apertium", err)
		out := buf.String()
		if !strings.Contains(out, "translation failed") || !strings.Contains(out, "apertium: exit status 1") {
			t.Errorf("level %v: log %q does not report the failure", level, out)
		}
		if strings.Contains(out, "Anselm") {
			t.Errorf("level %v: log %q has the engine's error output", level, out)
		}
	}
}

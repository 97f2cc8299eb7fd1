package realtime

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost"
)

// handle runs one client message on the connection's reader goroutine.
func (s *Server) handle(c *conn, op ws.OpCode, p []byte) {
	if op == ws.OpBinary {
		if c.role != roleSpeaker {
			c.replyError(pentecost.Errorf(pentecost.EACTIONNOTALLOWED, "Only the speaker may send audio."))
			return
		}
		s.publishSpeakerAudio(c, p, nil) // queued: no context, no wait
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	m, err := DecodeMessage(p)
	if err != nil {
		if c.role == roleWorker {
			// Workers match errors to requests by these fields; name
			// them when they can be read at all.
			c.replyWorkerError(requestNames(p), err)
			return
		}
		c.replyError(err)
		return
	}
	if m.Action == "heartbeat" {
		var err error
		if q := producerQueue(c); q != nil {
			err = q.allowHeartbeat(c)
		} else {
			err = s.allow(ctx, "ws-heartbeat:"+c.id, s.HeartbeatLimit)
		}
		if err != nil {
			c.replyError(err)
			return
		}
		c.send(obj{"type": "heartbeatAck"})
		return
	}
	switch c.role {
	case roleListener:
		s.handleListener(ctx, c, m)
	case roleSpeaker:
		s.handleSpeaker(ctx, c, m)
	case roleWorker:
		s.handleWorker(ctx, c, m)
	}
}

// leave cleans up after a connection in its role.
func (s *Server) leave(c *conn) {
	switch c.role {
	case roleListener:
		s.leaveListener(c)
	case roleSpeaker:
		s.leaveSpeaker(c)
	case roleWorker:
		s.leaveWorker(c)
	}
}

// requestNames reads action, sessionId and targetLanguage from a message
// that did not decode, keeping only those that are strings.
func requestNames(p []byte) *Message {
	var loose struct {
		Action         any `json:"action"`
		SessionID      any `json:"sessionId"`
		TargetLanguage any `json:"targetLanguage"`
	}
	_ = json.Unmarshal(p, &loose) // best effort: the message is already known to be bad
	str := func(v any) string { s, _ := v.(string); return s }
	return &Message{Action: clip(str(loose.Action), 64), SessionID: str(loose.SessionID), TargetLanguage: clip(str(loose.TargetLanguage), 16)}
}

package realtime

import (
	"context"
	"time"

	"github.com/gobwas/ws"
	"github.com/pentecost/pentecost"
)

// handle runs one client message on the connection's reader goroutine.
func (s *Server) handle(c *conn, op ws.OpCode, p []byte) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if op == ws.OpBinary {
		if c.role != roleSpeaker {
			c.replyError(pentecost.Errorf(pentecost.EACTIONNOTALLOWED, "Only the speaker may send audio."))
			return
		}
		s.publishSpeakerAudio(ctx, c, p, nil)
		return
	}
	m, err := DecodeMessage(p)
	if err != nil {
		c.replyError(err)
		return
	}
	if m.Action == "heartbeat" {
		if err := s.allow(ctx, "ws-heartbeat:"+c.id, s.HeartbeatLimit); err != nil {
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

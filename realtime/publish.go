package realtime

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pentecost/pentecost"
)

// The publish path: a producer's reader never waits for the broker. It
// stamps each frame with the time it read it (Frame.Time, from which every
// node's hub measures age) and queues it; one goroutine per queue, started
// only while something is queued (as the writer is), publishes in order.
//
// The speaker's reader used to publish itself. When Redis hung rather than
// refused (a partition, a frozen link: a publish held for go-redis's read
// timeouts) or was merely slower than 20 ms a publish, the speaker's audio
// waited in its socket, and once publishing went on again the backlog was
// read in one go and stamped as just received: seconds of old speech that
// no receiver could tell from live, heard in a burst (150 chunks up to 6 s
// late after a link frozen for 6 s: TestStale_SpeakerNodeLinkFrozen). Now a frame's Time is
// when it arrived whatever the broker does; the publisher drops audio older
// than MaxFrameAge rather than publish it (every hub would skip it), and a
// full queue drops its oldest audio. Such audio is never numbered, so
// listeners see no gap, only a silence: it is counted in
// pentecost_stale_frames_skipped_total{delivery="publish"}.
//
// A speaker's queue is its hub session's, so that a refreshing speaker's
// chunks, held until the old connection's reader is done (holdAudioFor),
// are published after the old connection's. A worker's is its connection's.

// Publish queue bounds, in frames. A speaker's holds 10 s of 20 ms chunks,
// as a listener's outgoing queue does (DefaultQueueFrames), for both
// streams of its language (each chunk is published on the PCM and the
// Opus stream): for a speaker talking in real time age decides what is
// dropped, room only for one sending faster than that (with room for 128,
// a test sending 300 chunks at once under the race detector lost some). A
// worker publishes many streams on one connection.
const (
	speakerPublishQueue = 1024
	workerPublishQueue  = 4096
)

// publishTimeout bounds one publish, as the reader's context did.
const publishTimeout = 10 * time.Second

// publishErrorEvery spaces a queue's error replies: while the broker is
// down every publish fails at once (redis.Broker.down), and a speaker was
// sent 50 errors a second.
const publishErrorEvery = time.Second

// publishFlushWait bounds how long a speaker's control action (or its
// leaving) waits for the audio it sent before to be published
// (publishQueue.flush): in order when the broker answers, not held up long
// when it hangs.
const publishFlushWait = 2 * time.Second

// producerLimitWait bounds how long a speaker's or worker's heartbeat
// waits for its rate limit (allowHeartbeat): a healthy Redis answers in a
// millisecond.
const producerLimitWait = 100 * time.Millisecond

// pubItem is one frame to publish, or (f nil) a flush marker.
type pubItem struct {
	key pentecost.StreamKey
	f   *pentecost.Frame
	c   *conn // told of a failure
	// A worker's request names, repeated in its error reply.
	reqSession, reqLang string
	done                chan struct{} // flush marker: closed when reached
}

// publishQueue is one producer's frames on their way to the broker.
type publishQueue struct {
	srv   *Server
	hs    *hubSession // a speaker's: touched after each publish
	limit int

	mu      sync.Mutex
	items   []pubItem // items[head:] wait
	head    int
	running bool // a publisher goroutine runs: items wait or one is being published

	lastErr time.Time // last error reply (publisher only)

	limiting atomic.Bool  // a heartbeat's rate limit check runs (allowHeartbeat)
	warned   atomic.Int64 // when a drop was last logged (Unix ns)
}

func newPublishQueue(s *Server, hs *hubSession, limit int) *publishQueue {
	return &publishQueue{srv: s, hs: hs, limit: limit}
}

// push queues a frame and starts the publisher if needed. It never blocks.
func (q *publishQueue) push(it pubItem) {
	q.mu.Lock()
	if len(q.items)-q.head >= q.limit {
		q.dropOldestLocked()
	}
	q.appendLocked(it)
	q.mu.Unlock()
}

func (q *publishQueue) appendLocked(it pubItem) {
	if q.head > 0 && len(q.items) == cap(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, it)
	if !q.running {
		q.running = true
		go q.run()
	}
}

// dropOldestLocked drops the oldest audio frame waiting, else the oldest
// caption; never a flush marker.
func (q *publishQueue) dropOldestLocked() {
	i := -1
	for j := q.head; j < len(q.items); j++ {
		if f := q.items[j].f; f != nil && (f.Kind == pentecost.FrameAudio || i < 0) {
			i = j
			if f.Kind == pentecost.FrameAudio {
				break
			}
		}
	}
	if i < 0 {
		return
	}
	if it := q.items[i]; it.f.Kind == pentecost.FrameAudio {
		q.dropped(it, "publish queue full")
	}
	copy(q.items[i:], q.items[i+1:])
	q.items[len(q.items)-1] = pubItem{}
	q.items = q.items[:len(q.items)-1]
}

// run publishes until the queue is empty, then exits.
func (q *publishQueue) run() {
	for {
		q.mu.Lock()
		if q.head == len(q.items) {
			q.items, q.head = q.items[:0], 0
			if cap(q.items) > 16 {
				q.items = nil // a backlog's room is not kept
			}
			q.running = false
			q.mu.Unlock()
			return
		}
		it := q.items[q.head]
		q.items[q.head] = pubItem{}
		q.head++
		q.mu.Unlock()
		q.publish(it)
	}
}

func (q *publishQueue) publish(it pubItem) {
	if it.done != nil {
		close(it.done)
		return
	}
	s := q.srv
	if it.f.Kind == pentecost.FrameAudio && s.MaxFrameAge > 0 && s.Now().Sub(it.f.Time) > s.MaxFrameAge {
		q.dropped(it, "older than the maximum frame age")
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, publishTimeout)
	err := s.Broker.Publish(ctx, it.key, it.f)
	cancel()
	if err != nil {
		q.failed(it, err)
		return
	}
	if q.hs != nil {
		s.touch(q.hs, false)
	}
}

// dropped counts an audio frame dropped unpublished, and logs it at most
// once a minute per queue: listeners hear silence and are told nothing, so
// the log is where an operator learns the broker is too slow.
func (q *publishQueue) dropped(it pubItem, why string) {
	s := q.srv
	s.metrics.staleSkipped.WithLabelValues(skipPublish).Inc()
	now := s.Now()
	last := q.warned.Load()
	if now.UnixNano()-last < int64(time.Minute) || !q.warned.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	s.Logger.Warn("dropping audio before publishing: the broker is too slow or unreachable", "reason", why,
		logSession, it.key.SessionID, logLang, it.key.Language, "age_ms", now.Sub(it.f.Time).Milliseconds())
}

// failed tells the producer a publish failed, at most once per
// publishErrorEvery.
func (q *publishQueue) failed(it pubItem, err error) {
	now := time.Now()
	if !q.lastErr.IsZero() && now.Sub(q.lastErr) < publishErrorEvery {
		return
	}
	q.lastErr = now
	if it.c.role != roleWorker {
		it.c.replyError(err)
		return
	}
	action := "publishAudio"
	if it.f.Kind == pentecost.FrameCaption {
		action = "publishCaption"
	}
	it.c.replyWorkerError(&Message{Action: action, SessionID: it.reqSession, TargetLanguage: it.reqLang}, err)
}

// flush waits until every frame queued so far has been published or
// dropped, or for wait at most: a speaker's pause or end must reach
// listeners after the audio sent before it, as when the reader published.
func (q *publishQueue) flush(wait time.Duration) {
	q.mu.Lock()
	if !q.running {
		q.mu.Unlock()
		return // nothing queued, nothing being published
	}
	done := make(chan struct{})
	q.appendLocked(pubItem{done: done})
	q.mu.Unlock()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// producerQueue returns the publish queue of a speaker or worker
// connection, nil for a listener.
func producerQueue(c *conn) *publishQueue {
	switch c.role {
	case roleSpeaker:
		return c.session.pub
	case roleWorker:
		return c.wstate.pub
	}
	return nil
}

// allowHeartbeat applies the heartbeat limit to a producer's connection
// without holding its reader more than producerLimitWait. The check is the
// one round trip to the shared store a producer's reader makes while audio
// flows, and a frozen link held it for go-redis's read timeouts (context
// deadlines do not cut a read short: ContextTimeoutEnabled is off), 5.5 s
// with a heartbeat in TestStale_SpeakerNodeLinkFrozen's stall, while the
// audio behind it waited in the socket to be stamped late. So the check
// runs on its own goroutine, one at a time per queue; a check too slow or
// still running lets the heartbeat through, as a limiter that cannot answer
// does (allow).
func (q *publishQueue) allowHeartbeat(c *conn) error {
	s := q.srv
	if s.RateLimiter == nil || s.HeartbeatLimit.Zero() || !q.limiting.CompareAndSwap(false, true) {
		return nil
	}
	done := make(chan error, 1)
	go func() {
		defer q.limiting.Store(false)
		ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
		defer cancel()
		done <- s.allow(ctx, "ws-heartbeat:"+c.id, s.HeartbeatLimit)
	}()
	t := time.NewTimer(producerLimitWait)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		return nil
	}
}

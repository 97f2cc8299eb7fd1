// Package bench is Pentecost's load generator: S sessions, each with one
// speaker sending audio in real time and L listeners, over the real
// WebSocket protocol (through the Go client package). It measures delivery,
// end-to-end latency, joins, and the server's CPU time and memory, and can
// sweep a parameter or compare two builds.
//
// Every PCM chunk carries its send time (Unix nanoseconds, little-endian,
// bytes 0–7) and its index in the speaker's schedule (bytes 8–15); the rest
// is filler. Opus packets (FormatOpus) are real speech and carry nothing
// extra: a listener tells which packet of the fixture it got by its bytes,
// and the speaker records when it last sent each. A listener's latency is
// its receive time minus the send time, both read from this process's
// clock. Listeners also count the WebSocket payload bytes of the audio
// they receive: the bandwidth a listener's connection needs.
package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pentecost/pentecost/client"
)

// Defaults of Config.
const (
	DefaultSessions      = 1
	DefaultListeners     = 100
	DefaultChunkBytes    = 640 // 20 ms of 16 kHz PCM16
	DefaultChunkInterval = 20 * time.Millisecond
	DefaultWarmup        = 3 * time.Second
	DefaultDuration      = 10 * time.Second
	DefaultDrain         = 5 * time.Second
	DefaultConcurrency   = 64
	DefaultLanguage      = "en"
)

// Config describes one benchmark run.
type Config struct {
	// URL is the server's base URL (http://127.0.0.1:8080); Token a speaker
	// token whose user may create sessions.
	URL   string
	Token string

	Sessions  int // sessions, each with one speaker
	Listeners int // listeners per session

	// SourceLanguage is each session's language. Languages are the
	// listeners' languages, assigned in turn; default: the source language.
	// Listeners of another language receive audio only when a translation
	// worker produces it; the benchmark runs none, so they count as joined
	// but no deliveries are expected for them.
	SourceLanguage string
	Languages      []string

	// Format is the audio: FormatPCM (default: chunks of ChunkBytes every
	// ChunkInterval) or FormatOpus (the fixture's 100 ms packets of speech
	// every 100 ms; ChunkBytes and ChunkInterval must be unset, or 100 ms).
	Format string

	ChunkBytes    int           // bytes per chunk, at least 100 (16 carry timing)
	ChunkInterval time.Duration // one chunk per interval per speaker
	// JSON makes listeners use the original JSON protocol (base64
	// audioData) and speakers send sendAudio messages; else binary frames.
	JSON bool
	// Idle connects everyone but sends no audio (memory per idle listener).
	Idle bool
	// ClientListeners makes listeners use the Go client package (with its
	// reconnection and resume) instead of the benchmark's lean connection,
	// which costs the generator several times less CPU per delivery.
	ClientListeners bool

	// ConnectRate limits listener connections per second (0: as fast as
	// Concurrency allows); Concurrency bounds handshakes in flight.
	ConnectRate float64
	Concurrency int

	// Warmup runs before the measured window of Duration; Drain is how
	// long to wait after it for frames still on their way.
	Warmup, Duration, Drain time.Duration

	// ServerPID, when set, is sampled in /proc for CPU time and memory.
	// ServerInProcess says the server runs in this process, so its CPU
	// includes the generator's.
	ServerPID       int
	ServerInProcess bool
	// MetricsURL is the server's Prometheus endpoint; default URL/metrics.
	// Unreachable metrics are reported as unknown.
	MetricsURL string

	// Nodes are the servers listeners are spread over, in turn, when
	// several nodes share a Redis; the first is URL's (speakers connect
	// there). Default: URL alone, with ServerPID. RedisPID, when set, is
	// the redis-server sampled for Redis's cost per delivery.
	Nodes    []Node
	RedisPID int

	// Progress receives a progress line while the run connects and runs.
	Progress io.Writer
	// Logger receives client connection logs; default: discarded.
	Logger *slog.Logger
}

func (c *Config) setDefaults() error {
	if c.URL == "" {
		return errors.New("bench: URL is required")
	}
	if c.Token == "" {
		return errors.New("bench: a speaker token is required")
	}
	if c.Sessions <= 0 {
		c.Sessions = DefaultSessions
	}
	if c.Listeners < 0 {
		return errors.New("bench: listeners must not be negative")
	}
	if c.SourceLanguage == "" {
		c.SourceLanguage = DefaultLanguage
	}
	if len(c.Languages) == 0 {
		c.Languages = []string{c.SourceLanguage}
	}
	switch c.Format {
	case "", FormatPCM:
		c.Format = FormatPCM
		if c.ChunkBytes == 0 {
			c.ChunkBytes = DefaultChunkBytes
		}
		if c.ChunkBytes < client.MinAudioChunk || c.ChunkBytes > client.MaxAudioChunk {
			return fmt.Errorf("bench: chunk size must be between %d and %d bytes", client.MinAudioChunk, client.MaxAudioChunk)
		}
		if c.ChunkInterval <= 0 {
			c.ChunkInterval = DefaultChunkInterval
		}
	case FormatOpus:
		if (c.ChunkInterval != 0 && c.ChunkInterval != OpusPacketInterval) || c.ChunkBytes != 0 {
			return errors.New("bench: Opus sends its fixture's 100 ms packets: no chunk size, and an interval of 100 ms")
		}
		f, err := loadOpusFixture()
		if err != nil {
			return err
		}
		c.ChunkInterval = OpusPacketInterval
		c.ChunkBytes = f.bytes / len(f.packets) // the mean, for the report
	default:
		return fmt.Errorf("bench: format must be %s or %s", FormatPCM, FormatOpus)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Warmup < 0 || c.Duration < 0 || c.Drain < 0 {
		return errors.New("bench: durations must not be negative")
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Drain == 0 {
		c.Drain = DefaultDrain
	}
	if c.MetricsURL == "" {
		c.MetricsURL = c.URL + "/metrics"
	}
	if len(c.Nodes) == 0 {
		c.Nodes = []Node{{URL: c.URL, PID: c.ServerPID}}
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Node is one server of several sharing a Redis.
type Node struct {
	URL string
	PID int // for /proc sampling; 0: unknown
}

// session is one speaker and its listeners.
type session struct {
	idx     int
	speaker *client.Speaker
	id      string
	// opus, with FormatOpus: the fixture, and for each of its packets the
	// schedule index and send time (Unix ns) of its last sending.
	opus     *opusFixture
	lastIdx  []atomic.Uint64
	lastSent []atomic.Int64
	// winStart and winEnd bound the chunk indexes of the measured window.
	winStart, winEnd atomic.Uint64
	sent             atomic.Int64 // chunks of the window sent
	late             atomic.Int64 // chunks of the window sent over an interval late
	maxLag           atomic.Int64 // ns
	sendErrs         atomic.Int64
	audible          int // listeners of the source language that joined
}

// listener is one listening connection. Its callbacks run one at a time,
// so the histogram and sequence tracking need no lock.
type listener struct {
	sess   *session
	l      listenerConn
	hears  bool // the source language
	json   bool
	joined bool

	hist     Histogram
	lastSeq  uint64
	gaps     atomic.Int64
	received atomic.Int64 // chunks of the window
	bytes    atomic.Int64 // WebSocket payload bytes of those chunks; -1: not known
	lost     atomic.Int64
}

// listenerConn is a listener's connection: the lean one or the client's.
type listenerConn interface {
	Open(ctx context.Context) error
	Close() error
}

// onAudio handles a chunk from the client's Listener. The message's size
// is known only in binary mode: the 20-byte header and the audio.
func (l *listener) onAudio(f client.Frame) {
	size := -1
	if !l.json {
		size = 20 + len(f.Data)
	}
	l.audio(f.Seq, f.Data, size, time.Now().UnixNano())
}

// audio records a chunk received at now (Unix ns), which came in a
// WebSocket message of size payload bytes (-1: not known): a PCM chunk
// whose first 16 bytes are its timing, or an Opus packet of the fixture.
func (l *listener) audio(seq uint64, data []byte, size int, now int64) {
	var sent int64
	var idx uint64
	if s := l.sess; s.opus != nil {
		k, ok := s.opus.index[string(data)]
		if !ok {
			return
		}
		// The packet's last sending: right unless the listener is a
		// whole loop of the fixture (5 s) behind.
		sent, idx = s.lastSent[k].Load(), s.lastIdx[k].Load()
	} else {
		if len(data) < 16 {
			return
		}
		sent = int64(binary.LittleEndian.Uint64(data))
		idx = binary.LittleEndian.Uint64(data[8:])
	}
	if l.lastSeq != 0 && seq > l.lastSeq+1 {
		l.gaps.Add(int64(seq - l.lastSeq - 1))
	}
	l.lastSeq = seq
	if idx >= l.sess.winStart.Load() && idx < l.sess.winEnd.Load() {
		l.hist.Record(time.Duration(now - sent))
		l.received.Add(1)
		if size < 0 {
			l.bytes.Store(-1)
		} else if l.bytes.Load() >= 0 {
			l.bytes.Add(int64(size))
		}
	}
}

func (l *listener) onError(err error) {
	var ce *client.CloseError
	var he *client.HandshakeError
	if errors.As(err, &ce) || errors.As(err, &he) {
		l.lost.Add(1)
	}
}

// run is one benchmark in progress.
type run struct {
	cfg       Config
	sessions  []*session
	listeners []*listener

	joinMu    sync.Mutex
	joinHist  Histogram
	joinFails int
	joinErr   error
	joined    atomic.Int64
}

// Run runs one benchmark against the server in cfg and returns its report.
// It stops by itself after connecting, Warmup, Duration and Drain, or when
// ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg}
	defer r.close()
	return r.run(ctx)
}

func (r *run) options() client.Options {
	return client.Options{Logger: r.cfg.Logger, DialTimeout: 30 * time.Second}
}

func (r *run) run(ctx context.Context) (*Report, error) {
	cfg := r.cfg
	rep := newReport(&cfg)

	// Speakers create their sessions.
	for i := range cfg.Sessions {
		sp := client.NewSpeaker(cfg.URL, cfg.Token)
		sp.Options = r.options()
		sp.SourceLanguage = cfg.SourceLanguage
		sp.JSONAudio = cfg.JSON
		s := &session{idx: i, speaker: sp}
		if cfg.Format == FormatOpus {
			sp.Codec = client.CodecOpus
			s.opus, _ = loadOpusFixture() // loaded by setDefaults
			s.lastIdx = make([]atomic.Uint64, len(s.opus.packets))
			s.lastSent = make([]atomic.Int64, len(s.opus.packets))
		}
		if err := sp.Open(ctx); err != nil {
			return nil, fmt.Errorf("speaker %d: %w", i+1, err)
		}
		s.id = sp.Session()
		r.sessions = append(r.sessions, s)
	}
	before := r.sampleServer()

	// Listeners join, sessions filled in turn, at the rate asked.
	if err := r.connect(ctx, rep); err != nil {
		return nil, err
	}
	if cfg.Idle {
		return r.idle(ctx, rep, before)
	}
	return r.stream(ctx, rep)
}

// connect joins every listener and records join latency and rate.
func (r *run) connect(ctx context.Context, rep *Report) error {
	cfg := r.cfg
	total := cfg.Sessions * cfg.Listeners
	for j := range cfg.Listeners {
		for _, s := range r.sessions {
			node := cfg.Nodes[len(r.listeners)%len(cfg.Nodes)].URL
			lang := cfg.Languages[j%len(cfg.Languages)]
			lst := &listener{sess: s, hears: lang == cfg.SourceLanguage, json: cfg.JSON}
			if cfg.ClientListeners {
				cl := client.NewListener(node, s.id, lang)
				cl.Options = r.options()
				cl.Binary = !cfg.JSON
				if cfg.Format == FormatOpus {
					cl.Codec = client.CodecOpus
				}
				cl.OnAudio = lst.onAudio
				cl.OnError = lst.onError
				lst.l = cl
			} else {
				lc, err := newLeanConn(node, s.id, lang, cfg.JSON, cfg.Format == FormatOpus, lst)
				if err != nil {
					return err
				}
				lst.l = lc
			}
			r.listeners = append(r.listeners, lst)
		}
	}
	var tick *time.Ticker
	if cfg.ConnectRate > 0 {
		tick = time.NewTicker(time.Duration(float64(time.Second) / cfg.ConnectRate))
		defer tick.Stop()
	}
	stop := r.progress(func() string {
		r.joinMu.Lock()
		fails := r.joinFails
		r.joinMu.Unlock()
		return fmt.Sprintf("connecting: %d/%d listeners joined, %d failed", r.joined.Load(), total, fails)
	})
	defer stop()
	sem := make(chan struct{}, cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for _, lst := range r.listeners {
		if tick != nil {
			select {
			case <-tick.C:
			case <-ctx.Done():
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t := time.Now()
			err := lst.l.Open(ctx)
			d := time.Since(t)
			r.joinMu.Lock()
			defer r.joinMu.Unlock()
			if err != nil {
				r.joinFails++
				if r.joinErr == nil {
					r.joinErr = err
				}
				return
			}
			lst.joined = true
			r.joinHist.Record(d)
			r.joined.Add(1)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, lst := range r.listeners {
		if lst.joined && lst.hears {
			lst.sess.audible++
		}
	}
	rep.setJoins(&r.joinHist, r.joinFails, elapsed, r.joinErr)
	if r.joinFails == total && total > 0 {
		return fmt.Errorf("no listener could join: %w", r.joinErr)
	}
	return nil
}

// idle measures the server's memory with everyone connected and silent.
func (r *run) idle(ctx context.Context, rep *Report, before *ProcSample) (*Report, error) {
	// Let the server settle (handshake buffers freed, counts stored).
	select {
	case <-time.After(r.cfg.Warmup):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	after := r.sampleServer()
	rep.setIdle(before, after, int(r.joined.Load()))
	r.endSessions()
	return rep, nil
}

// stream runs the speakers through warm-up and the measured window.
func (r *run) stream(ctx context.Context, rep *Report) (*Report, error) {
	cfg := r.cfg
	base := time.Now().Add(50 * time.Millisecond)
	winStart := base.Add(cfg.Warmup)
	winEnd := winStart.Add(cfg.Duration)
	for _, s := range r.sessions {
		// Speakers are spread over the interval, as independent
		// microphones would be, rather than all sending at one instant.
		t0 := base.Add(cfg.ChunkInterval * time.Duration(s.idx) / time.Duration(len(r.sessions)))
		s.winStart.Store(chunksBefore(t0, winStart, cfg.ChunkInterval))
		s.winEnd.Store(chunksBefore(t0, winEnd, cfg.ChunkInterval))
	}
	var expected int64
	for _, s := range r.sessions {
		expected += int64(s.winEnd.Load()-s.winStart.Load()) * int64(s.audible)
	}

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range r.sessions {
		t0 := base.Add(cfg.ChunkInterval * time.Duration(s.idx) / time.Duration(len(r.sessions)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.speak(sctx, s, t0, winEnd)
		}()
	}
	stop := r.progress(func() string {
		now := time.Now()
		phase := "warm-up"
		switch {
		case now.After(winEnd):
			phase = "draining"
		case now.After(winStart):
			phase = fmt.Sprintf("measuring %.0f/%.0fs", now.Sub(winStart).Seconds(), cfg.Duration.Seconds())
		}
		var sent, recv int64
		for _, s := range r.sessions {
			sent += s.sent.Load()
		}
		for _, l := range r.listeners {
			recv += l.received.Load()
		}
		return fmt.Sprintf("%s: %d chunks sent, %d/%d deliveries", phase, sent, recv, expected)
	})
	defer stop()

	if !sleepUntil(ctx, winStart) {
		return nil, ctx.Err()
	}
	cpu0, metrics0 := r.sampleServer(), r.scrape(ctx)
	nodes0, redis0 := r.sampleNodes(), r.sampleRedis()
	gen0, _ := ReadProc(os.Getpid())
	if !sleepUntil(ctx, winEnd) {
		return nil, ctx.Err()
	}
	cpu1 := r.sampleServer()
	nodes1, redis1 := r.sampleNodes(), r.sampleRedis()
	gen1, _ := ReadProc(os.Getpid())
	wg.Wait()

	// Wait for the window's frames still on their way.
	deadline := time.Now().Add(cfg.Drain)
	for time.Now().Before(deadline) && r.received() < expected {
		if !sleepUntil(ctx, time.Now().Add(20*time.Millisecond)) {
			return nil, ctx.Err()
		}
	}
	metrics1 := r.scrape(ctx)
	stop()
	// Stop every client before reading what their callbacks recorded.
	r.endSessions()
	r.close()

	var lat Histogram
	var gaps, lost, bytes int64
	var hearing int
	for _, l := range r.listeners {
		lat.Merge(&l.hist)
		gaps += l.gaps.Load()
		lost += l.lost.Load()
		if l.joined && l.hears {
			hearing++
			if b := l.bytes.Load(); b < 0 || bytes < 0 {
				bytes = -1
			} else {
				bytes += b
			}
		}
	}
	var sent, late, lag, sendErrs int64
	for _, s := range r.sessions {
		sent += s.sent.Load()
		late += s.late.Load()
		lag = max(lag, s.maxLag.Load())
		sendErrs += s.sendErrs.Load()
	}
	rep.setStream(streamResult{
		sent: sent, late: late, maxLag: time.Duration(lag), sendErrors: sendErrs,
		expected: expected, received: r.received(), latency: &lat, gaps: gaps, lost: lost,
		bytes: bytes, hearing: hearing,
		window: cfg.Duration,
		cpu0:   cpu0, cpu1: cpu1, gen0: gen0, gen1: gen1,
		nodes0: nodes0, nodes1: nodes1, redis0: redis0, redis1: redis1,
		nodeURLs: cfg.Nodes, redisPID: cfg.RedisPID,
		metrics0: metrics0, metrics1: metrics1,
	})
	return rep, nil
}

// chunksBefore returns how many chunks scheduled from t0 every interval
// are due before t.
func chunksBefore(t0, t time.Time, interval time.Duration) uint64 {
	if !t.After(t0) {
		return 0
	}
	d := t.Sub(t0)
	return uint64((d + interval - 1) / interval)
}

// speak sends one chunk per interval from t0 until end, on schedule: a
// chunk sent more than an interval after its time counts as late (the
// generator could not keep up), and is sent anyway.
func (r *run) speak(ctx context.Context, s *session, t0, end time.Time) {
	interval := r.cfg.ChunkInterval
	var buf []byte
	if s.opus == nil {
		buf = make([]byte, r.cfg.ChunkBytes)
		for i := range buf[16:] {
			buf[16+i] = byte(i) // filler
		}
	}
	winStart, winEnd := s.winStart.Load(), s.winEnd.Load()
	for i := uint64(0); ; i++ {
		due := t0.Add(time.Duration(i) * interval)
		if !due.Before(end) {
			return
		}
		if !sleepUntil(ctx, due) {
			return
		}
		now := time.Now()
		if s.opus != nil {
			// Recorded before sending, for the listeners to find.
			k := int(i % uint64(len(s.opus.packets)))
			s.lastIdx[k].Store(i)
			s.lastSent[k].Store(now.UnixNano())
			buf = s.opus.packets[k]
		} else {
			binary.LittleEndian.PutUint64(buf, uint64(now.UnixNano()))
			binary.LittleEndian.PutUint64(buf[8:], i)
		}
		err := s.speaker.SendAudio(ctx, buf)
		if i < winStart || i >= winEnd {
			continue
		}
		if err != nil {
			s.sendErrs.Add(1)
			continue
		}
		s.sent.Add(1)
		lag := now.Sub(due)
		if lag > interval {
			s.late.Add(1)
		}
		if int64(lag) > s.maxLag.Load() {
			s.maxLag.Store(int64(lag))
		}
	}
}

func (r *run) received() int64 {
	var n int64
	for _, l := range r.listeners {
		n += l.received.Load()
	}
	return n
}

// sampleServer returns the CPU time and memory of every node, summed.
func (r *run) sampleServer() *ProcSample {
	var sum *ProcSample
	for _, p := range r.sampleNodes() {
		if p == nil {
			return nil
		}
		if sum == nil {
			sum = &ProcSample{}
		}
		sum.CPU += p.CPU
		sum.RSS += p.RSS
	}
	return sum
}

// sampleNodes samples each node (nil where its pid is unknown).
func (r *run) sampleNodes() []*ProcSample {
	out := make([]*ProcSample, len(r.cfg.Nodes))
	for i, n := range r.cfg.Nodes {
		if n.PID == 0 {
			continue
		}
		if s, err := ReadProc(n.PID); err == nil {
			out[i] = &s
		}
	}
	return out
}

func (r *run) sampleRedis() *ProcSample {
	if r.cfg.RedisPID == 0 {
		return nil
	}
	s, err := ReadProc(r.cfg.RedisPID)
	if err != nil {
		return nil
	}
	return &s
}

// scrape sums the counters of every node's /metrics; nil if one fails.
func (r *run) scrape(ctx context.Context) map[string]float64 {
	sum := map[string]float64{}
	for i, n := range r.cfg.Nodes {
		u := n.URL + "/metrics"
		if i == 0 {
			u = r.cfg.MetricsURL
		}
		m, err := scrapeMetrics(ctx, u, metricDropped, metricSlow)
		if err != nil {
			return nil
		}
		for k, v := range m {
			sum[k] += v
		}
	}
	return sum
}

// endSessions ends every session, so that a server used for several runs
// does not keep them.
func (r *run) endSessions() {
	var wg sync.WaitGroup
	for _, s := range r.sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = s.speaker.End(ctx)
		}()
	}
	wg.Wait()
}

// close closes every client, many at a time. It may be called again.
func (r *run) close() {
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	for _, l := range r.listeners {
		if !l.joined {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			_ = l.l.Close()
			<-sem
		}()
	}
	wg.Wait()
	for _, s := range r.sessions {
		_ = s.speaker.Close()
	}
}

// progress prints line() every second, overwriting the line, until the
// returned function is called (it is idempotent).
func (r *run) progress(line func() string) func() {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := ""
		for {
			select {
			case <-done:
				if last != "" {
					fmt.Fprintf(r.cfg.Progress, "\r%-79s\n", line())
				}
				return
			case <-t.C:
				last = line()
				fmt.Fprintf(r.cfg.Progress, "\r%-79s", last)
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

// sleepUntil waits until t; it reports false when ctx ended first.
func sleepUntil(ctx context.Context, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

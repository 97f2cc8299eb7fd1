package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// Report is the outcome of one run; it is written as JSON with --out.
// Durations are in milliseconds or microseconds as their names say.
type Report struct {
	Label string `json:"label,omitempty"`

	Sessions         int      `json:"sessions"`
	ListenersPerSess int      `json:"listenersPerSession"`
	Languages        []string `json:"languages"`
	Mode             string   `json:"mode"`       // binary or json
	Format           string   `json:"format"`     // pcm or opus
	ChunkBytes       int      `json:"chunkBytes"` // mean packet size for Opus
	ChunkMs          float64  `json:"chunkMs"`
	Idle             bool     `json:"idle,omitempty"`
	WindowSeconds    float64  `json:"windowSeconds"`

	// Joins.
	ListenersJoined int       `json:"listenersJoined"`
	JoinFailures    int       `json:"joinFailures"`
	JoinError       string    `json:"joinError,omitempty"`
	JoinsPerSecond  float64   `json:"joinsPerSecond"`
	JoinLatencyMs   Latencies `json:"joinLatencyMs"`

	// Sending, over the measured window.
	FramesSent       int64   `json:"framesSent"`
	FramesLate       int64   `json:"framesLate"` // sent over one interval after their time
	MaxSendLagMs     float64 `json:"maxSendLagMs"`
	SendErrors       int64   `json:"sendErrors"`
	AllSentOnTime    bool    `json:"allSentOnTime"`
	ChunksPerSession float64 `json:"chunksPerSecondPerSession"`

	// Receiving, for chunks sent in the window.
	DeliveriesExpected  int64     `json:"deliveriesExpected"`
	DeliveriesReceived  int64     `json:"deliveriesReceived"`
	DeliveryRatio       float64   `json:"deliveryRatio"`
	DeliveriesPerSecond float64   `json:"deliveriesPerSecond"`
	LatencyMs           Latencies `json:"latencyMs"`
	SequenceGaps        int64     `json:"sequenceGaps"`    // frames missing between consecutive sequence numbers
	ConnectionsLost     int64     `json:"connectionsLost"` // listener connections dropped (the client reconnects)
	// BytesPerListenerSecond is the WebSocket payload of the audio a
	// listener received (binary frames with their 20-byte header, or JSON
	// messages), per second of the window; KbitPerListener the same in
	// kbit/s. Nil when not known (JSON with ClientListeners).
	BytesPerListenerSecond *float64 `json:"bytesPerListenerSecond"`
	KbitPerListener        *float64 `json:"kbitPerListener"`

	// From the server's /metrics (nil when unreachable).
	FramesDropped   *float64 `json:"framesDropped"`
	SlowDisconnects *float64 `json:"slowDisconnects"`

	// From /proc/<pid> of the server (zero when its pid is unknown); with
	// several nodes, their sum, and each node in Nodes.
	Server ServerUsage   `json:"server"`
	Nodes  []ServerUsage `json:"nodes,omitempty"`
	// Redis is the shared redis-server's usage, when its pid is known.
	Redis *RedisUsage `json:"redis,omitempty"`
	// GeneratorCPUSeconds is this process's CPU time in the window.
	GeneratorCPUSeconds float64 `json:"generatorCpuSeconds"`
	// GeneratorCPUMicrosPerDelivery is the same over the deliveries received.
	GeneratorCPUMicrosPerDelivery float64 `json:"generatorCpuMicrosPerDelivery"`
}

// Latencies are quantiles in milliseconds.
type Latencies struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// ServerUsage is the server's resource use.
type ServerUsage struct {
	PID       int  `json:"pid,omitempty"`
	InProcess bool `json:"inProcess,omitempty"` // CPU includes the generator's
	// CPUSeconds is CPU time (user+system) over the window; CPUCores the
	// same per second of window.
	CPUSeconds float64 `json:"cpuSeconds"`
	CPUCores   float64 `json:"cpuCores"`
	// CPUMicrosPerDelivery is CPUSeconds over the deliveries received.
	CPUMicrosPerDelivery float64 `json:"cpuMicrosPerDelivery"`
	RSSBytes             int64   `json:"rssBytes"`
	// Idle runs: resident memory added per connected listener.
	RSSPerListenerBytes int64 `json:"rssPerListenerBytes,omitempty"`
}

// RedisUsage is what the shared Redis cost over the window.
type RedisUsage struct {
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpuSeconds"`
	CPUCores   float64 `json:"cpuCores"`
	// Per delivery received, and per chunk the speakers sent.
	CPUMicrosPerDelivery float64 `json:"cpuMicrosPerDelivery"`
	CPUMicrosPerChunk    float64 `json:"cpuMicrosPerChunk"`
}

func newReport(c *Config) *Report {
	mode := "binary"
	if c.JSON {
		mode = "json"
	}
	r := &Report{
		Sessions: c.Sessions, ListenersPerSess: c.Listeners, Languages: c.Languages, Mode: mode, Format: c.Format,
		ChunkBytes: c.ChunkBytes, ChunkMs: ms(c.ChunkInterval), Idle: c.Idle,
	}
	r.Server.PID, r.Server.InProcess = c.ServerPID, c.ServerInProcess
	return r
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func latencies(h *Histogram) Latencies {
	return Latencies{P50: ms(h.Quantile(0.50)), P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)), Max: ms(h.Max())}
}

func (r *Report) setJoins(h *Histogram, fails int, elapsed time.Duration, err error) {
	r.ListenersJoined, r.JoinFailures = int(h.Count()), fails
	if err != nil {
		r.JoinError = err.Error()
	}
	if elapsed > 0 {
		r.JoinsPerSecond = float64(h.Count()) / elapsed.Seconds()
	}
	r.JoinLatencyMs = latencies(h)
}

func (r *Report) setIdle(before, after *ProcSample, joined int) {
	if after == nil {
		return
	}
	r.Server.RSSBytes = after.RSS
	if before != nil && joined > 0 {
		r.Server.RSSPerListenerBytes = (after.RSS - before.RSS) / int64(joined)
	}
}

type streamResult struct {
	sent, late, sendErrors int64
	maxLag                 time.Duration
	expected, received     int64
	latency                *Histogram
	gaps, lost             int64
	bytes                  int64 // payload bytes over every hearing listener; -1: not known
	hearing                int   // listeners of the source language that joined
	window                 time.Duration
	cpu0, cpu1             *ProcSample
	nodes0, nodes1         []*ProcSample
	redis0, redis1         *ProcSample
	nodeURLs               []Node
	redisPID               int
	gen0, gen1             ProcSample
	metrics0, metrics1     map[string]float64
}

func (r *Report) setStream(s streamResult) {
	r.WindowSeconds = s.window.Seconds()
	r.FramesSent, r.FramesLate, r.SendErrors = s.sent, s.late, s.sendErrors
	r.MaxSendLagMs = ms(s.maxLag)
	r.AllSentOnTime = s.late == 0 && s.sendErrors == 0
	if r.Sessions > 0 && s.window > 0 {
		r.ChunksPerSession = float64(s.sent) / float64(r.Sessions) / s.window.Seconds()
	}
	r.DeliveriesExpected, r.DeliveriesReceived = s.expected, s.received
	if s.expected > 0 {
		r.DeliveryRatio = float64(s.received) / float64(s.expected)
	}
	r.DeliveriesPerSecond = float64(s.received) / s.window.Seconds()
	r.LatencyMs = latencies(s.latency)
	r.SequenceGaps, r.ConnectionsLost = s.gaps, s.lost
	if s.bytes >= 0 && s.hearing > 0 && s.window > 0 {
		b := float64(s.bytes) / float64(s.hearing) / s.window.Seconds()
		k := b * 8 / 1000
		r.BytesPerListenerSecond, r.KbitPerListener = &b, &k
	}
	if s.metrics0 != nil && s.metrics1 != nil {
		d := s.metrics1[metricDropped] - s.metrics0[metricDropped]
		sl := s.metrics1[metricSlow] - s.metrics0[metricSlow]
		r.FramesDropped, r.SlowDisconnects = &d, &sl
	}
	if s.cpu0 != nil && s.cpu1 != nil {
		cpu := s.cpu1.CPU - s.cpu0.CPU
		r.Server.CPUSeconds = cpu.Seconds()
		r.Server.CPUCores = cpu.Seconds() / s.window.Seconds()
		r.Server.RSSBytes = s.cpu1.RSS
		if s.received > 0 {
			r.Server.CPUMicrosPerDelivery = float64(cpu/time.Microsecond) / float64(s.received)
		}
	}
	if len(s.nodes0) > 1 {
		for i := range s.nodes0 {
			u := ServerUsage{PID: s.nodeURLs[i].PID}
			if a, b := s.nodes0[i], s.nodes1[i]; a != nil && b != nil {
				u.CPUSeconds = (b.CPU - a.CPU).Seconds()
				u.CPUCores = u.CPUSeconds / s.window.Seconds()
				u.RSSBytes = b.RSS
				if s.received > 0 {
					u.CPUMicrosPerDelivery = u.CPUSeconds * 1e6 / float64(s.received)
				}
			}
			r.Nodes = append(r.Nodes, u)
		}
	}
	if s.redis0 != nil && s.redis1 != nil {
		cpu := (s.redis1.CPU - s.redis0.CPU).Seconds()
		ru := &RedisUsage{PID: s.redisPID, CPUSeconds: cpu, CPUCores: cpu / s.window.Seconds()}
		if s.received > 0 {
			ru.CPUMicrosPerDelivery = cpu * 1e6 / float64(s.received)
		}
		if s.sent > 0 {
			ru.CPUMicrosPerChunk = cpu * 1e6 / float64(s.sent)
		}
		r.Redis = ru
	}
	r.GeneratorCPUSeconds = (s.gen1.CPU - s.gen0.CPU).Seconds()
	if s.received > 0 {
		r.GeneratorCPUMicrosPerDelivery = r.GeneratorCPUSeconds * 1e6 / float64(s.received)
	}
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Summary writes the report for people.
func (r *Report) Summary(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	title := fmt.Sprintf("%d session(s) × %d listener(s), %s, %s, %d B every %g ms", r.Sessions, r.ListenersPerSess, r.Mode, r.format(), r.ChunkBytes, r.ChunkMs)
	if r.Format == FormatOpus {
		title = fmt.Sprintf("%d session(s) × %d listener(s), %s, Opus speech, %d B (mean) every %g ms", r.Sessions, r.ListenersPerSess, r.Mode, r.ChunkBytes, r.ChunkMs)
	}
	if r.Label != "" {
		title = r.Label + ": " + title
	}
	p("%s", title)
	p("  joins:      %d joined, %d failed, %.0f joins/s, latency p50 %.1f ms, p99 %.1f ms, max %.1f ms",
		r.ListenersJoined, r.JoinFailures, r.JoinsPerSecond, r.JoinLatencyMs.P50, r.JoinLatencyMs.P99, r.JoinLatencyMs.Max)
	if r.JoinError != "" {
		p("              first join error: %s", r.JoinError)
	}
	if r.Idle {
		if r.Server.RSSBytes > 0 {
			p("  server:     RSS %.1f MB, %.1f KB per idle listener", mb(r.Server.RSSBytes), float64(r.Server.RSSPerListenerBytes)/1024)
		}
		return
	}
	onTime := "all on time"
	if !r.AllSentOnTime {
		onTime = fmt.Sprintf("%d late, %d failed", r.FramesLate, r.SendErrors)
	}
	p("  sent:       %d chunks in %.0f s (%s; max lag %.1f ms)", r.FramesSent, r.WindowSeconds, onTime, r.MaxSendLagMs)
	p("  delivered:  %d of %d (%.4f%%), %.0f/s", r.DeliveriesReceived, r.DeliveriesExpected, 100*r.DeliveryRatio, r.DeliveriesPerSecond)
	p("  latency:    p50 %.2f ms, p95 %.2f ms, p99 %.2f ms, max %.2f ms", r.LatencyMs.P50, r.LatencyMs.P95, r.LatencyMs.P99, r.LatencyMs.Max)
	if r.BytesPerListenerSecond != nil {
		p("  bandwidth:  %.0f B/s (%.1f kbit/s) of WebSocket payload per listener", *r.BytesPerListenerSecond, *r.KbitPerListener)
	} else {
		p("  bandwidth:  unknown (the client's listeners in JSON mode do not see message sizes)")
	}
	p("  losses:     %d sequence gaps, %d connections lost, dropped by server %s, slow disconnects %s",
		r.SequenceGaps, r.ConnectionsLost, optFloat(r.FramesDropped), optFloat(r.SlowDisconnects))
	if r.Server.PID != 0 {
		note := ""
		if r.Server.InProcess {
			note = " (server and generator share this process)"
		}
		p("  server:     %.2f CPU s (%.2f cores), %.2f µs CPU per delivery, RSS %.1f MB%s",
			r.Server.CPUSeconds, r.Server.CPUCores, r.Server.CPUMicrosPerDelivery, mb(r.Server.RSSBytes), note)
	}
	for i, n := range r.Nodes {
		p("  node %d:     %.2f CPU s (%.2f cores), %.2f µs CPU per delivery, RSS %.1f MB", i+1, n.CPUSeconds, n.CPUCores, n.CPUMicrosPerDelivery, mb(n.RSSBytes))
	}
	if r.Redis != nil {
		p("  redis:      %.2f CPU s (%.2f cores), %.2f µs CPU per delivery, %.1f µs per chunk", r.Redis.CPUSeconds, r.Redis.CPUCores, r.Redis.CPUMicrosPerDelivery, r.Redis.CPUMicrosPerChunk)
	}
	p("  generator:  %.2f CPU s, %.2f µs per delivery", r.GeneratorCPUSeconds, r.GeneratorCPUMicrosPerDelivery)
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// format is the report's audio format; reports from before formats were
// PCM.
func (r *Report) format() string {
	if r.Format == "" {
		return FormatPCM
	}
	return r.Format
}

// kbit is KbitPerListener as a table cell.
func (r *Report) kbit() string {
	if r.KbitPerListener == nil {
		return "-"
	}
	return fmt.Sprintf("%.1f", *r.KbitPerListener)
}

func optFloat(f *float64) string {
	if f == nil {
		return "unknown"
	}
	return fmt.Sprintf("%.0f", *f)
}

// WriteTable writes reports as a Markdown table, one row each.
func WriteTable(w io.Writer, reports []*Report) {
	fmt.Fprintln(w, "| run | sessions × listeners | mode | format | chunk | deliveries/s | delivered | p50 ms | p95 ms | p99 ms | max ms | late sends | server CPU µs/delivery | server cores | RSS MB | kbit/s per listener | joins/s |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range reports {
		label := r.Label
		if label == "" {
			label = "-"
		}
		fmt.Fprintf(w, "| %s | %d × %d | %s | %s | %d B / %g ms | %.0f | %.3f%% | %.2f | %.2f | %.2f | %.2f | %d | %.2f | %.2f | %.1f | %s | %.0f |\n",
			strings.ReplaceAll(label, "|", "/"), r.Sessions, r.ListenersPerSess, r.Mode, r.format(), r.ChunkBytes, r.ChunkMs,
			r.DeliveriesPerSecond, 100*r.DeliveryRatio, r.LatencyMs.P50, r.LatencyMs.P95, r.LatencyMs.P99, r.LatencyMs.Max,
			r.FramesLate, r.Server.CPUMicrosPerDelivery, r.Server.CPUCores, mb(r.Server.RSSBytes), r.kbit(), r.JoinsPerSecond)
	}
}

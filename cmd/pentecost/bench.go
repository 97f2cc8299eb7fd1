package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/pentecost/pentecost/auth"
	"github.com/pentecost/pentecost/bench"
	"github.com/pentecost/pentecost/sqlite"
)

var benchCommand = &command{
	Name: "bench", Args: "[flags]",
	Summary: "Generate load over loopback: sessions with a speaker each, and their listeners.",
	Details: benchUsage,
}

const benchUsage = `Load generator: S sessions, each with one speaker sending audio in real time
and L listeners, over loopback. By default it starts its own server (this
binary's "serve", as a child process on a free loopback port, with a
temporary data dir and rate limits off) for every run, so that the server's
CPU time and memory are measured apart from the generator's.

Listeners of a language other than the source hear audio only when a
translation worker produces it; the benchmark runs none, so use the source
language (the default) unless a worker is connected.

Examples:
  pentecost bench --sessions 4 --listeners 500
  pentecost bench --sessions 8 --listeners 500 --chunk-ms 100
  pentecost bench --format opus --sessions 4 --listeners 500
  pentecost bench --format pcm,opus --rounds 2 --sessions 4 --listeners 500
  pentecost bench --json --sessions 4 --listeners 500 --out report.json
  pentecost bench --sweep-listeners 100,250,500 --table sweep.md
  pentecost bench --idle --sessions 20 --listeners 500
  pentecost bench --compare-bin ./pentecost-old --rounds 3 --sessions 4 --listeners 500
  pentecost bench --url http://127.0.0.1:8080 --token JWT --server-pid 1234
  pentecost bench --nodes 2 --sessions 4 --listeners 500
  pentecost bench --url http://127.0.0.1:8080,http://127.0.0.1:8081 --token JWT --server-pid 1234,1235
`

// runBench runs the load generator.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pentecost bench", flag.ContinueOnError)
	var (
		url        = fs.String("url", "", "benchmark the server at this URL instead of starting one (loopback only); comma-separated URLs of nodes sharing a Redis spread listeners over them in turn, speakers on the first")
		token      = fs.String("token", "", "speaker token for --url (see pentecost token)")
		serverPID  = fs.String("server-pid", "", "pid of the --url server (comma-separated, one per URL), to read CPU time and memory from /proc")
		nodes      = fs.Int("nodes", 1, "start this many server nodes sharing a Redis (--redis, or a redis-server the benchmark starts); listeners are spread over them, speakers on the first")
		redisURL   = fs.String("redis", "", "with --nodes: the Redis the nodes share (default: start redis-server on a free loopback port)")
		redisPID   = fs.Int("redis-pid", 0, "pid of the Redis, to report its CPU per delivery (known when the benchmark starts it)")
		redisBin   = fs.String("redis-server", "redis-server", "with --nodes and no --redis: the redis-server binary to start")
		bin        = fs.String("bin", "", "pentecost binary to start as the server (default: this one)")
		inProcess  = fs.Bool("in-process", false, "run the server inside this process (its CPU then includes the generator's)")
		withPprof  = fs.Bool("pprof", false, "start the server with /debug/pprof/ enabled")
		sessions   = fs.Int("sessions", bench.DefaultSessions, "sessions, each with one speaker")
		listeners  = fs.Int("listeners", bench.DefaultListeners, "listeners per session")
		languages  = fs.String("languages", "", "comma-separated listener languages, assigned in turn (default: the source language)")
		source     = fs.String("source-language", bench.DefaultLanguage, "the sessions' source language")
		chunkMs    = fs.Float64("chunk-ms", 20, "milliseconds of audio per chunk: one chunk is sent every chunk-ms")
		chunkBytes = fs.Int("chunk-bytes", 0, "bytes per chunk (default: 16 kHz PCM16 for chunk-ms, 640 B per 20 ms)")
		format     = fs.String("format", bench.FormatPCM, "audio: pcm (chunks of --chunk-bytes every --chunk-ms), opus (100 ms Opus packets of speech; listeners take codec=opus), or pcm,opus (A/B: --rounds runs of each, alternating, PCM in 100 ms chunks unless --chunk-ms is given)")
		jsonMode   = fs.Bool("json", false, "JSON (original) protocol: sendAudio and base64 audioData; default binary frames")
		clientL    = fs.Bool("client-listeners", false, "listeners use the Go client package (reconnects, resumes) instead of the lean benchmark connection; costs the generator more CPU")
		idle       = fs.Bool("idle", false, "connect everyone, send nothing, and report server memory per idle listener")
		rate       = fs.Float64("connect-rate", 0, "listener connections per second (0: as fast as --concurrency allows)")
		conc       = fs.Int("concurrency", bench.DefaultConcurrency, "listener handshakes in flight")
		warmup     = fs.Duration("warmup", bench.DefaultWarmup, "sending before the measured window")
		duration   = fs.Duration("duration", bench.DefaultDuration, "measured window")
		drain      = fs.Duration("drain", bench.DefaultDrain, "how long to wait for late frames after the window")
		out        = fs.String("out", "", "write the JSON report (or reports) to this file")
		table      = fs.String("table", "", "write a Markdown table of the runs to this file")
		sweepL     = fs.String("sweep-listeners", "", "comma-separated listener counts: one run each")
		sweepS     = fs.String("sweep-sessions", "", "comma-separated session counts: one run each")
		compareBin = fs.String("compare-bin", "", "A/B: run the same workload on this other pentecost binary (A) and --bin (B), alternating")
		rounds     = fs.Int("rounds", 3, "A/B: runs per binary")
		cpuProfile = fs.String("cpuprofile", "", "write the generator's CPU profile to this file")
	)
	if err := benchCommand.parse(fs, args, noEnvironment, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	if *chunkMs <= 0 {
		return usageError{"--chunk-ms must be positive"}
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if *format == bench.FormatPCM+","+bench.FormatOpus && !given["chunk-ms"] {
		*chunkMs = float64(bench.OpusPacketInterval / time.Millisecond) // PCM at Opus's cadence
	}
	interval := time.Duration(*chunkMs * float64(time.Millisecond))
	if *chunkBytes == 0 {
		*chunkBytes = int(*chunkMs * 32) // 16,000 samples/s × 2 bytes
	}
	cfg := bench.Config{
		Sessions: *sessions, Listeners: *listeners, SourceLanguage: *source, Format: *format,
		ChunkBytes: *chunkBytes, ChunkInterval: interval, JSON: *jsonMode, Idle: *idle, ClientListeners: *clientL,
		ConnectRate: *rate, Concurrency: *conc, Warmup: *warmup, Duration: *duration, Drain: *drain,
		Progress: stderr,
	}
	for _, l := range strings.Split(*languages, ",") {
		if l = strings.TrimSpace(l); l != "" {
			cfg.Languages = append(cfg.Languages, l)
		}
	}
	valuesL, err := intList("--sweep-listeners", *sweepL)
	if err != nil {
		return err
	}
	valuesS, err := intList("--sweep-sessions", *sweepS)
	if err != nil {
		return err
	}
	if len(valuesL) > 0 && len(valuesS) > 0 {
		return usageError{"sweep listeners or sessions, not both"}
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *bin == "" {
		*bin = self
	}
	maxListeners := *listeners
	for _, v := range valuesL {
		maxListeners = max(maxListeners, v)
	}
	var start bench.Starter
	switch {
	case *url != "":
		if *token == "" {
			return usageError{"--url needs --token (see pentecost token)"}
		}
		urls := strings.Split(*url, ",")
		pids, err := intList("--server-pid", *serverPID)
		if err != nil {
			return err
		}
		if len(pids) > 0 && len(pids) != len(urls) {
			return usageError{"--server-pid needs one pid per --url"}
		}
		t := &bench.Target{Token: *token, RedisPID: *redisPID}
		for i, u := range urls {
			u = strings.TrimRight(strings.TrimSpace(u), "/")
			if !isLoopback(u) {
				return usageError{"--url must be a loopback address: the benchmark floods its target"}
			}
			n := bench.Node{URL: u}
			if len(pids) > 0 {
				n.PID = pids[i]
			}
			t.Nodes = append(t.Nodes, n)
		}
		t.URL, t.PID = t.Nodes[0].URL, t.Nodes[0].PID
		start = func(context.Context) (*bench.Target, error) { return t, nil }
	case *nodes > 1:
		if *inProcess {
			return usageError{"--nodes starts child processes: drop --in-process"}
		}
		start = nodesStarter(*bin, *nodes, *redisURL, *redisPID, *redisBin, maxListeners, *withPprof, stderr)
	case *inProcess:
		start = inProcessStarter(maxListeners, *withPprof)
	default:
		start = spawnStarter(*bin, maxListeners, *withPprof, stderr)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	// The Opus side sends its fixture's packets, whatever the chunk flags.
	opusCfg := cfg
	opusCfg.Format, opusCfg.ChunkBytes, opusCfg.ChunkInterval = bench.FormatOpus, 0, 0
	switch *format {
	case bench.FormatPCM:
	case bench.FormatOpus:
		if given["chunk-ms"] || given["chunk-bytes"] {
			return usageError{"--format opus sends 100 ms packets of its own: drop --chunk-ms and --chunk-bytes"}
		}
		cfg = opusCfg
	case bench.FormatPCM + "," + bench.FormatOpus:
		if *compareBin != "" || len(valuesL) > 0 || len(valuesS) > 0 {
			return usageError{"--format pcm,opus is an A/B run of its own: drop --compare-bin and the sweeps"}
		}
		cfg.Format = bench.FormatPCM
	default:
		return usageError{"--format must be pcm, opus or pcm,opus"}
	}

	print := func(r *bench.Report) { r.Summary(stdout); fmt.Fprintln(stdout) }
	var reports []*bench.Report
	switch {
	case *format == bench.FormatPCM+","+bench.FormatOpus:
		cmp, err := bench.CompareSides(ctx, bench.Side{Config: cfg, Start: start}, bench.Side{Config: opusCfg, Start: start}, *rounds, print)
		if cmp != nil {
			reports = append(cmp.A, cmp.B...)
			cmp.Write(stdout, "PCM", "Opus")
		}
		if err != nil {
			return err
		}
	case *compareBin != "":
		if *url != "" || *inProcess || *nodes > 1 {
			return usageError{"--compare-bin starts one server of each build itself: drop --url, --in-process and --nodes"}
		}
		a := spawnStarter(*compareBin, maxListeners, *withPprof, stderr)
		cmp, err := bench.Compare(ctx, cfg, a, start, *rounds, print)
		if cmp != nil {
			reports = append(cmp.A, cmp.B...)
			cmp.Write(stdout, *compareBin, *bin)
		}
		if err != nil {
			return err
		}
	case len(valuesL) > 0:
		reports, err = bench.Sweep(ctx, cfg, valuesL, func(c *bench.Config, v int) { c.Listeners = v },
			func(v int) string { return fmt.Sprintf("L=%d", v) }, start, print)
	case len(valuesS) > 0:
		reports, err = bench.Sweep(ctx, cfg, valuesS, func(c *bench.Config, v int) { c.Sessions = v },
			func(v int) string { return fmt.Sprintf("S=%d", v) }, start, print)
	default:
		var r *bench.Report
		r, err = bench.RunOn(ctx, cfg, start)
		if r != nil {
			reports = []*bench.Report{r}
			print(r)
		}
	}
	if len(reports) > 1 {
		bench.WriteTable(stdout, reports)
	}
	if werr := writeReports(*out, *table, reports); werr != nil && err == nil {
		err = werr
	}
	return err
}

func intList(name, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, usageError{fmt.Sprintf("%s: %q is not a positive whole number", name, f)}
		}
		out = append(out, n)
	}
	return out, nil
}

// isLoopback reports whether a server URL names this machine.
func isLoopback(u string) bool {
	for _, p := range []string{"http://127.", "ws://127.", "http://localhost", "ws://localhost", "http://[::1]", "ws://[::1]"} {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

func writeReports(out, table string, reports []*bench.Report) error {
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		if len(reports) == 1 {
			err = reports[0].WriteJSON(f)
		} else {
			err = writeJSONList(f, reports)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if table != "" {
		f, err := os.Create(table)
		if err != nil {
			return err
		}
		bench.WriteTable(f, reports)
		return f.Close()
	}
	return nil
}

func writeJSONList(w io.Writer, reports []*bench.Report) error {
	if _, err := io.WriteString(w, "[\n"); err != nil {
		return err
	}
	for i, r := range reports {
		if i > 0 {
			io.WriteString(w, ",\n")
		}
		if err := r.WriteJSON(w); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "]\n")
	return err
}

// spawnStarter starts bin as a child server for each run and mints a
// speaker token for its admin account from its data dir.
func spawnStarter(bin string, maxListeners int, withPprof bool, stderr io.Writer) bench.Starter {
	return func(ctx context.Context) (*bench.Target, error) {
		p, err := bench.Spawn(ctx, bench.SpawnConfig{Bin: bin, MaxListeners: maxListeners, Pprof: withPprof, Stderr: stderr})
		if err != nil {
			return nil, err
		}
		tok, err := mintAdminToken(ctx, p.DataDir)
		if err != nil {
			_ = p.Close()
			return nil, err
		}
		return &bench.Target{URL: p.URL, Token: tok, PID: p.PID, Close: p.Close}, nil
	}
}

// nodesStarter starts n nodes of bin sharing a Redis (redisURL, or a
// redis-server it starts) for each run, and mints a token from that Redis.
func nodesStarter(bin string, n int, redisURL string, redisPID int, redisBin string, maxListeners int, withPprof bool, stderr io.Writer) bench.Starter {
	return func(ctx context.Context) (t *bench.Target, err error) {
		var closers []func() error
		closeAll := func() error {
			var first error
			for i := len(closers) - 1; i >= 0; i-- {
				if err := closers[i](); err != nil && first == nil {
					first = err
				}
			}
			return first
		}
		defer func() {
			if err != nil {
				_ = closeAll()
			}
		}()
		if redisURL == "" {
			rp, err := bench.SpawnRedis(ctx, redisBin)
			if err != nil {
				return nil, err
			}
			closers = append(closers, rp.Close)
			redisURL, redisPID = rp.URL, rp.PID
		}
		t = &bench.Target{RedisPID: redisPID}
		// One at a time: the first creates the shared admin account.
		for range n {
			p, err := bench.Spawn(ctx, bench.SpawnConfig{Bin: bin, MaxListeners: maxListeners, Pprof: withPprof, RedisURL: redisURL, Stderr: stderr})
			if err != nil {
				return nil, err
			}
			closers = append(closers, p.Close)
			t.Nodes = append(t.Nodes, bench.Node{URL: p.URL, PID: p.PID})
		}
		users, key, closeStore, err := openIssuer(ctx, "", redisURL)
		if err != nil {
			return nil, err
		}
		defer closeStore()
		u, err := users.FindUserByName(ctx, "admin")
		if err != nil {
			return nil, fmt.Errorf("admin account: %w", err)
		}
		if t.Token, err = auth.NewEmbedded(key).IssueToken(ctx, u, 12*time.Hour); err != nil {
			return nil, err
		}
		t.URL, t.PID, t.Close = t.Nodes[0].URL, t.Nodes[0].PID, closeAll
		return t, nil
	}
}

// mintAdminToken signs a speaker token for the admin account that a new
// data dir's server created, with that server's own key.
func mintAdminToken(ctx context.Context, dataDir string) (string, error) {
	db, err := openDataDir(dataDir)
	if err != nil {
		return "", err
	}
	defer db.Close()
	u, err := sqlite.NewUserStore(db).FindUserByName(ctx, "admin")
	if err != nil {
		return "", fmt.Errorf("admin account: %w", err)
	}
	key, err := auth.LoadOrCreateKey(filepath.Join(dataDir, signingKeyFile))
	if err != nil {
		return "", fmt.Errorf("signing key: %w", err)
	}
	return auth.NewEmbedded(key).IssueToken(ctx, u, 12*time.Hour)
}

// inProcessStarter runs Main in this process for each run.
func inProcessStarter(maxListeners int, withPprof bool) bench.Starter {
	return func(ctx context.Context) (*bench.Target, error) {
		dir, err := os.MkdirTemp("", "pentecost-bench-")
		if err != nil {
			return nil, err
		}
		env := map[string]string{
			"PENTECOST_ADDR": "127.0.0.1:0", "PENTECOST_DATA_DIR": dir, "LOG_LEVEL": "warn",
			"PENTECOST_PPROF": strconv.FormatBool(withPprof), "MAX_LISTENERS_PER_SESSION": strconv.Itoa(max(maxListeners, 500)),
			"RATE_LIMIT_SESSIONS_PER_HOUR": "0", "RATE_LIMIT_LISTENER_JOINS_PER_MIN": "0",
			"RATE_LIMIT_CONNECTION_ATTEMPTS_PER_MIN": "0", "RATE_LIMIT_HEARTBEATS_PER_MIN": "0",
			"RATE_LIMIT_LOGIN_ATTEMPTS_PER_MIN": "0", "SHUTDOWN_TIMEOUT_SECONDS": "1",
			"MAX_CONNECTIONS_PER_CLIENT": "0", "RATE_LIMIT_SESSION_MISSES_PER_MIN": "0",
		}
		cfg, err := LoadConfig(nil, func(k string) string { return env[k] }, io.Discard)
		if err != nil {
			_ = os.RemoveAll(dir)
			return nil, err
		}
		m := NewMain(cfg, io.Discard, io.Discard)
		if err := m.Run(ctx); err != nil {
			_ = m.Close()
			_ = os.RemoveAll(dir)
			return nil, err
		}
		closeAll := func() error {
			err := m.Close()
			_ = os.RemoveAll(dir)
			return err
		}
		u, err := sqlite.NewUserStore(m.DB).FindUserByName(ctx, "admin")
		if err != nil {
			_ = closeAll()
			return nil, err
		}
		tok, err := m.Embedded.IssueToken(ctx, u, 12*time.Hour)
		if err != nil {
			_ = closeAll()
			return nil, err
		}
		return &bench.Target{URL: m.HTTPServer.URL(), Token: tok, PID: os.Getpid(), InProcess: true, Close: closeAll}, nil
	}
}

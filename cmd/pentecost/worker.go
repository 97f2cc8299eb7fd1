package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pentecost/pentecost/buildinfo"
	"github.com/pentecost/pentecost/worker"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// WorkerConfig is the configuration of `pentecost worker`.
type WorkerConfig struct {
	Server      string
	Credential  string
	DataDir     string
	Engines     string // engine configuration file
	MetricsAddr string
	LogLevel    string
	LogFormat   string
}

var workerCommand = &command{
	Name: "worker", Args: "[flags]",
	Summary: "Run a translation worker: speech to speech, in the languages listeners ask for.",
	Details: "The worker connects to the server like a client. It uses the offline\n" +
		"engines unless --engines names others (see docs/translation.md).",
	Env: map[string]string{
		"server":       "PENTECOST_SERVER",
		"credential":   "PENTECOST_WORKER_CREDENTIAL",
		"data-dir":     "PENTECOST_DATA_DIR",
		"engines":      "PENTECOST_WORKER_ENGINES",
		"metrics-addr": "PENTECOST_WORKER_METRICS_ADDR",
		"log-level":    "LOG_LEVEL",
		"log-format":   "LOG_FORMAT",
	},
}

// LoadWorkerConfig reads defaults, then the environment, then flags. The
// credential, when neither given, is read from the data dir's
// worker-credential file, which `pentecost serve` writes.
func LoadWorkerConfig(args []string, getenv func(string) string, stdout, stderr io.Writer) (*WorkerConfig, error) {
	c := &WorkerConfig{}
	fs := flag.NewFlagSet("pentecost worker", flag.ContinueOnError)
	fs.StringVar(&c.Server, "server", "http://localhost:8080", "the Pentecost server's `URL`")
	fs.StringVar(&c.Credential, "credential", "", "the `SECRET` workers present to the server (default: the data dir's worker-credential file)")
	fs.StringVar(&c.DataDir, "data-dir", "./pentecost-data", "the server's data `DIR`, to read worker-credential from")
	fs.StringVar(&c.Engines, "engines", "", "engine configuration `FILE` (KEY=VALUE lines; default: the offline engines)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", "", "`ADDRESS` of the Prometheus /metrics listener, e.g. :9091 (default: none)")
	fs.StringVar(&c.LogLevel, "log-level", "info", "`LEVEL`: debug, info, warn or error")
	fs.StringVar(&c.LogFormat, "log-format", "json", "`FORMAT`: json or text")
	if err := workerCommand.parse(fs, args, getenv, stdout, stderr); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if !strings.HasPrefix(c.Server, "http://") && !strings.HasPrefix(c.Server, "https://") &&
		!strings.HasPrefix(c.Server, "ws://") && !strings.HasPrefix(c.Server, "wss://") {
		return nil, fmt.Errorf("--server must be an http(s):// or ws(s):// URL")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("--log-level must be debug, info, warn or error")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return nil, fmt.Errorf("--log-format must be json or text")
	}
	if c.Credential == "" {
		path := filepath.Join(c.DataDir, workerCredentialFile)
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("no worker credential: give --credential or $PENTECOST_WORKER_CREDENTIAL, or --data-dir of a server that wrote %s", workerCredentialFile)
		}
		c.Credential = strings.TrimSpace(string(b))
	}
	return c, nil
}

// runWorker runs a translation worker until ctx is cancelled.
func runWorker(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := LoadWorkerConfig(args, getenv, stdout, stderr)
	var u usageError
	if errors.Is(err, flag.ErrHelp) || errors.As(err, &u) {
		return err
	}
	if err != nil {
		return usageError{err.Error()}
	}
	engCfg, err := worker.LoadConfig(cfg.Engines)
	if err != nil {
		return usageError{err.Error()}
	}
	vad, err := engCfg.Segmenter()
	if err != nil {
		return usageError{err.Error()}
	}
	cacheSize, err := engCfg.CacheSize()
	if err != nil {
		return usageError{err.Error()}
	}
	engines, tiers, err := engCfg.BuildEngines(ctx, getenv)
	if err != nil {
		return err
	}
	defer engines.Close()
	for _, t := range tiers {
		defer t.Close()
	}
	logger := newLogger(&Config{LogLevel: cfg.LogLevel, LogFormat: cfg.LogFormat}, stderr)
	// A language is offered only if its synthesiser really speaks it.
	worker.CheckSynthesizers(ctx, engines, logger)
	for name, t := range tiers {
		worker.CheckSynthesizers(ctx, t, logger.With("tier", name))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}),
		buildinfo.Read().Collector())
	if cfg.MetricsAddr != "" {
		ln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		defer srv.Close()
		fmt.Fprintf(stdout, "Worker metrics on http://%s/metrics\n", ln.Addr())
	}

	w := worker.NewWorker(cfg.Server, cfg.Credential)
	w.Engines, w.Tiers, w.VAD, w.Cache = engines, tiers, vad, worker.NewCache(cacheSize)
	w.Logger, w.Registerer = logger, reg
	if err := w.Open(ctx); err != nil {
		return err
	}
	logger.Info("worker running", "server", cfg.Server, "recognizers", len(engines.Recognizers)+len(engines.StreamingRecognizers),
		"translators", len(engines.Translators), "synthesizers", len(engines.Synthesizers), "tiers", w.TierNames())
	select {
	case <-ctx.Done():
	case <-w.Done():
		err = w.Err()
	}
	if cerr := w.Close(); err == nil && ctx.Err() == nil {
		err = cerr
	}
	return err
}

package main

import (
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/pentecost/pentecost/worker"
)

// The deployment files name settings by their environment variables and
// flags. A misspelt name is ignored silently at run time, so these tests
// hold each file against the settings table, serve's and worker's own
// parsing, and the files it refers to. (scripts/check-packaging runs what
// needs outside tools: the static build, systemd-analyze, caddy.)

// repoRoot is where the deployment files are, seen from this package.
const repoRoot = "../.."

// composeFile is the part of compose.yaml these tests read.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Command     []string          `yaml:"command"`
		Environment map[string]string `yaml:"environment"`
		Volumes     []string          `yaml:"volumes"`
		Profiles    []string          `yaml:"profiles"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

// interpolation is compose's ${NAME:-default} and ${NAME}.
var interpolation = regexp.MustCompile(`\$\{([A-Z0-9_]+)(?::-([^}]*))?\}`)

// withDefaults is a compose value as it is when none of its variables is set.
func withDefaults(v string) string {
	return interpolation.ReplaceAllString(v, "$2")
}

func readCompose(t *testing.T) *composeFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	return &c
}

func serveEnvNames() map[string]bool {
	names := map[string]bool{}
	for _, s := range settings {
		names[s.env] = true
	}
	return names
}

func TestDeploy_Compose(t *testing.T) {
	c := readCompose(t)
	caddyfile, err := os.ReadFile(filepath.Join(repoRoot, "deploy/caddy/Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	known := serveEnvNames()

	t.Run("NodesShareRedis", func(t *testing.T) {
		var first map[string]string
		for _, name := range []string{"node1", "node2", "node3"} {
			svc, ok := c.Services[name]
			if !ok {
				t.Fatalf("no service %s", name)
			}
			env := map[string]string{}
			for k, v := range svc.Environment {
				if !known[k] {
					t.Errorf("%s: %s is not a setting of pentecost serve", name, k)
				}
				env[k] = withDefaults(v)
			}
			// serve's own parsing and validation, as the node would run it.
			cfg, err := LoadConfig(nil, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !strings.HasPrefix(cfg.RedisURL, "redis://redis:") {
				t.Errorf("%s: REDIS_URL %q does not name the redis service", name, cfg.RedisURL)
			}
			if first == nil {
				first = svc.Environment
			} else if !maps.Equal(first, svc.Environment) {
				t.Errorf("%s: settings differ from node1's; every node needs the same", name)
			}
			// Caddy must balance over every node, at the port the image listens on.
			if !strings.Contains(string(caddyfile), name+":8080") {
				t.Errorf("deploy/caddy/Caddyfile does not send to %s:8080", name)
			}
			if len(svc.Healthcheck.Test) > 0 {
				t.Errorf("%s: overrides the image's HEALTHCHECK", name)
			}
		}
		subnet := c.Networks["pentecost"].IPAM.Config
		if len(subnet) != 1 || first["TRUSTED_PROXIES"] != subnet[0].Subnet {
			t.Errorf("TRUSTED_PROXIES %q is not the network's subnet %v: nodes would not believe Caddy's X-Forwarded-For", first["TRUSTED_PROXIES"], subnet)
		}
	})

	t.Run("RedisAppendOnly", func(t *testing.T) {
		cmd := c.Services["redis"].Command
		i := slices.Index(cmd, "--appendonly")
		if i < 0 || i+1 >= len(cmd) || cmd[i+1] != "yes" {
			t.Errorf("redis command %q does not turn AOF on", cmd)
		}
	})

	t.Run("Caddy", func(t *testing.T) {
		caddy := c.Services["caddy"]
		if !slices.Contains(caddy.Volumes, "./deploy/caddy/Caddyfile:/etc/caddy/Caddyfile:ro") {
			t.Errorf("caddy does not mount deploy/caddy/Caddyfile: %q", caddy.Volumes)
		}
		for k := range caddy.Environment {
			if !strings.Contains(string(caddyfile), "{$"+k) {
				t.Errorf("caddy: %s is not used by the Caddyfile", k)
			}
		}
	})

	t.Run("Worker", func(t *testing.T) {
		w, ok := c.Services["worker"]
		if !ok {
			t.Fatal("no worker service")
		}
		if !slices.Equal(w.Command, []string{"worker"}) {
			t.Errorf("worker command %q", w.Command)
		}
		env := map[string]string{}
		engineKeys := []string{"OPENAI_API_KEY", "DEEPL_API_KEY", "DEEPGRAM_API_KEY", "LIBRETRANSLATE_API_KEY"}
		for k, v := range w.Environment {
			if !slices.Contains(slices.Collect(maps.Values(workerCommand.Env)), k) && !slices.Contains(engineKeys, k) {
				t.Errorf("worker: %s is not read by pentecost worker", k)
			}
			env[k] = withDefaults(v)
		}
		env["PENTECOST_WORKER_CREDENTIAL"] = "set-by-the-operator"
		cfg, err := LoadWorkerConfig(nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		// The engines file it is told to read is the one mounted there.
		mounted := false
		for _, v := range w.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			if strings.HasPrefix(dst, cfg.Engines) {
				mounted = true
				if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
					t.Error(err)
				}
			}
		}
		if !mounted {
			t.Errorf("PENTECOST_WORKER_ENGINES %q is not mounted: %q", cfg.Engines, w.Volumes)
		}
		// Its health check must reach the metrics listener it opens.
		hc := strings.Join(w.Healthcheck.Test, " ")
		if _, port, _ := strings.Cut(cfg.MetricsAddr, ":"); port == "" || !strings.Contains(hc, ":"+port+"/metrics") {
			t.Errorf("worker health check %q does not ask its metrics listener %q", hc, cfg.MetricsAddr)
		}
	})

	t.Run("FilesExist", func(t *testing.T) {
		for name, svc := range c.Services {
			for _, v := range svc.Volumes {
				if src, _, _ := strings.Cut(v, ":"); strings.HasPrefix(src, "./") {
					if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
						t.Errorf("%s: %v", name, err)
					}
				}
			}
		}
	})
}

// TestDeploy_WorkerEngines: the container image has no offline engines, so
// the compose worker's engines file must replace every default that names
// one, or the worker fails at its first utterance.
func TestDeploy_WorkerEngines(t *testing.T) {
	cfg, err := worker.LoadConfig(filepath.Join(repoRoot, "deploy/compose/worker-engines.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range cfg {
		for _, offline := range []string{"pocketsphinx", "apertium", "espeak"} {
			if strings.Contains(v, offline) {
				t.Errorf("%s=%s needs %s, which the image does not have", k, v, offline)
			}
		}
	}
	engines, tiers, err := cfg.BuildEngines(context.Background(), func(k string) string {
		if k == "OPENAI_API_KEY" {
			return "sk-test"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	defer engines.Close()
	for _, e := range tiers {
		e.Close()
	}
	if engines.Recognizers["en"] == nil && engines.StreamingRecognizers["en"] == nil {
		t.Error("no recogniser for English")
	}
	if len(engines.Translators) == 0 || len(engines.Synthesizers) == 0 {
		t.Errorf("%d translators, %d synthesisers", len(engines.Translators), len(engines.Synthesizers))
	}
}

// dockerfileInstructions returns the Dockerfile's instructions of the final
// stage, continuation lines joined, keyed by instruction.
func dockerfileInstructions(t *testing.T) (all string, final map[string][]string) {
	final = map[string][]string{}
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	all = strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(all, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		if strings.EqualFold(instr, "FROM") {
			final = map[string][]string{}
		}
		final[strings.ToUpper(instr)] = append(final[strings.ToUpper(instr)], strings.TrimSpace(rest))
	}
	return all, final
}

func TestDeploy_Dockerfile(t *testing.T) {
	all, final := dockerfileInstructions(t)
	if !strings.Contains(all, "scripts/build-static") {
		t.Error("the Dockerfile does not build with scripts/build-static, which check-packaging tests")
	}
	env := map[string]string{}
	known := serveEnvNames()
	for _, line := range final["ENV"] {
		for _, kv := range strings.Fields(line) {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || !known[k] {
				t.Errorf("ENV %s is not a setting of pentecost serve", kv)
			}
			env[k] = v
		}
	}
	cfg, err := LoadConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(final["VOLUME"], cfg.DataDir) {
		t.Errorf("data dir %s is not the VOLUME %q", cfg.DataDir, final["VOLUME"])
	}
	port := strings.TrimPrefix(cfg.Addr, ":")
	if len(final["EXPOSE"]) == 0 || !slices.Contains(strings.Fields(final["EXPOSE"][0]), port) {
		t.Errorf("listens on %s but EXPOSE is %q", cfg.Addr, final["EXPOSE"])
	}
	if u := final["USER"]; len(u) != 1 || strings.HasPrefix(u[0], "0") || strings.HasPrefix(u[0], "root") {
		t.Errorf("USER %q: the final image must not run as root", u)
	}
	if h := final["HEALTHCHECK"]; len(h) != 1 || !strings.Contains(h[0], `"healthcheck"`) {
		t.Errorf("HEALTHCHECK %q does not run pentecost healthcheck", h)
	}
}

// TestDeploy_SystemdUnits runs each unit's command line through the
// program's own parsing, so a misspelt flag fails here and not at boot.
func TestDeploy_SystemdUnits(t *testing.T) {
	for unit, want := range map[string]string{"pentecost.service": "serve", "pentecost-worker.service": "worker"} {
		b, err := os.ReadFile(filepath.Join(repoRoot, "deploy/systemd", unit))
		if err != nil {
			t.Fatal(err)
		}
		var exec []string
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "ExecStart="); ok {
				exec = strings.Fields(strings.ReplaceAll(v, "${STATE_DIRECTORY}", t.TempDir()))
			}
		}
		if len(exec) < 2 || exec[0] != "/usr/local/bin/pentecost" || exec[1] != want {
			t.Errorf("%s: ExecStart %q, want /usr/local/bin/pentecost %s", unit, exec, want)
			continue
		}
		switch want {
		case "serve":
			if _, err := LoadConfig(exec[2:], noEnv, io.Discard); err != nil {
				t.Errorf("%s: %v", unit, err)
			}
		case "worker":
			env := map[string]string{"PENTECOST_WORKER_CREDENTIAL": "from-worker.env"}
			if _, err := LoadWorkerConfig(exec[2:], func(k string) string { return env[k] }, io.Discard, io.Discard); err != nil {
				t.Errorf("%s: %v", unit, err)
			}
		}
	}
}

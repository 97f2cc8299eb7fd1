package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/pentecost/pentecost/deploy"
	"github.com/pentecost/pentecost/redistest"
	"github.com/pentecost/pentecost/worker"
)

// scrapeNames fetches a /metrics page as Prometheus does and returns the
// names of its series: a histogram's are name_bucket, name_sum and
// name_count, as PromQL selects them.
func scrapeNames(tb testing.TB, url string) map[string]bool {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		tb.Fatalf("%s: %v", url, err)
	}
	names := map[string]bool{}
	for name, mf := range mfs {
		if len(mf.GetMetric()) == 0 {
			continue
		}
		switch {
		case mf.GetType().String() == "HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case mf.GetType().String() == "SUMMARY":
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

// TestMonitoringQueries runs what an operator monitors, a node with Redis
// and a translation worker, makes a listener join, a join fail and an API
// request fail, scrapes both /metrics, and checks that every metric the
// Grafana dashboard and the alert rules of deploy/ query is exported: a
// renamed metric breaks this test, not a dashboard nobody looks at until
// the day it is needed.
func TestMonitoringQueries(t *testing.T) {
	queries, err := deploy.Queries()
	if err != nil {
		t.Fatal(err)
	}
	const secret = "monitoring-test-worker-credential"
	rdb := redistest.Start(t)
	dir := t.TempDir()
	var stderr syncBuffer
	m, _ := MustRunMain(t, dir, map[string]string{"REDIS_URL": rdb.URL(), "WORKER_CREDENTIALS": secret,
		"SHUTDOWN_TIMEOUT_SECONDS": "0.5"}, func(m *Main) { m.Stderr = &stderr })
	url := m.HTTPServer.URL()
	match := adminPassword.FindStringSubmatch(stderr.String())
	if match == nil {
		t.Fatalf("no admin password printed; stderr:\n%s", stderr.String())
	}
	status, body := do(t, "POST", url+"/auth/login", "", `{"username":"admin","password":"`+match[1]+`"}`)
	if status != http.StatusOK {
		t.Fatalf("login: %d %v", status, body)
	}
	token := body["token"].(string)
	status, body = do(t, "POST", url+"/sessions", token, `{"sourceLanguage":"en"}`)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, body)
	}
	id := body["sessionId"].(string)

	// An API error and a refused join, counted by code.
	if status, _ := do(t, "GET", url+"/sessions/no-such-session-1", "", ""); status < 400 {
		t.Fatalf("unknown session: %d", status)
	}
	dialWS(t, url, "sessionId=no-such-session-1&targetLanguage=es").next("error")

	ctx, cancel := context.WithCancel(context.Background())
	var stdout syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"worker", "--server", url, "--credential", secret, "--data-dir", dir,
			"--metrics-addr", "127.0.0.1:0"}, noEnv, nil, &stdout, io.Discard)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	metricsURL := regexp.MustCompile(`http://\S+/metrics`)
	waitFor(t, func() bool {
		select {
		case err := <-done:
			var me *worker.MissingError
			if errors.As(err, &me) {
				t.Fatalf("%v: run ./scripts/test", err)
			}
			t.Fatalf("worker stopped: %v", err)
		default:
		}
		return metricsURL.MatchString(stdout.String())
	})
	workerMetrics := metricsURL.FindString(stdout.String())

	listener := dialWS(t, url, "sessionId="+id+"&targetLanguage=es")
	listener.next("sessionJoined")
	listener.next("translationAvailable")
	// The worker's languages gauge follows the claim's confirmation.
	waitFor(t, func() bool {
		resp, err := http.Get(workerMetrics)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return bytes.Contains(b, []byte("pentecost_worker_languages 1"))
	})

	exported := scrapeNames(t, url+"/metrics")
	for name := range scrapeNames(t, workerMetrics) {
		exported[name] = true
	}
	// Prometheus itself records up for every target it scrapes.
	exported["up"] = true

	missing := map[string][]string{}
	for _, q := range queries {
		for _, name := range q.Metrics {
			if !exported[name] {
				missing[name] = append(missing[name], q.Where)
			}
		}
	}
	if len(missing) > 0 {
		var pentecost []string
		for name := range exported {
			if strings.HasPrefix(name, "pentecost_") {
				pentecost = append(pentecost, name)
			}
		}
		sort.Strings(pentecost)
		for name, where := range missing {
			t.Errorf("%s is queried (%s) but neither the server nor the worker exports it", name, strings.Join(where, "; "))
		}
		t.Logf("exported: %s", strings.Join(pentecost, " "))
	}
}

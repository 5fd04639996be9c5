// Command proxybench measures requests per second and p50/p99 latency of a GET and an audited
// POST, direct to the fake Flowker versus through the sidecar, in one run, with both running as
// child processes of the real flowker-audit binary. It writes the results as JSON.
//
//	go run ./internal/loadtest/cmd/proxybench -bin bin/flowker-audit -out bench-results/proxy.json
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flowker-audit/flowker-audit/internal/loadtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "proxybench:", err)
		os.Exit(1)
	}
}

func run() error {
	bin := flag.String("bin", "bin/flowker-audit", "the flowker-audit binary (make build)")
	out := flag.String("out", "-", "write the JSON results here (- for stdout)")
	conc := flag.String("concurrency", "32,64", "comma-separated closed-loop concurrencies")
	warmup := flag.Duration("warmup", 3*time.Second, "unmeasured warm-up of every run")
	duration := flag.Duration("duration", 10*time.Second, "measured window of every run")
	rounds := flag.Int("rounds", 1, "alternating direct/sidecar rounds per case")
	methods := flag.String("methods", "GET,POST", "comma-separated requests to run: GET and/or POST")
	rate := flag.Float64("rate", 1000, "requests/s of the paced runs (0: none)")
	profile := flag.String("profile", "", "write a CPU profile of the sidecar under audited POST load here")
	profileMethod := flag.String("profile-method", "POST", "request of the profiled run: POST or GET")
	profileSeconds := flag.Int("profile-seconds", 5, "length of the CPU profile")
	fsync := flag.Bool("fsync", true, "journal.fsync of the sidecar")
	sidecarCPUs := flag.String("sidecar-cpus", "", "pin the sidecar and its plugins to these CPUs (taskset -c list; experiments only)")
	fakeCPUs := flag.String("fake-cpus", "", "pin the fake Flowker to these CPUs (taskset -c list; experiments only)")
	fakeLatency := flag.Duration("fake-latency", 0, "service time the fake Flowker adds to every response (models a real Flowker's database round trips)")
	work := flag.String("workdir", "", "keep the generated config, data and logs here (default: a temporary directory)")
	flag.Parse()

	var cs []int
	for _, s := range strings.Split(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-concurrency %q: want positive integers", *conc)
		}
		cs = append(cs, n)
	}
	if *work != "" {
		if err := os.MkdirAll(*work, 0o750); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := loadtest.RunProxyBench(ctx, loadtest.ProxyBenchOptions{
		Binary: *bin, WorkDir: *work, Concurrency: cs, Warmup: *warmup, Duration: *duration, Rounds: *rounds,
		Methods: strings.Split(strings.ToUpper(strings.ReplaceAll(*methods, " ", "")), ","),
		Rate:    *rate, ProfileFile: *profile, ProfileSeconds: *profileSeconds, ProfileMethod: strings.ToUpper(*profileMethod), Fsync: *fsync,
		SidecarCPUs: *sidecarCPUs, FakeCPUs: *fakeCPUs, FakeLatency: *fakeLatency,
		Logf: func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) },
	})
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *out == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}

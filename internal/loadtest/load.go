// Package loadtest holds what `make bench` needs beyond `go test -bench`: an HTTP load generator
// (fixed concurrency over keep-alive connections, or a fixed request rate, for a fixed duration
// after a warm-up, with exact percentiles from every latency sample), the orchestration of the
// proxy benchmark (the real flowker-audit binary and the fake Flowker as child processes, direct
// versus through the sidecar, in one run), and the renderer that turns the raw outputs collected
// by scripts/bench.sh into docs/BENCHMARKS.md.
//
// Nothing here asserts a timing: numbers are measured and written down, and targets are compared
// in the rendered document only.
package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Target is the request a load run sends, over and over.
type Target struct {
	// Name labels the run in results (for example "GET direct").
	Name string
	// NewRequest builds the i-th request (i counts from 0 over the whole run, warm-up included).
	NewRequest func(ctx context.Context, i uint64) (*http.Request, error)
	// Expect is the status code that counts as a success; any other status, or a transport
	// error, counts as an error.
	Expect int
}

// Options configure a load run.
type Options struct {
	// Concurrency is the number of workers, each with its own keep-alive connection.
	Concurrency int
	// Rate, when positive, paces the run: requests are started on a fixed schedule of Rate per
	// second shared by the workers (an open-loop load as long as the workers keep up). Zero runs
	// closed-loop: every worker sends its next request as soon as the previous one completed.
	Rate float64
	// Warmup is run first and not measured.
	Warmup time.Duration
	// Duration is the measured window.
	Duration time.Duration
	// Client sends the requests; nil means a client built by NewClient(Concurrency).
	Client *http.Client
	// OnWindow, when set, is called with true when the measured window starts and with false
	// when it ends (for example to sample CPU usage over the window).
	OnWindow func(start bool)
}

// Result is what one load run measured. Latencies are of the requests that completed inside
// the measured window; counts of successes and errors cover the whole run too, because every
// successful audited request becomes an event whether it was measured or not.
type Result struct {
	Name        string  `json:"name"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"targetRate,omitempty"`
	// Seconds is the length of the measured window.
	Seconds float64 `json:"seconds"`
	// Requests and Errors completed inside the measured window.
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// RPS is successful requests per second in the measured window.
	RPS float64 `json:"rps"`
	// P50, P90, P99 and Max are latencies in milliseconds (successful requests only).
	P50  float64 `json:"p50Ms"`
	P90  float64 `json:"p90Ms"`
	P99  float64 `json:"p99Ms"`
	Max  float64 `json:"maxMs"`
	Mean float64 `json:"meanMs"`
	// TotalSuccess and TotalErrors count the whole run: warm-up, window and tail.
	TotalSuccess int64 `json:"totalSuccess"`
	TotalErrors  int64 `json:"totalErrors"`
	// ErrorSamples holds the first few distinct errors, for the report.
	ErrorSamples []string `json:"errorSamples,omitempty"`
	// Late counts paced requests that started more than 1 ms after their scheduled time (the
	// workers could not keep up with Rate).
	Late int64 `json:"late,omitempty"`
}

// NewClient returns an HTTP client for load runs: keep-alive connections, at most conns to a
// host, no compression, no proxy from the environment, and no overall timeout (the run's
// context bounds requests).
func NewClient(conns int) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         d.DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

type worker struct {
	samples []time.Duration
	errs    int64
}

// Run sends t's requests as o says and returns what it measured. It returns an error only when
// the run could not be made (bad options, ctx ended); failed requests are counted in the result.
func Run(ctx context.Context, o Options, t Target) (Result, error) {
	if o.Concurrency <= 0 || o.Duration <= 0 || t.NewRequest == nil {
		return Result{}, errors.New("load run: concurrency, duration and a request builder are required")
	}
	if t.Expect == 0 {
		t.Expect = http.StatusOK
	}
	client := o.Client
	if client == nil {
		client = NewClient(o.Concurrency)
		defer client.CloseIdleConnections()
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	start := time.Now()
	windowStart := start.Add(o.Warmup)
	windowEnd := windowStart.Add(o.Duration)
	var (
		next         atomic.Uint64
		totalOK      atomic.Int64
		totalErr     atomic.Int64
		late         atomic.Int64
		errMu        sync.Mutex
		errSamples   []string
		workers      = make([]*worker, o.Concurrency)
		wg           sync.WaitGroup
		stopStarting atomic.Bool
	)
	noteErr := func(msg string) {
		errMu.Lock()
		defer errMu.Unlock()
		if len(errSamples) < 5 && !slices.Contains(errSamples, msg) {
			errSamples = append(errSamples, msg)
		}
	}
	var interval time.Duration
	if o.Rate > 0 {
		interval = time.Duration(float64(time.Second) / o.Rate)
	}
	for w := range workers {
		wk := &worker{samples: make([]time.Duration, 0, 4096)}
		workers[w] = wk
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stopStarting.Load() {
				i := next.Add(1) - 1
				if interval > 0 {
					due := start.Add(time.Duration(i) * interval)
					if due.After(windowEnd) {
						return
					}
					if d := time.Until(due); d > 0 {
						select {
						case <-time.After(d):
						case <-runCtx.Done():
							return
						}
					} else if -d > time.Millisecond {
						late.Add(1)
					}
				}
				req, err := t.NewRequest(runCtx, i)
				if err != nil {
					totalErr.Add(1)
					noteErr("building the request: " + err.Error())
					continue
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				ok := false
				if err == nil {
					_, cerr := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch {
					case resp.StatusCode != t.Expect:
						noteErr(fmt.Sprintf("status %d (want %d)", resp.StatusCode, t.Expect))
					case cerr != nil:
						noteErr("reading the body: " + cerr.Error())
					default:
						ok = true
					}
				} else if runCtx.Err() == nil {
					noteErr(err.Error())
				} else {
					return // the run was cancelled
				}
				t1 := time.Now()
				if ok {
					totalOK.Add(1)
				} else {
					totalErr.Add(1)
				}
				if t1.After(windowStart) && !t1.After(windowEnd) {
					if ok {
						wk.samples = append(wk.samples, t1.Sub(t0))
					} else {
						wk.errs++
					}
				}
				if !t1.Before(windowEnd) {
					return
				}
			}
		}()
	}
	if o.OnWindow != nil {
		select {
		case <-time.After(time.Until(windowStart)):
			o.OnWindow(true)
		case <-ctx.Done():
		}
	}
	select {
	case <-time.After(time.Until(windowEnd)):
		if o.OnWindow != nil {
			o.OnWindow(false)
		}
	case <-ctx.Done():
	}
	stopStarting.Store(true)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Result{}, fmt.Errorf("load run %s: %w", t.Name, err)
	}

	var all []time.Duration
	var errs int64
	for _, wk := range workers {
		all = append(all, wk.samples...)
		errs += wk.errs
	}
	r := Summarize(all)
	r.Name, r.Concurrency, r.Rate = t.Name, o.Concurrency, o.Rate
	r.Seconds = o.Duration.Seconds()
	r.Errors = errs
	r.Requests = int64(len(all)) + errs
	r.RPS = float64(len(all)) / o.Duration.Seconds()
	r.TotalSuccess, r.TotalErrors = totalOK.Load(), totalErr.Load()
	r.ErrorSamples = errSamples
	r.Late = late.Load()
	return r, nil
}

// Summarize returns the latency percentiles (milliseconds) of samples; it sorts samples in place.
// Percentiles are nearest-rank: the p-th percentile is the smallest sample with at least p% of
// the samples at or below it.
func Summarize(samples []time.Duration) Result {
	var r Result
	if len(samples) == 0 {
		return r
	}
	slices.Sort(samples)
	var sum time.Duration
	for _, s := range samples {
		sum += s
	}
	r.P50 = ms(Percentile(samples, 50))
	r.P90 = ms(Percentile(samples, 90))
	r.P99 = ms(Percentile(samples, 99))
	r.Max = ms(samples[len(samples)-1])
	r.Mean = ms(sum / time.Duration(len(samples)))
	return r
}

// Percentile returns the nearest-rank p-th percentile of sorted (0 < p <= 100).
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted)) / 100))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

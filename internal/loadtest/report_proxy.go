package loadtest

import (
	"slices"
	"strings"
	"time"
)

// ---- 1. Proxy

type proxyKey struct {
	method, via string
	conc        int
	rate        float64
}

// closedRow is one line of the closed-loop table.
type closedRow struct {
	Method             string
	C                  int
	D, S               ProxyRun
	Ratio              float64
	AddedP50, AddedP99 float64
}

// pacedRow is one line of the paced table.
type pacedRow struct {
	R                  ProxyRun
	Rate               float64
	Via                string
	HasAdded           bool
	AddedP50, AddedP99 float64
}

// processRow is one line of the CPU-per-process table.
type processRow struct {
	R              ProxyRun
	C              int
	Via            string
	Total          float64
	PerThousand    bool
	PerThousandRPS float64
}

// costRow is one line of the CPU-per-request table.
type costRow struct {
	Method               string
	C                    int
	Direct, Sidecar, Own float64
	Ratio                float64
}

func (x *renderer) proxy() {
	x.t("proxy-title", nil)
	s := x.r.Sections["proxy"]
	readTarget := x.s("target-read", TargetReadRatio*100)
	writeTarget := x.s("target-write", TargetAuditedWrites)
	if !x.header(s, "section proxy") || x.r.Proxy == nil {
		if s != nil && s.Ran() && x.r.Proxy == nil {
			x.t("proxy-no-json", nil)
		}
		x.notMeasured(readTarget)
		x.notMeasured(writeTarget)
		return
	}
	p := x.r.Proxy

	groups := map[proxyKey][]ProxyRun{}
	var concs []int
	var rates []float64
	for _, r := range p.Runs {
		k := proxyKey{r.Method, r.Via, r.Concurrency, r.Rate}
		groups[k] = append(groups[k], r)
		if r.Rate == 0 && !slices.Contains(concs, r.Concurrency) {
			concs = append(concs, r.Concurrency)
		}
		if r.Rate > 0 && !slices.Contains(rates, r.Rate) {
			rates = append(rates, r.Rate)
		}
	}
	slices.Sort(concs)
	pick := func(k proxyKey) (ProxyRun, bool) {
		g := groups[k]
		if len(g) == 0 {
			return ProxyRun{}, false
		}
		g = slices.Clone(g)
		slices.SortFunc(g, func(a, b ProxyRun) int { return cmpFloat(a.RPS, b.RPS) })
		return g[(len(g)-1)/2], true
	}
	rounds := 1
	for _, g := range groups {
		rounds = max(rounds, len(g))
	}
	x.t("proxy-intro", struct {
		P      *ProxyReport
		Fsync  bool
		Rounds int
	}{p, strings.Contains(p.Config, "fsync: true"), rounds})

	var closed []closedRow
	for _, method := range []string{"GET", "POST"} {
		for _, c := range concs {
			d, okD := pick(proxyKey{method, "direct", c, 0})
			sc, okS := pick(proxyKey{method, "sidecar", c, 0})
			if !okD || !okS {
				continue
			}
			closed = append(closed, closedRow{Method: method, C: c, D: d, S: sc, Ratio: sc.RPS / d.RPS,
				AddedP50: sc.P50 - d.P50, AddedP99: sc.P99 - d.P99})
		}
	}
	x.t("proxy-closed", closed)
	x.proxyVerdicts(closed, readTarget, writeTarget)

	if len(rates) > 0 {
		var paced []pacedRow
		for _, rate := range rates {
			for _, method := range []string{"GET", "POST"} {
				var direct *ProxyRun
				for _, c := range keysConc(groups, method, rate) {
					for _, via := range []string{"direct", "sidecar"} {
						r, ok := pick(proxyKey{method, via, c, rate})
						if !ok {
							continue
						}
						row := pacedRow{R: r, Rate: rate, Via: via}
						if via == "direct" {
							rr := r
							direct = &rr
						} else if direct != nil {
							row.HasAdded, row.AddedP50, row.AddedP99 = true, r.P50-direct.P50, r.P99-direct.P99
						}
						paced = append(paced, row)
					}
				}
			}
		}
		x.t("proxy-paced", paced)
	}

	var processes []processRow
	var costs []costRow
	for _, method := range []string{"GET", "POST"} {
		for _, c := range concs {
			for _, via := range []string{"direct", "sidecar"} {
				r, ok := pick(proxyKey{method, via, c, 0})
				if !ok {
					continue
				}
				row := processRow{R: r, C: c, Via: via, Total: r.CPU.Loadgen + r.CPU.Fake + r.CPU.Sidecar}
				if via == "sidecar" && r.RPS > 0 {
					row.PerThousand, row.PerThousandRPS = true, r.CPU.Sidecar/(r.RPS/1000)
				}
				processes = append(processes, row)
			}
		}
	}
	for _, method := range []string{"GET", "POST"} {
		for _, c := range concs {
			d, okD := pick(proxyKey{method, "direct", c, 0})
			sc, okS := pick(proxyKey{method, "sidecar", c, 0})
			if !okD || !okS || d.RPS == 0 || sc.RPS == 0 {
				continue
			}
			dc := (d.CPU.Loadgen + d.CPU.Fake + d.CPU.Sidecar) / d.RPS * 1e6
			stot := (sc.CPU.Loadgen + sc.CPU.Fake + sc.CPU.Sidecar) / sc.RPS * 1e6
			if stot == 0 {
				continue
			}
			costs = append(costs, costRow{Method: method, C: c, Direct: dc, Sidecar: stot, Own: sc.CPU.Sidecar / sc.RPS * 1e6, Ratio: dc / stot})
		}
	}
	x.t("proxy-cpu", struct {
		Processes []processRow
		Costs     []costRow
	}{processes, costs})

	x.t("proxy-events", struct {
		E        EventCheck
		Profiled bool
	}{p.EventCheck, p.ProfileRun != nil})

	if x.r.ProfileTop != "" {
		method := "POST"
		if p.ProfileRun != nil {
			method = p.ProfileRun.Method
		}
		x.t("proxy-profile", struct {
			Method string
			Run    *ProxyRun
			Top    string
		}{method, p.ProfileRun, strings.TrimSpace(x.r.ProfileTop)})
	}
	x.t("proxy-config", p.Config)
}

// proxyVerdicts judges the read and write targets from the closed-loop rows.
func (x *renderer) proxyVerdicts(closed []closedRow, readTarget, writeTarget string) {
	var reads, writes []string
	readsMet := true
	var bestWrite float64
	for _, r := range closed {
		if r.Method == "GET" {
			reads = append(reads, x.s("measured-read", r))
			readsMet = readsMet && r.Ratio >= TargetReadRatio
			continue
		}
		writes = append(writes, x.s("measured-write", struct {
			RPS float64
			C   int
		}{r.S.RPS, r.C}))
		bestWrite = max(bestWrite, r.S.RPS)
	}
	if len(reads) > 0 {
		x.verdict(readTarget, readsMet, true, reads...)
	} else {
		x.notMeasured(readTarget)
	}
	if len(writes) > 0 {
		errs := x.r.Proxy.EventCheck.SidecarPOSTErrors
		x.verdict(writeTarget, bestWrite >= TargetAuditedWrites && errs == 0, true, writes...)
		x.verdicts[len(x.verdicts)-1].Suffix = x.s("measured-write-errors", errs)
	} else {
		x.notMeasured(writeTarget)
	}
}

func keysConc(groups map[proxyKey][]ProxyRun, method string, rate float64) []int {
	var out []int
	for k := range groups {
		if k.method == method && k.rate == rate && !slices.Contains(out, k.conc) {
			out = append(out, k.conc)
		}
	}
	slices.Sort(out)
	return out
}

// serviceTimeRow is one line of the service-time comparison.
type serviceTimeRow struct {
	Method  string
	D, S    *ProxyRun
	Ratio   float64
	Latency time.Duration
}

// proxyServiceTime renders the proxy comparison against an upstream that takes time to answer,
// as Flowker does (MongoDB and PostgreSQL round trips), so that throughput is bounded by latency
// and concurrency rather than by the shared CPU.
func (x *renderer) proxyServiceTime() {
	s := x.r.Sections["proxy-service-time"]
	p := x.r.ProxyServiceTime
	target := x.s("target-read-service-time", TargetReadRatio*100)
	x.t("service-time-title", nil)
	if !x.header(s, "section proxy-service-time") || p == nil {
		x.notMeasured(target)
		return
	}
	latency := time.Duration(p.FakeLatency * float64(time.Second))
	var rows []serviceTimeRow
	var parts []string
	met, measured := true, false
	for _, method := range []string{"GET", "POST"} {
		var d, sc *ProxyRun
		for i := range p.Runs {
			r := &p.Runs[i]
			if r.Method != method || r.Rate != 0 {
				continue
			}
			if r.Via == "direct" && d == nil {
				d = r
			} else if r.Via == "sidecar" && sc == nil {
				sc = r
			}
		}
		if d == nil || sc == nil || d.RPS == 0 {
			continue
		}
		row := serviceTimeRow{Method: method, D: d, S: sc, Ratio: sc.RPS / d.RPS, Latency: latency}
		rows = append(rows, row)
		if method == "GET" {
			measured = true
			met = met && row.Ratio >= TargetReadRatio
			parts = append(parts, x.s("measured-read-service-time", row))
		}
	}
	x.t("service-time", struct {
		Latency time.Duration
		Rows    []serviceTimeRow
	}{latency, rows})
	if measured {
		x.verdict(target, met, true, parts...)
	} else {
		x.notMeasured(target)
	}
}

package loadtest

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// BenchLine is one result line of `go test -bench` output.
type BenchLine struct {
	// Name is the benchmark's full name without the GOMAXPROCS suffix, e.g.
	// "BenchmarkAppend/fsync=on/appenders=16".
	Name  string
	Procs int
	N     int64
	// Metrics maps a unit ("ns/op", "MB/s", "events/s", "p99-ms", ...) to its value.
	Metrics map[string]float64
}

var benchLine = regexp.MustCompile(`^(Benchmark\S*?)(?:-(\d+))?\s+(\d+)\s+(.*\S)\s*$`)

// ParseBenchOutput returns the result lines of `go test -bench` output, in order; other lines
// (logs, PASS, ok) are ignored. With -count, a benchmark appears once per run.
func ParseBenchOutput(r io.Reader) ([]BenchLine, error) {
	var out []BenchLine
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		f := strings.Fields(m[4])
		if len(f) < 2 || len(f)%2 != 0 {
			continue
		}
		l := BenchLine{Name: m[1], Metrics: map[string]float64{}}
		l.Procs, _ = strconv.Atoi(m[2])
		l.N, _ = strconv.ParseInt(m[3], 10, 64)
		ok := true
		for i := 0; i < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				ok = false
				break
			}
			l.Metrics[f[i+1]] = v
		}
		if ok {
			out = append(out, l)
		}
	}
	return out, sc.Err()
}

// Median returns, for the benchmark name, the median of metric over its runs in lines, and how
// many runs there were (0: none).
func Median(lines []BenchLine, name, metric string) (float64, int) {
	var vs []float64
	for _, l := range lines {
		if l.Name == name {
			if v, ok := l.Metrics[metric]; ok {
				vs = append(vs, v)
			}
		}
	}
	if len(vs) == 0 {
		return 0, 0
	}
	slices.Sort(vs)
	if len(vs)%2 == 1 {
		return vs[len(vs)/2], len(vs)
	}
	return (vs[len(vs)/2-1] + vs[len(vs)/2]) / 2, len(vs)
}

// Names returns the distinct benchmark names in lines with the given prefix, in first-seen order.
func Names(lines []BenchLine, prefix string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l.Name, prefix) && !slices.Contains(out, l.Name) {
			out = append(out, l.Name)
		}
	}
	return out
}

// Command benchreport renders docs/BENCHMARKS.md from a results directory written by
// scripts/bench.sh.
//
//	go run ./internal/loadtest/cmd/benchreport -in bench-results/latest -out docs/BENCHMARKS.md
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/flowker-audit/flowker-audit/internal/loadtest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run() error {
	in := flag.String("in", "bench-results/latest", "results directory written by scripts/bench.sh")
	out := flag.String("out", "-", "write the Markdown here (- for stdout)")
	flag.Parse()
	r, err := loadtest.LoadResults(*in)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := loadtest.Render(&b, r); err != nil {
		return err
	}
	if *out == "-" {
		_, err = os.Stdout.Write(b.Bytes())
		return err
	}
	return os.WriteFile(*out, b.Bytes(), 0o644)
}

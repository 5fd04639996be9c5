//go:build linux

package journal_test

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFdatasync4KiB measures this disk's durability floor: write 4 KiB in place in a
// preallocated file, then fdatasync (what bbolt does for each of the two writes of a commit).
// Reported: syncs/s and the p50/p99 latency of write + fdatasync.
//
//	go test -run '^$' -bench BenchmarkFdatasync4KiB -benchtime 2s ./chain/journal/
func BenchmarkFdatasync4KiB(b *testing.B) {
	const size, block = 16 << 20, 4096
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "sync.dat"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, block)
	for off := int64(0); off < size; off += block {
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	lat := make([]time.Duration, 0, 4096)
	b.ResetTimer()
	start := time.Now()
	for i := 0; b.Loop(); i++ {
		buf[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i*block)%size); err != nil {
			b.Fatal(err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "syncs/s")
	b.ReportMetric(msOf(pct(lat, 50)), "p50-ms")
	b.ReportMetric(msOf(pct(lat, 99)), "p99-ms")
}

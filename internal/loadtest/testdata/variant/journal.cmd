go test -run '^$' -bench 'BenchmarkAppend|BenchmarkFdatasync4KiB' -benchtime 100x ./chain/journal/

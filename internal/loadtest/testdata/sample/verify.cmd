go test -run '^$' -bench 'BenchmarkVerify1KiB|BenchmarkSHA256Raw1KiB' -benchtime 2000x -count 1 ./chain/

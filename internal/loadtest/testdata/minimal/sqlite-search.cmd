go test -bench BenchmarkSearch1M ./plugins/sqlite/

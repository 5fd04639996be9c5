go test -v -run '^$' -bench BenchmarkSearch1M -benchtime 500x -timeout 30m ./plugins/sqlite/

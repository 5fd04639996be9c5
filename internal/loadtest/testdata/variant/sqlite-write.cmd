go test -run '^$' -bench 'BenchmarkWrite$' -benchtime 3x ./plugins/sqlite/

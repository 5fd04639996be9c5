FLOWKER_AUDIT_BENCH_EVENTS=20000 go test -v -run '^$' -bench . -benchtime 1x -timeout 0 ./plugins/clickhouse/

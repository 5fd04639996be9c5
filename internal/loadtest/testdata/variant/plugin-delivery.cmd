FLOWKER_AUDIT_BENCH_DELIVERY_EVENTS=5000 FLOWKER_AUDIT_BIN=bin/flowker-audit go test -run '^$' -bench DeliveryPlugin -benchtime 1x -timeout 30m ./internal/loadtest/

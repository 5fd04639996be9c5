FLOWKER_AUDIT_UI_TIMING=/work/main/bench-results/sample/ui-timing.txt go test -count 1 -v -run '^TestFirstScreenTiming$' -timeout 15m ./proxy/ui/

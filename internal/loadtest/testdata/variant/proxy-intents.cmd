BENCH_INTENTS_BASE=004259c scripts/bench-intents.sh bench-results/20261207-114454 1 -methods POST -concurrency 32,64 -rounds 1 -warmup 1s -duration 2s -rate 1000

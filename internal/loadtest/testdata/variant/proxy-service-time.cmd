bin/loadtest -fake-latency 40ms

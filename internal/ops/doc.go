// Package ops holds the operational checks of flowker-audit: tests that run the sidecar (with
// the fake Flowker and real plugin processes) and check its admin listener, metrics, readiness
// and logs, and tests that parse every file under deployments/ strictly — the Dockerfile,
// compose, the Kubernetes manifests (decoded into the Kubernetes API types), the Prometheus
// alert rules and configuration, and the Grafana dashboard — against what the sidecar really
// exports and accepts. It has no non-test code besides this comment.
package ops

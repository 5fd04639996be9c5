// Package helmchart holds the tests of deployments/helm/flowker-audit: the chart is rendered
// with the Helm SDK (as `helm template` does) for both modes and several value sets, every
// object is decoded strictly into the Kubernetes and Prometheus Operator API types, the
// deployment invariants are checked (Flowker never reachable around the sidecar, every secret
// from a Secret, a PodDisruptionBudget with more than one replica, probes and monitors on the
// right ports), the chart passes Helm's linter, and deployments/kubernetes is the chart's render.
//
// The Helm SDK is a large dependency: it is imported by this package's tests only, so no other
// package (and not the binary) pays its compile time.
package helmchart

#!/usr/bin/env bash
# Regenerates sink.pb.go and sink_grpc.pb.go from sink.proto.
#
# Needs protoc (Debian: apt-get install protobuf-compiler). The Go generators are installed at
# pinned versions into <repo>/.bin, so the output does not depend on what else is on the machine.
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.5.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$root/.bin"
mkdir -p "$bin"

if ! command -v protoc >/dev/null 2>&1; then
  echo "generate.sh: protoc not found; install it with: apt-get install -y protobuf-compiler" >&2
  exit 1
fi

installed_version() { # binary -> version string printed by --version, or empty
  [ -x "$1" ] && "$1" --version 2>/dev/null | awk '{print $NF}' || true
}
if [ "$(installed_version "$bin/protoc-gen-go")" != "$PROTOC_GEN_GO_VERSION" ]; then
  GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
fi
if [ "$(installed_version "$bin/protoc-gen-go-grpc")" != "${PROTOC_GEN_GO_GRPC_VERSION#v}" ]; then
  GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
fi

cd "$here"
PATH="$bin:$PATH" protoc \
  --proto_path=. \
  --go_out=. --go_opt=paths=source_relative \
  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
  sink.proto

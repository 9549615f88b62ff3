#!/usr/bin/env bash
# Regenerates proto/nodenet/v1/*.pb.go with pinned generators, so the committed output is
# byte-identical on every machine. CI runs it and fails when the tree changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_VERSION="3.21.12"             # Debian bookworm's protobuf-compiler
PROTOC_GEN_GO_VERSION="v1.36.12"
PROTOC_GEN_GO_GRPC_VERSION="v1.5.1"

bin="$PWD/bin/gen"
mkdir -p "$bin"
have=$(protoc --version 2>/dev/null | awk '{print $2}') || true
if [ "$have" != "$PROTOC_VERSION" ]; then
  echo "protoc $PROTOC_VERSION is required (found '${have:-none}'); apt-get install protobuf-compiler" >&2
  exit 1
fi
GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@${PROTOC_GEN_GO_VERSION}"
GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@${PROTOC_GEN_GO_GRPC_VERSION}"

PATH="$bin:$PATH" protoc -I proto \
  --go_out=proto --go_opt=paths=source_relative \
  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
  proto/nodenet/v1/agent.proto

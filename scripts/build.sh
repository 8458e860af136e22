#!/bin/sh
# Builds the release binary. The Dockerfile runs exactly this script, and so
# does CI, so the flags that ship are the flags that are tested.
#   VERSION=v1.2.3 scripts/build.sh [OUTPUT]
set -eu
out=${1:-manifold}
version=${VERSION:-dev}
CGO_ENABLED=0 exec go build -trimpath -ldflags "-s -w -X main.version=${version}" -o "$out" .

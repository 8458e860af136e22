#!/usr/bin/env bash
# Manifold's load benchmark, one command:
#   bench/run.sh                    # all scenarios, 3 runs of 10s each (~3.5 min)
#   bench/run.sh -only S2 -reps 5   # flags go to bench/driver
# Needs 2+ cores (the gateway is pinned to core 0, wrk and the stub share
# core 1), wrk, and taskset; installs wrk and time from Debian when missing.
# Writes bench/results.json, bench/results.md and bench/chart.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null || ! [ -x /usr/bin/time ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk time >/dev/null
  else
    echo "bench/run.sh: install wrk and time (apt-get install wrk time)" >&2; exit 1
  fi
fi
command -v taskset >/dev/null || { echo "bench/run.sh: taskset (util-linux) is required" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench/run.sh: needs at least 2 cores" >&2; exit 1; }
exec go run ./bench/driver "$@"

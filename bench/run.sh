#!/usr/bin/env bash
# Manifold's load benchmark, one command:
#   bench/run.sh                          # all scenarios, 3 runs of 10s each (~4 min)
#   bench/run.sh -only S2 -reps 5         # flags go to bench/driver (-h lists them)
#   bench/run.sh --peer krakend           # and KrakenD CE, measured in the same run (~7 min)
#   bench/run.sh --peer nginx -only S1,S5 # nginx: the passthrough floor (S5 only)
#   bench/run.sh --peer NAME --peer-cmd 'CMD {addr} {stub}' [--peer-scenarios S2,S4]
#   bench/run.sh -only pools -name results-pools  # upstream pools: hedging, coalescing (~3 min)
#   bench/run.sh -only S1,S6,S7 -duration 6s -name results-growth  # how cost grows: width, body size (~4 min)
# With a peer, each repetition runs Manifold, then the peer, on the same core;
# the report gives CPU per request as a multiple of the run's S1 floor and
# peer ÷ Manifold. KrakenD comes from ../shared/peers (--peer-dir).
# Needs 2+ cores (the gateway is pinned to core 0, wrk and the stub share
# core 1), wrk, and taskset; installs wrk, time, xz and nginx (for
# --peer nginx) from Debian when missing.
# Writes bench/results.json, bench/results.md and bench/chart.svg, or with a
# peer bench/results-PEER.json, bench/results-PEER.md and bench/chart-PEER.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v wrk >/dev/null || need+=(wrk)
[ -x /usr/bin/time ] || need+=(time)
peer=
prev=
for a in "$@"; do
  case "$prev" in -peer|--peer) peer=$a ;; esac
  case "$a" in -peer=*|--peer=*) peer=${a#*=} ;; esac
  prev=$a
done
[ "$peer" = krakend ] && ! command -v xz >/dev/null && need+=(xz-utils)
[ "$peer" = nginx ] && ! command -v nginx >/dev/null && need+=(nginx)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "bench/run.sh: install ${need[*]} (apt-get install ${need[*]})" >&2; exit 1
  fi
fi
command -v taskset >/dev/null || { echo "bench/run.sh: taskset (util-linux) is required" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench/run.sh: needs at least 2 cores" >&2; exit 1; }
exec go run ./bench/driver "$@"

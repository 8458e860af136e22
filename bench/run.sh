#!/usr/bin/env bash
# Manifold's load benchmark, one command:
#   bench/run.sh                          # all scenarios, 3 runs of 10s each (~4 min)
#   bench/run.sh -only S2 -reps 5         # flags go to bench/driver (-h lists them)
#   bench/run.sh --peer krakend           # and KrakenD CE, measured in the same run (~7 min)
#   bench/run.sh --peer nginx -only S1,S5 # nginx: the passthrough floor (S5 only)
#   bench/run.sh --peer NAME --peer-cmd 'CMD {addr} {stub}' [--peer-scenarios S2,S4]
#   bench/run.sh -only pools -name results-pools  # upstream pools: hedging, coalescing (~3 min)
#   bench/run.sh -only S1,S6,S7 -duration 6s -name results-growth  # how cost grows: width, body size (~4 min)
#   bench/run.sh -only S8 -name results-s8  # concurrency: 1k, 5k, 10k connections, 200 ms backends (~2 min; -s8-levels;
#                                           # needs RLIMIT_NOFILE >= N + 3 x min(N, 2500) + 1024, else -s8-fd-shortfall)
#   bench/run.sh -only S2,FR --peer krakend -name results-fr  # open loop at 50 % of S2's saturation (-fr-percent)
# With a peer, each repetition runs Manifold, then the peer, on the same core;
# the report gives CPU per request as a multiple of the run's S1 floor and
# peer ÷ Manifold. KrakenD comes from ../shared/peers (--peer-dir).
# Needs 2+ cores (the gateway is pinned to core 0, wrk and the stub share
# core 1), wrk, and taskset; installs wrk, time, xz and nginx (for
# --peer nginx) from Debian when missing.
# Writes bench/results.json, bench/results.md and bench/chart.svg, or with a
# peer bench/results-PEER.json, bench/results-PEER.md and bench/chart-PEER.svg.
# S8 and FR add their own charts: chart-s8.svg and chart-fr.svg, or
# chart-PEER-fr.svg; with -name results-X, chart-X-s8.svg (chart-s8.svg for X=s8).
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
# S8 holds up to 10,000 client connections and 30,000 upstream ones: raise
# the open-file limit as far as this shell may (the driver raises the soft
# limit to the hard one for every process it starts, and checks it).
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt 65536 ]; then
  ulimit -Hn 65536 2>/dev/null || true   # root with CAP_SYS_RESOURCE only
  hard=$(ulimit -Hn)
fi
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
command -v taskset >/dev/null || { echo "bench/run.sh: taskset (util-linux) is required" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "bench/run.sh: needs at least 2 cores" >&2; exit 1; }
exec go run ./bench/driver "$@"

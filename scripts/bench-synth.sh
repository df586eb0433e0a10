#!/usr/bin/env bash
# Times `barkctl synth` of the five BarkBase stacks for dev and prod (N runs each,
# default 20) and prints min / median / max in seconds. Usage:
#   scripts/bench-synth.sh [N]        (BARKCTL_BIN=path to skip the release build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
bin=${BARKCTL_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet -p barkctl
  bin=target/release/barkctl
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for stage in dev prod; do
  times=()
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N)
    "$bin" synth --stage "$stage" --out "$out/$stage" >/dev/null
    t1=$(date +%s%N)
    times+=("$(( (t1 - t0) / 1000 ))")
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  min=$(echo "$sorted" | head -n1)
  max=$(echo "$sorted" | tail -n1)
  med=$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")
  awk -v s="$stage" -v n="$runs" -v a="$min" -v m="$med" -v b="$max" \
    'BEGIN { printf "synth %-4s %d runs: min %.3f s  median %.3f s  max %.3f s\n", s, n, a/1e6, m/1e6, b/1e6 }'
done

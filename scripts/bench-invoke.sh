#!/usr/bin/env bash
# `barkctl invoke` wall time end to end on the ticker example (N runs, default 20):
# without a running `barkctl dev` (the runtime starts for each call: cold start
# included), and through a running `barkctl dev` (warm instance). Starts its own
# moto server on a free port and stops it. Prints min / median / max.
#   scripts/bench-invoke.sh [N]       (BARKCTL_BIN=path to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
bin=${BARKCTL_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --workspace
  bin=$PWD/target/debug/barkctl
fi
venv=${BARKCTL_TOOLS_VENV:-$PWD/.barkctl/local/venv}
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
work=$(mktemp -d)
"$venv/bin/python" src/local/moto_ext.py -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto=$!
dev=""
trap 'kill $moto ${dev:-} 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
until curl -sf "http://127.0.0.1:$port/moto-api/" >/dev/null; do sleep 0.1; done
export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing CI=1 BARKCTL_CARGO_PROFILE=${BARKCTL_CARGO_PROFILE:-dev}
b() { "$bin" --project examples/ticker --endpoint-url "http://127.0.0.1:$port" "$@"; }
b deploy --stage local --progress quiet >/dev/null 2>&1

measure() {
  local label=$1 times=()
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N)
    b invoke clock.tick --stage local --payload '{"n":1}' >/dev/null 2>"$work/invoke.err" || { cat "$work/invoke.err" >&2; exit 1; }
    t1=$(date +%s%N)
    times+=("$(( (t1 - t0) / 1000 ))")
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  awk -v l="$label" -v n="$runs" -v a="$(echo "$sorted" | head -n1)" \
      -v m="$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")" -v z="$(echo "$sorted" | tail -n1)" \
    'BEGIN { printf "invoke %-22s %d runs: min %.1f ms  median %.1f ms  max %.1f ms\n", l, n, a/1e3, m/1e3, z/1e3 }'
}
echo "load: $(cat /proc/loadavg)"
measure "(no dev, cold)"
b dev --stage local --port 0 >"$work/dev.log" 2>&1 &
dev=$!
until grep -q "ready: Ctrl-C stops" "$work/dev.log"; do sleep 0.1; done
measure "(through dev, warm)"
kill -INT "$dev"; wait "$dev" || true; dev=""

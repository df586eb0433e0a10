#!/usr/bin/env bash
# Hotswap benchmark on one local emulator (moto through barkctl's launcher), on
# the `tests/fixtures/hotswap` project (one stack, one dependency-free handler):
#   - `barkctl deploy --stage local --hotswap` after a one-line handler change;
#   - `barkctl deploy --stage local` (a full stack update) after the same change.
# Each change is built first with `barkctl build` (timed apart: "build"), so the
# deploy figures are what comes after the build (cargo's no-op check included).
# Prints, per mode, the median wall time of the deploy, the stack's own time
# from the summary table, and the mutating calls of the last round by service
# (from BARKCTL_CALL_LOG).
#
# Usage: scripts/bench-hotswap.sh [ROUNDS]   (BARKCTL_BIN=path to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
rounds=${1:-5}
tools=${BARKCTL_TOOLS_VENV:-.barkctl/local/venv}

if ! "$tools/bin/python" -c 'import moto' 2>/dev/null; then
  echo "bench: preparing $tools (moto)" >&2
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check -r .ci/requirements.txt
  cp .ci/requirements.txt "$tools/.requirements.txt"
fi
if [ -z "${BARKCTL_BIN:-}" ]; then
  cargo build --release --quiet --bin barkctl
  BARKCTL_BIN=${CARGO_TARGET_DIR:-$root/target}/release/barkctl
fi
bin=$BARKCTL_BIN

work=$(mktemp -d)
moto_pid=
cleanup() {
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ep=http://127.0.0.1:$port
"$tools/bin/python" src/local/moto_ext.py -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "$ep/moto-api/" 2>/dev/null && break
  sleep 0.1
done

cp -r tests/fixtures/hotswap "$work/p"
rm -rf "$work/p/target" "$work/p/.barkctl"
export CI=1 NO_COLOR=1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
export CARGO_TARGET_DIR=$work/p/target
unset AWS_PROFILE BARKCTL_PROJECT BARKCTL_STAGE BARKCTL_CALL_LOG
main=$work/p/lambdas/greet/src/main.rs
stack=swapfix-local-clock

bark() { (cd "$work/p" && "$bin" "$@" --endpoint-url "$ep"); }
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "bench: first deploy of $stack (untimed)" >&2
bark deploy --stage local >/dev/null 2>"$work/first.err" || { cat "$work/first.err" >&2; exit 1; }

run_mode() { # mode label, deploy flags...
  local mode=$1; shift
  : >"$work/$mode.wall"; : >"$work/$mode.stack"; : >"$work/$mode.build"
  for i in $(seq 1 "$rounds"); do
    sed -i "s/^const VERSION: &str = \".*\";/const VERSION: \&str = \"$mode-$i\";/" "$main"
    local t0 t1 t2
    t0=$(now)
    bark build --stage local >/dev/null 2>"$work/build.err" || { cat "$work/build.err" >&2; exit 1; }
    t1=$(now)
    rm -f "$work/calls.log"
    BARKCTL_CALL_LOG=$work/calls.log bark deploy --stage local "$@" >/dev/null 2>"$work/deploy.err" \
      || { cat "$work/deploy.err" >&2; exit 1; }
    t2=$(now)
    echo "$t1 - $t0" | bc -l >>"$work/$mode.build"
    echo "$t2 - $t1" | bc -l >>"$work/$mode.wall"
    # The summary row: `swapfix-local-clock  hotswapped  0.1s  ...`
    awk -v s="$stack" '$1 == s { d=$3; sub(/s$/, "", d); print d }' "$work/deploy.err" >>"$work/$mode.stack"
    awk -v s="$stack" '$1 == s { print $2 }' "$work/deploy.err" >"$work/$mode.action"
  done
  # Mutating calls of the last round, by service.
  grep -Ev '\.(Describe|Get|List|Head|Validate|Estimate)' "$work/calls.log" \
    | sort | uniq -c | awk '{printf "%s%s x%s", sep, $2, $1; sep=", "} END {print ""}' >"$work/$mode.calls"
}

run_mode hotswap --hotswap
run_mode full

printf '\n%-8s  %-10s  %10s  %12s  %12s  %s\n' mode action "build (s)" "deploy (s)" "stack (s)" "mutating calls (last round)"
for mode in hotswap full; do
  printf '%-8s  %-10s  %10.2f  %12.2f  %12.2f  %s\n' "$mode" "$(cat "$work/$mode.action")" \
    "$(median <"$work/$mode.build")" "$(median <"$work/$mode.wall")" "$(median <"$work/$mode.stack")" \
    "$(cat "$work/$mode.calls")"
done
h=$(median <"$work/hotswap.wall"); f=$(median <"$work/full.wall")
printf '\nmedians of %s rounds; deploy = wall time of `barkctl deploy` after `barkctl build`; full / hotswap = %.1fx\n' \
  "$rounds" "$(echo "$f / $h" | bc -l)"

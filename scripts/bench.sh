#!/usr/bin/env bash
# Issue 13's figures in one run, next to their goals:
#   (a) bundle size per handler, zipped and unzipped: the arm64 bundles of the `dev`
#       stage (`barkctl build --stage dev`, cross-built with cargo-zigbuild) with the
#       `release` profile ("before") and the `lambda` profile (cloud stages' default);
#   (b) cold start per handler (process start to its first `/invocation/next` under
#       `barkctl dev`'s runtime: `benches/dev_runtime.rs`) of the same profiles built
#       for this machine (`BARKCTL_CARGO_PROFILE=P barkctl build --stage local`): an
#       arm64 binary only runs here under qemu, which measures qemu (`P-qemu` does
#       that, on the arm64 bundles of (a): an upper bound, no host build needed);
#   (c) a no-change `deploy --stage local` (median of N), with the debug barkctl the
#       README's `cargo run` runs and through `cargo run` itself, against an emulator
#       on a free 127.0.0.1 port;
#   (d) with --cold: the README's first command, `cargo run -- deploy --stage local`,
#       on a fresh `git clone` of this checkout's HEAD with an empty CARGO_HOME (the
#       registry download counts), an empty target dir and no tools venv (barkctl
#       creates the clone's own and pip-installs moto with pip's cache off), then the
#       same command again; only the rustup toolchain is reused;
#   (e) scripts/bench-hotswap.sh: hotswap of one changed handler vs a full deploy.
#
# Usage: scripts/bench.sh [--cold] [--rounds N] [--hotswap-rounds N]
#                         [--cold-start-profiles lambda,release,lambda-qemu]
#                         [--no-sizes] [--no-cold-start] [--no-deploy] [--no-hotswap]
# Builds in CARGO_TARGET_DIR (else ./target); a first run builds the handlers four
# times over (two profiles, two architectures): tens of minutes on two cores.
# Prints figures; asserts nothing about speed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

cold=0 rounds=5 hotswap_rounds=3 sizes=1 coldstart=1 deploy=1 hotswap=1
cs_profiles=lambda
while [ $# -gt 0 ]; do
  case $1 in
    --cold) cold=1 ;;
    --rounds) rounds=$2; shift ;;
    --hotswap-rounds) hotswap_rounds=$2; shift ;;
    --cold-start-profiles) cs_profiles=$2; shift ;;
    --no-sizes) sizes=0 ;;
    --no-cold-start) coldstart=0 ;;
    --no-deploy) deploy=0 ;;
    --no-hotswap) hotswap=0 ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "bench: unknown argument \`$1\` (see --help)" >&2; exit 2 ;;
  esac
  shift
done

tools=${BARKCTL_TOOLS_VENV:-$root/.barkctl/local/venv}
if ! "$tools/bin/python" -c 'import moto' 2>/dev/null; then
  echo "bench: preparing $tools (moto)" >&2
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check -r .ci/requirements.txt
  cp .ci/requirements.txt "$tools/.requirements.txt"
fi
export BARKCTL_TOOLS_VENV=$tools
export CI=1 NO_COLOR=1 AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing
unset AWS_PROFILE BARKCTL_PROJECT BARKCTL_STAGE BARKCTL_CALL_LOG BARKCTL_CARGO_PROFILE

target=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target
host=$(rustc -vV | sed -n 's/^host: //p')
work=$(mktemp -d)
endpoints=()
cleanup() {
  for e in "${endpoints[@]}"; do
    "${e%% *}" local down --endpoint-url "${e#* }" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# verdict FIGURE GOAL: meets when FIGURE <= GOAL.
verdict() { awk -v f="$1" -v g="$2" 'BEGIN { print (f !~ /^[0-9.]+$/ ? "n/a" : f + 0 <= g + 0 ? "meets" : "misses") }'; }
summary=$work/summary
: >"$summary"
row() { printf '%-52s %14s %12s  %s\n' "$1" "$2" "$3" "$4" >>"$summary"; }

echo "bench: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(git rev-parse --short HEAD)" >&2
cargo build --workspace --quiet --bin barkctl
bin=$target/debug/barkctl

# (a) bundle sizes. `barkctl build` names its crates on stderr; the zips are
# target/lambda/<crate>/bootstrap.zip, rewritten by each build.
build_bundles() { # profile stage log -> crate list in $work/crates
  local t0 t1
  t0=$(now)
  BARKCTL_CARGO_PROFILE=$1 "$bin" build --stage "$2" >"$3" 2>&1 || { cat "$3" >&2; exit 1; }
  t1=$(now)
  sed -n 's/^building [0-9]* crates for [^:]*: //p' "$3" | tr ',' '\n' | tr -d ' ' | grep . >"$work/crates"
  echo "$t1 - $t0" | bc -l
}
if [ "$sizes" = 1 ]; then
  for p in release lambda; do
    echo "bench: (a) arm64 bundles, profile $p (barkctl build --stage dev)" >&2
    secs=$(build_bundles "$p" dev "$work/build-$p.log")
    echo "$secs" >"$work/build-$p.secs"
    while read -r c; do
      python3 - "$target/lambda/$c/bootstrap.zip" "$c" <<'PY' >>"$work/sizes-$p"
import os, sys, zipfile
z = sys.argv[1]
print(sys.argv[2], zipfile.ZipFile(z).getinfo("bootstrap").file_size, os.path.getsize(z))
PY
    done <"$work/crates"
  done
  {
    echo
    echo "(a) arm64 bundles of the dev stage, MB (10^6 bytes); goal: <= 3 MB zipped"
    printf '%-24s %12s %12s %12s %12s  %s\n' handler "release" "release zip" "lambda" "lambda zip" "lambda zip vs goal"
    join <(sort "$work/sizes-release") <(sort "$work/sizes-lambda") | while read -r c ru rz lu lz; do
      printf '%-24s %12.2f %12.2f %12.2f %12.2f  %s\n' "$c" \
        "$(echo "$ru / 1000000" | bc -l)" "$(echo "$rz / 1000000" | bc -l)" \
        "$(echo "$lu / 1000000" | bc -l)" "$(echo "$lz / 1000000" | bc -l)" "$(verdict "$lz" 3000000)"
    done
    printf '%-24s %12s %12s %12s %12s\n' "build (s, as found)" "" "$(printf %.0f "$(cat "$work/build-release.secs")")" \
      "" "$(printf %.0f "$(cat "$work/build-lambda.secs")")"
  } | tee "$work/table-a"
  largest=$(sort -k3 -n "$work/sizes-lambda" | tail -1)
  row "largest lambda bundle zipped (${largest%% *}), MB" "$(echo "${largest##* } / 1000000" | bc -l | xargs printf %.2f)" "<= 3" \
    "$(verdict "${largest##* }" 3000000)"
fi

# (b) cold start: host builds of the same profiles, measured by the dev_runtime bench.
if [ "$coldstart" = 1 ]; then
  : >"$work/cold"
  for p in ${cs_profiles//,/ }; do
    if [ "${p%-qemu}" != "$p" ]; then
      # The arm64 bundles of (a) (or a build of them), each started through
      # qemu-aarch64 by a one-line wrapper: emulation makes these an upper bound.
      sysroot=/usr/aarch64-linux-gnu
      [ -x /usr/bin/qemu-aarch64 ] && [ -e $sysroot/lib/ld-linux-aarch64.so.1 ] \
        || { echo "bench: $p needs qemu-aarch64 and $sysroot (Debian: qemu-user, libc6-arm64-cross)" >&2; exit 2; }
      echo "bench: (b) arm64 binaries under qemu-aarch64, profile ${p%-qemu}" >&2
      build_bundles "${p%-qemu}" dev "$work/build-qemu-$p.log" >/dev/null
      dir=$work/qemu-$p
      mkdir -p "$dir"
      while read -r c; do
        printf '#!/bin/sh\nexec /usr/bin/qemu-aarch64 -L %s %s "$@"\n' "$sysroot" \
          "$target/aarch64-unknown-linux-gnu/${p%-qemu}/$c" >"$dir/$c"
        chmod +x "$dir/$c"
      done <"$work/crates"
    else
      echo "bench: (b) $host binaries, profile $p (barkctl build --stage local)" >&2
      build_bundles "$p" local "$work/build-host-$p.log" >/dev/null
      dir=$(dirname "$(python3 - "$target" "$(head -1 "$work/crates")" <<'PY'
import pathlib, sys
# The binary recorded by the bundle's stamp: `target/<profile>/<crate>` or
# `target/<triple>/<profile>/<crate>`.
stamp = pathlib.Path(sys.argv[1], "lambda", sys.argv[2], "bootstrap.stamp").read_text()
print(stamp.split("\t")[0].split("\n")[0])
PY
)")
    fi
    DEV_RUNTIME_BIN_DIR=$dir cargo bench --workspace --quiet --profile dev --bench dev_runtime 2>/dev/null \
      | sed -n -e "s/^cold start \([^ ]*\) (.*): median \([0-9.]*\) ms.*/$p \1 \2/p" \
        -e "s/^cold start \([^ ]*\): never reached.*/$p \1 never-reached/p" \
        -e "s/^cold start \([^ ]*\): not built/$p \1 not-built/p" >>"$work/cold"
  done
  {
    echo
    echo "(b) cold start, process start to first /invocation/next, median of 5, ms ($host builds; *-qemu: arm64 under qemu-aarch64); goal: <= 20 ms"
    printf '%-24s' handler
    for p in ${cs_profiles//,/ }; do printf ' %12s' "$p"; done
    printf '  %s\n' "${cs_profiles%%,*} vs goal"
    # realtime-connect reads its JWT secret before its first /next: the bench
    # answers it from a stand-in endpoint on 127.0.0.1 (one loopback SDK call).
    awk '{print $2}' "$work/cold" | sort -u | while read -r c; do
      printf '%-24s' "$c"
      first=
      for p in ${cs_profiles//,/ }; do
        v=$(awk -v p="$p" -v c="$c" '$1 == p && $2 == c {print $3}' "$work/cold")
        printf ' %12s' "${v:--}"
        [ -n "$first" ] || first=${v:--}
      done
      printf '  %s\n' "$(verdict "$first" 20)"
    done
  } | tee "$work/table-b"
  p=${cs_profiles%%,*}
  slowest=$(awk -v p="$p" '$1 == p && $3 ~ /^[0-9.]+$/' "$work/cold" | sort -k3 -n | tail -1)
  row "slowest cold start, $p ($(echo "$slowest" | cut -d' ' -f2)), ms" "$(echo "$slowest" | cut -d' ' -f3)" "<= 20" \
    "$(verdict "$(echo "$slowest" | cut -d' ' -f3)" 20)"
fi

# One deploy of the local stage in DIR against a fresh emulator on a free port
# (barkctl starts it, as the README command does); `local down` at exit.
deploy_local() { # dir endpoint cmd...
  local dir=$1 ep=$2; shift 2
  (cd "$dir" && "$@" deploy --stage local --endpoint-url "$ep" --progress quiet) >"$work/deploy.log" 2>&1 \
    || { cat "$work/deploy.log" >&2; exit 1; }
}
timed() { local t0; t0=$(now); "$@"; echo "$(now) - $t0" | bc -l; }

# (c) no-change deploy.
if [ "$deploy" = 1 ]; then
  echo "bench: (c) no-change deploy --stage local, $rounds rounds" >&2
  ep=http://127.0.0.1:$(free_port)
  endpoints+=("$bin $ep")
  first=$(timed deploy_local "$root" "$ep" "$bin")
  : >"$work/noop-bin"; : >"$work/noop-cargo"
  for _ in $(seq 1 "$rounds"); do
    timed deploy_local "$root" "$ep" "$bin" >>"$work/noop-bin"
    timed deploy_local "$root" "$ep" cargo run --quiet -- >>"$work/noop-cargo"
  done
  (cd "$root" && "$bin" local down --endpoint-url "$ep" >/dev/null)
  nb=$(median <"$work/noop-bin"); nc=$(median <"$work/noop-cargo")
  row "deploy --stage local, first (warm target), s" "$(printf %.2f "$first")" "" ""
  row "no-change deploy, target/debug/barkctl, s" "$(printf %.2f "$nb")" "<= 0.4" "$(verdict "$nb" 0.4)"
  row "no-change deploy, cargo run --, s" "$(printf %.2f "$nc")" "<= 0.4" "$(verdict "$nc" 0.4)"
fi

# (d) cold first run of the README command.
if [ "$cold" = 1 ]; then
  echo "bench: (d) fresh clone, empty CARGO_HOME and target: cargo run -- deploy --stage local" >&2
  git clone --quiet "$root" "$work/clone"
  mkdir -p "$work/cargo-home"
  ep=http://127.0.0.1:$(free_port)
  endpoints+=("$work/clone/target/debug/barkctl $ep")
  cold_run() {
    CARGO_HOME=$work/cargo-home CARGO_TARGET_DIR=$work/clone/target PIP_NO_CACHE_DIR=1 \
      BARKCTL_TOOLS_VENV= deploy_local "$work/clone" "$ep" cargo run --quiet --
  }
  c1=$(timed cold_run)
  c2=$(timed cold_run)
  row "README command, fresh clone, empty cargo cache, s" "$(printf %.0f "$c1")" "<= 240" "$(verdict "$c1" 240)"
  row "README command, second run, s" "$(printf %.2f "$c2")" "" ""
  (cd "$work/clone" && target/debug/barkctl local down --endpoint-url "$ep" >/dev/null)
fi

# (e) hotswap vs full deploy (its own emulator and fixture project).
if [ "$hotswap" = 1 ]; then
  echo "bench: (e) scripts/bench-hotswap.sh $hotswap_rounds" >&2
  BARKCTL_BIN=$bin scripts/bench-hotswap.sh "$hotswap_rounds" 2>/dev/null | tee "$work/table-e"
  h=$(awk '$1 == "hotswap" {print $4}' "$work/table-e")
  row "hotswap of one changed handler, after its build, s" "$h" "<= 1" "$(verdict "$h" 1)"
  row "full deploy of its stack, after the build, s" "$(awk '$1 == "full" {print $4}' "$work/table-e")" "" ""
fi

echo
echo "summary: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-52s %14s %12s  %s\n' measure figure goal verdict
cat "$summary"

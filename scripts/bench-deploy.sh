#!/usr/bin/env bash
# Deploy benchmark on one local emulator (moto through barkctl's launcher), with
# the same rendered templates:
#   1. barkctl deploy --stage local, from nothing (toolkit stack, bundle upload,
#      five stacks in waves);
#   2. barkctl deploy again with nothing changed (the no-op path);
#   3. a plain shell loop of `aws cloudformation deploy` (awscli 1.46.3 in
#      .barkctl/bench-venv) over the five `barkctl synth` templates in order, on a
#      reset emulator, each stack's parameters resolved from its upstream outputs.
# Bundles are built before timing starts (both sides deploy the same zips; the
# loop's bucket is filled untimed). Prints the three figures and their ratios.
#
# moto 5.2.5's ExecuteChangeSet applies resources but leaves the stack's outputs
# empty, which would starve the loop's downstream stacks; the emulator started here
# refreshes them after each execution. barkctl does not need this: on `local`
# stages it applies with CreateStack/UpdateStack (see src/deploy/cfn.rs).
#
# Usage: scripts/bench-deploy.sh            (BARKCTL_BIN=path to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools=.barkctl/local/venv
bench=.barkctl/bench-venv

if ! "$tools/bin/python" -c 'import moto' 2>/dev/null; then
  echo "bench: preparing $tools (moto)" >&2
  python3 -m venv "$tools"
  "$tools/bin/pip" install --quiet --disable-pip-version-check -r .ci/requirements.txt
  cp .ci/requirements.txt "$tools/.requirements.txt"
fi
if ! "$bench/bin/aws" --version >/dev/null 2>&1; then
  echo "bench: preparing $bench (awscli 1.46.3)" >&2
  python3 -m venv "$bench"
  "$bench/bin/pip" install --quiet --disable-pip-version-check 'awscli==1.46.3'
fi

if [ -z "${BARKCTL_BIN:-}" ]; then
  cargo build --release --quiet --bin barkctl
  BARKCTL_BIN=$root/target/release/barkctl
fi
bin=$BARKCTL_BIN

work=$(mktemp -d)
moto_pid=
cleanup() {
  if [ -n "$moto_pid" ]; then kill "$moto_pid" 2>/dev/null || true; wait "$moto_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/bench_moto.py" <<'PY'
"""barkctl's moto launcher, plus outputs refreshed after ExecuteChangeSet."""
import sys

sys.path.insert(0, sys.argv[1])
import moto_ext  # noqa: E402  (registers barkctl's CloudFormation types)
from moto.cloudformation.models import CloudFormationBackend  # noqa: E402

_execute = CloudFormationBackend.execute_change_set


def execute_change_set(self, change_set_name, stack_name=None):
    _execute(self, change_set_name, stack_name)
    for cs in self.change_sets.values():
        if change_set_name in (cs.change_set_id, cs.change_set_name):
            stack = self.stacks[cs.stack_id]
            stack._parse_template()
            stack.output_map = stack._create_output_map()


CloudFormationBackend.execute_change_set = execute_change_set
moto_ext.main(sys.argv[2:])
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
ep=http://127.0.0.1:$port
"$tools/bin/python" "$work/bench_moto.py" "$root/src/local" -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 300); do
  curl -fsS -o /dev/null "$ep/moto-api/" 2>/dev/null && break
  sleep 0.1
done
curl -fsS -o /dev/null "$ep/moto-api/"

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 CI=1
unset AWS_PROFILE BARKCTL_CALL_LOG
aws() { "$root/$bench/bin/aws" --endpoint-url "$ep" "$@"; }
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

echo "bench: building bundles (not timed)" >&2
"$bin" build >/dev/null

t0=$(now)
"$bin" deploy --stage local --endpoint-url "$ep" --progress quiet
t1=$(now)
"$bin" deploy --stage local --endpoint-url "$ep" --progress quiet
t2=$(now)

# What the loop needs, taken before the reset: the rendered templates, the asset
# bucket's name and content, and the code keys barkctl passed.
"$bin" synth --stage local --out "$work/tpl" >/dev/null
aws cloudformation describe-stacks --output json >"$work/stacks.json"
bucket=$(python3 -c "
import json
for s in json.load(open('$work/stacks.json'))['Stacks']:
    for o in s.get('Outputs', []):
        if o['OutputKey'] == 'AssetsBucketName':
            print(o['OutputValue'])
")
aws s3 sync --quiet "s3://$bucket" "$work/assets"
curl -fsS -X POST -o /dev/null "$ep/moto-api/reset"
aws s3 mb --quiet "s3://$bucket" >/dev/null 2>&1 || aws s3 mb "s3://$bucket" >/dev/null
aws s3 sync --quiet "$work/assets" "s3://$bucket"

# Parameter overrides for one stack: code keys and bucket as barkctl passed them,
# `needs` parameters (`NetworkVpcId`) from the upstream stack's current outputs.
cat >"$work/params.py" <<'PY'
import json, subprocess, sys
stack, template, recorded, aws = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
params = json.load(open(template)).get("Parameters", {})
old = {p["ParameterKey"]: p["ParameterValue"]
       for s in json.load(open(recorded))["Stacks"] if s["StackName"] == f"barkbase-local-{stack}"
       for p in s.get("Parameters", [])}
outputs = {}
def upstream(name):
    if name not in outputs:
        out = subprocess.run(aws + ["cloudformation", "describe-stacks", "--stack-name",
                                    f"barkbase-local-{name}", "--output", "json"],
                             check=True, capture_output=True, text=True).stdout
        outputs[name] = {o["OutputKey"]: o["OutputValue"]
                         for o in json.loads(out)["Stacks"][0].get("Outputs", [])}
    return outputs[name]
for key in params:
    if key == "AssetsBucket" or key.endswith("CodeKey"):
        print(f"{key}={old[key]}")
        continue
    for up in ["network", "database", "realtime", "jobs", "experience"]:
        prefix = up.capitalize()
        if key.startswith(prefix) and key[len(prefix):] in upstream(up):
            print(f"{key}={upstream(up)[key[len(prefix):]]}")
            break
    else:
        sys.exit(f"no value for {key} of {stack}")
PY

t3=$(now)
for s in network database realtime jobs experience; do
  tpl="$work/tpl/barkbase-local-$s.template.json"
  mapfile -t overrides < <("$bench/bin/python" "$work/params.py" "$s" "$tpl" "$work/stacks.json" \
    "$root/$bench/bin/aws" --endpoint-url "$ep")
  args=()
  if [ "${#overrides[@]}" -gt 0 ]; then args=(--parameter-overrides "${overrides[@]}"); fi
  aws cloudformation deploy --stack-name "barkbase-local-$s" --template-file "$tpl" \
    --capabilities CAPABILITY_IAM CAPABILITY_NAMED_IAM --no-fail-on-empty-changeset \
    "${args[@]}" >/dev/null
done
t4=$(now)

full=$(secs "$t0" "$t1")
noop=$(secs "$t1" "$t2")
loop=$(secs "$t3" "$t4")
echo
echo "five BarkBase stacks on moto 5.2.5 ($(nproc) cores)"
echo "  barkctl deploy, from nothing:          ${full} s"
echo "  barkctl deploy, nothing changed:       ${noop} s"
echo "  aws cloudformation deploy loop:        ${loop} s"
python3 -c "
full, noop, loop = $full, $noop, $loop
print(f'  loop / barkctl full deploy:            {loop / full:.2f}x')
print(f'  loop / barkctl no-op deploy:           {loop / noop:.2f}x')
print(f'  barkctl full / barkctl no-op:          {full / noop:.2f}x')
"

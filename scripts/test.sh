#!/usr/bin/env bash
# The test command (README): prepares the Python tools venv the tests use
# (moto server, cfn-lint, zig + cargo-zigbuild) under .barkctl/local/venv, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.barkctl/local/venv
if ! "$venv/bin/python" -c 'import moto, cfnlint' 2>/dev/null \
   || ! cmp -s .ci/requirements.txt "$venv/.requirements.txt"; then
  echo "test.sh: preparing $venv (moto server, cfn-lint)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r .ci/requirements.txt
  cp .ci/requirements.txt "$venv/.requirements.txt"
fi
export PATH="$PWD/$venv/bin:$PATH"
export BARKCTL_TOOLS_VENV="$PWD/$venv"
exec cargo test --workspace "$@"

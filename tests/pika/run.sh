#!/usr/bin/env bash
# Run the pika (Python) test suite.
#
#   tests/pika/run.sh [pytest args...]
#
# Creates a virtualenv at target/pika-venv on first use (or when
# tests/pika/requirements.txt changes) and runs pytest on tests/pika.
# Broker under test: $WARREN_AMQP_URL if set, otherwise the conftest starts
# $WARREN_BIN (default target/debug/warren) on a free loopback port.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$root/target/pika-venv
req=$here/requirements.txt
stamp=$venv/.requirements.sha256

want=$(sha256sum "$req" | cut -d' ' -f1)
if [[ ! -x $venv/bin/python || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "pika suite: creating virtualenv $venv" >&2
  rm -rf "$venv"
  mkdir -p "$root/target"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-input -r "$req"
  echo "$want" >"$stamp"
fi

cd "$root"
export PYTHONDONTWRITEBYTECODE=1
exec "$venv/bin/python" -m pytest "$here" "$@"

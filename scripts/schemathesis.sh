#!/usr/bin/env bash
# The REST contract check (#21): schemathesis drives the running gateway
# from its own /openapi.json for a while and fails on any server error
# (a 5xx other than the documented 503) or any answer the document does
# not describe (status, content type, headers, body schema). See
# scripts/schemathesis.py for what it seeds and how it reports.
#
#   scripts/schemathesis.sh                 # 300 s against http://127.0.0.1:8888
#   scripts/schemathesis.sh 60              # 60 s
#   SLUICE_GATEWAY_URL=http://127.0.0.1:9999 scripts/schemathesis.sh 600
#   scripts/schemathesis.sh 300 --workers 2 --seed 42   # more schemathesis options
#
# Needs the mesh (`make up`, or scripts/mesh.sh up). schemathesis lives in a
# virtualenv under the user cache folder, installed from PyPI once and
# reused when present. `make schemathesis` runs it; `make test` does not.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/pyenv-schemathesis"
SCHEMATHESIS_VERSION=4.32.5
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "installing schemathesis $SCHEMATHESIS_VERSION into $VENV" >&2
    python3 -m venv "$VENV" >/dev/null 2>&1 || {
        # Debian's python3 lacks ensurepip without python3-venv.
        apt_get=(apt-get); [ "$(id -u)" = 0 ] || apt_get=(sudo apt-get)
        "${apt_get[@]}" install -y -q python3-venv >/dev/null
        python3 -m venv "$VENV"
    }
    "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
export SCHEMATHESIS_BIN="$VENV/bin/schemathesis"
exec "$VENV/bin/python" "$ROOT/scripts/schemathesis.py" "$@"

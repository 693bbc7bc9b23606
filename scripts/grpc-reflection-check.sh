#!/usr/bin/env bash
# Python's grpcio-reflection (v1alpha) and health clients against the
# running mesh's gRPC ports (scripts/grpc-reflection-check.py). The clients
# live in a virtualenv under the user cache folder, installed from PyPI once
# and reused when present.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/sluice/pyenv-grpc"
PACKAGES="grpcio==1.85.3 grpcio-reflection==1.85.1 grpcio-health-checking==1.85.1"
if ! "$VENV/bin/python" -c 'import grpc, grpc_reflection, grpc_health' 2>/dev/null; then
    echo "installing Python's gRPC clients into $VENV ($PACKAGES)" >&2
    python3 -m venv "$VENV" >/dev/null 2>&1 || {
        # Debian's python3 lacks ensurepip without python3-venv.
        apt_get=(apt-get); [ "$(id -u)" = 0 ] || apt_get=(sudo apt-get)
        "${apt_get[@]}" install -y -q python3-venv >/dev/null
        python3 -m venv "$VENV"
    }
    # shellcheck disable=SC2086
    "$VENV/bin/pip" install -q $PACKAGES
fi
exec "$VENV/bin/python" "$ROOT/scripts/grpc-reflection-check.py" "$@"

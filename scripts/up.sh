#!/usr/bin/env bash
# `make up`: install what is missing, start the stack, apply the migrations.
# Every sluice process joins here as it is built. Idempotent.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"

scripts/stack.sh up
echo "building the workspace (cargo build --workspace)..." >&2
cargo build -q --workspace
if [ "${PROFILE:-debug}" = release ]; then
    # `PROFILE=release make up` runs the mesh from release builds.
    echo "building the workspace in release (cargo build --release --workspace)..." >&2
    cargo build -q --release --workspace
fi
target/debug/sluice-migrate "$DATABASE_URL"
scripts/mesh.sh up

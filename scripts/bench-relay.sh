#!/usr/bin/env bash
# `make bench-relay`: relay throughput against two brokers in one run — a
# tansu with in-memory storage started here for the run (port
# SLUICE_KAFKA_MEM_PORT, default 9093) and the stack's durable sqlite broker —
# with the publish ceiling, decode-only and `mariadb-binlog` baselines (see
# binlog-relay/benches/relay.rs). Needs the stack (`make up`; the mesh may
# run, but for numbers worth recording stop it: `scripts/mesh.sh down`).
#
#   scripts/bench-relay.sh            # 1,000,000 batch rows, 20,000 small transactions
#   BENCH_ROWS=100000 BENCH_TXS=2000 scripts/bench-relay.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
MEM_PORT=${SLUICE_KAFKA_MEM_PORT:-9093}
[ -x "$SLUICE_TANSU_BIN" ] || { echo "tansu is not installed: make up" >&2; exit 2; }
if (exec 3<>"/dev/tcp/127.0.0.1/$MEM_PORT") 2>/dev/null; then
    echo "port $MEM_PORT is taken; set SLUICE_KAFKA_MEM_PORT" >&2
    exit 2
fi
LOG="$SLUICE_STATE/bench/tansu-memory.log"
mkdir -p "$(dirname "$LOG")"
"$SLUICE_TANSU_BIN" broker \
    --listener-url "tcp://127.0.0.1:$MEM_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$MEM_PORT" \
    --storage-engine "memory://tansu/" </dev/null >"$LOG" 2>&1 &
MEM_PID=$!
trap 'kill "$MEM_PID" 2>/dev/null || true; wait "$MEM_PID" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$MEM_PORT") 2>/dev/null && break
    kill -0 "$MEM_PID" 2>/dev/null || { tail -n 5 "$LOG" >&2; echo "the in-memory broker exited" >&2; exit 1; }
    sleep 0.1
done
echo "in-memory broker on 127.0.0.1:$MEM_PORT (pid $MEM_PID); durable broker on $SLUICE_KAFKA_BROKERS"
BENCH_BROKERS="memory=127.0.0.1:$MEM_PORT,sqlite=$SLUICE_KAFKA_BROKERS" \
    cargo bench -p binlog-relay --bench relay

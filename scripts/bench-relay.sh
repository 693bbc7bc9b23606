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
source "$ROOT/scripts/memory-broker.sh"
cd "$ROOT"
start_memory_broker
BENCH_BROKERS="memory=$MEM_BROKER,sqlite=$SLUICE_KAFKA_BROKERS" \
    cargo bench -p binlog-relay --bench relay

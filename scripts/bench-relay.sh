#!/usr/bin/env bash
# `make bench-relay`: relay throughput against the stack's Apache Kafka
# broker, with the publish-ceiling (a bare idempotent producer to the same
# broker), decode-only and `mariadb-binlog` baselines measured in the same run
# (see binlog-relay/benches/relay.rs). Needs the stack (`make up`; the mesh
# may run, but for numbers worth recording stop it: `scripts/mesh.sh down`).
#
#   scripts/bench-relay.sh            # 1,000,000 batch rows, 20,000 small transactions
#   BENCH_ROWS=100000 BENCH_TXS=2000 scripts/bench-relay.sh
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
BENCH_BROKERS=${BENCH_BROKERS:-"kafka=$SLUICE_KAFKA_BROKERS"} \
    cargo bench -p binlog-relay --bench relay

#!/usr/bin/env bash
# `make bench-syncer-throughput`: change events applied per second by the
# syncer from a pre-filled topic on the stack's Apache Kafka broker
# (cache-syncer/benches/syncer_throughput.rs), beside the apply path alone
# (no Kafka) timed in the same run, with the syncer's default consumer
# settings and with bigger fetches (the `[consumer]` table: BENCH_BIG_FETCH,
# default fetch.max.bytes=16777216). Needs the stack (`make up`); stop the
# mesh for numbers worth recording (`scripts/mesh.sh down`).
#
#   scripts/bench-syncer.sh --group   (`make bench-syncer-group`) the syncer
#       alone with 1, 2 and 3 members in one consumer group, in turn
#       (BENCH_ROUNDS rounds, default 2), default consumer settings
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
BIG=${BENCH_BIG_FETCH:-fetch.max.bytes=16777216}
cargo bench -p cache-syncer --bench syncer_throughput --no-run
if [ "${1:-}" = "--group" ]; then
    for round in $(seq 1 "${BENCH_ROUNDS:-2}"); do
        for members in 1 2 3; do
            echo "== round $round, $members member(s)"
            BENCH_MEMBERS=$members cargo bench -q -p cache-syncer --bench syncer_throughput 2>&1 |
                grep -E '^# |member|apply path'
        done
    done
    exit 0
fi
for consumer in "" "$BIG"; do
    echo "== broker kafka ($SLUICE_KAFKA_BROKERS), consumer settings: ${consumer:-defaults}"
    BENCH_CONSUMER=$consumer cargo bench -q -p cache-syncer --bench syncer_throughput 2>&1 | grep -v '^$'
done

#!/usr/bin/env bash
# `make bench-syncer-throughput`: change events applied per second by the
# syncer from a pre-filled topic (cache-syncer/benches/syncer_throughput.rs),
# against the stack's durable broker and an in-memory tansu started for the
# run, each with the syncer's default consumer settings and with bigger
# fetches (the `[consumer]` table: BENCH_BIG_FETCH, default
# fetch.max.bytes=16777216). Needs the stack (`make up`); stop the mesh for
# numbers worth recording (`scripts/mesh.sh down`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
source "$ROOT/scripts/memory-broker.sh"
cd "$ROOT"
start_memory_broker
BIG=${BENCH_BIG_FETCH:-fetch.max.bytes=16777216}
cargo bench -p cache-syncer --bench syncer_throughput --no-run
for broker in "sqlite=$SLUICE_KAFKA_BROKERS" "memory=$MEM_BROKER"; do
    for consumer in "" "$BIG"; do
        echo "== broker ${broker%%=*}, consumer settings: ${consumer:-defaults}"
        SLUICE_KAFKA_BROKERS=${broker#*=} BENCH_CONSUMER=$consumer \
            cargo bench -q -p cache-syncer --bench syncer_throughput 2>&1 | grep -v '^$'
    done
done

#!/usr/bin/env bash
# `make bench-syncer-throughput`: change events applied per second by the
# syncer from a pre-filled topic on the stack's Apache Kafka broker
# (cache-syncer/benches/syncer_throughput.rs), beside the apply path alone
# (no Kafka) timed in the same run, with the syncer's default consumer
# settings and with bigger fetches (the `[consumer]` table: BENCH_BIG_FETCH,
# default fetch.max.bytes=16777216). Needs the stack (`make up`); stop the
# mesh for numbers worth recording (`scripts/mesh.sh down`).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
BIG=${BENCH_BIG_FETCH:-fetch.max.bytes=16777216}
cargo bench -p cache-syncer --bench syncer_throughput --no-run
for consumer in "" "$BIG"; do
    echo "== broker kafka ($SLUICE_KAFKA_BROKERS), consumer settings: ${consumer:-defaults}"
    BENCH_CONSUMER=$consumer cargo bench -q -p cache-syncer --bench syncer_throughput 2>&1 | grep -v '^$'
done

# Shared settings of the local stack; every value can be overridden from the
# environment. Sourced by the other scripts (not run on its own).
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export SLUICE_STATE=${SLUICE_STATE:-$ROOT/.state}
export SLUICE_CACHE=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
export TANSU_VERSION=0.6.0
export SLUICE_TANSU_BIN=${SLUICE_TANSU_BIN:-$SLUICE_CACHE/tansu-$TANSU_VERSION/bin/tansu}

export SLUICE_MYSQL_PORT=${SLUICE_MYSQL_PORT:-3307}
export SLUICE_REDIS_PORT=${SLUICE_REDIS_PORT:-6380}
export SLUICE_KAFKA_PORT=${SLUICE_KAFKA_PORT:-9092}
export SLUICE_PROMETHEUS_PORT=${SLUICE_PROMETHEUS_PORT:-9090}
export SLUICE_DB=${SLUICE_DB:-sluice}

# Connection strings the binaries and the test kit read (dev mode only).
export SLUICE_MYSQL_URL=${SLUICE_MYSQL_URL:-mysql://root@127.0.0.1:$SLUICE_MYSQL_PORT}
export SLUICE_REDIS_URL=${SLUICE_REDIS_URL:-redis://127.0.0.1:$SLUICE_REDIS_PORT}
export SLUICE_KAFKA_BROKERS=${SLUICE_KAFKA_BROKERS:-127.0.0.1:$SLUICE_KAFKA_PORT}
export DATABASE_URL=${DATABASE_URL:-$SLUICE_MYSQL_URL/$SLUICE_DB}

# Topics of the default prefix `sluice` (DESIGN §4): one per table, plus the
# transaction, heartbeat and dead-letter topics.
# One partition per topic locally: tansu 0.6.0 polls its storage for every
# partition of a fetch, every `fetch.wait.max.ms` (10 ms for the syncer), even
# when idle. With the syncer's 13 partitions at 4 per topic, an idle tansu
# used ~90% of a core on this 2-core machine; at 1 per topic, ~50% (measured
# with top, sqlite storage). Per-row order only needs the key → partition
# mapping, which any count keeps. Real Kafka (compose/) uses more.
export SLUICE_TOPIC_PARTITIONS=${SLUICE_TOPIC_PARTITIONS:-1}
export SLUICE_TOPICS=${SLUICE_TOPICS:-"sluice.$SLUICE_DB.user sluice.$SLUICE_DB.follow sluice.$SLUICE_DB.counter sluice.transaction sluice.heartbeat sluice.dlq"}

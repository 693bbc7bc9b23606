# shellcheck shell=bash
# Shared settings of the local stack; every value can be overridden from the
# environment. Sourced by the other scripts (not run on its own).
: "${ROOT:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
export SLUICE_STATE=${SLUICE_STATE:-$ROOT/.state}
export SLUICE_CACHE=${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}
# Apache Kafka from Maven Central (scripts/kafka/pom.xml), its jars cached in
# one folder; compose/ runs the same version. Java 17+ runs it.
export SLUICE_KAFKA_VERSION=${SLUICE_KAFKA_VERSION:-4.1.1}
export SLUICE_KAFKA_HOME=${SLUICE_KAFKA_HOME:-$SLUICE_CACHE/kafka-$SLUICE_KAFKA_VERSION}
# The broker's JVM heap. Kafka keeps messages in the page cache, not on the
# heap; 1 GiB serves the local load with short G1 pauses and leaves the rest
# of a 24 GiB machine to MariaDB, Redis, the mesh and the page cache.
export SLUICE_KAFKA_HEAP=${SLUICE_KAFKA_HEAP:-1g}

export SLUICE_MYSQL_PORT=${SLUICE_MYSQL_PORT:-3307}
export SLUICE_REDIS_PORT=${SLUICE_REDIS_PORT:-6380}
export SLUICE_KAFKA_PORT=${SLUICE_KAFKA_PORT:-9092}
# The KRaft controller listener of the one combined broker+controller node.
export SLUICE_KAFKA_CONTROLLER_PORT=${SLUICE_KAFKA_CONTROLLER_PORT:-9093}
# A second client listener that requires SASL/PLAIN, for the tests of the
# binaries' `kafka.username`/`kafka.password` (compose authenticates every
# client this way). Loopback only; the password is the dev stack's.
export SLUICE_KAFKA_SASL_PORT=${SLUICE_KAFKA_SASL_PORT:-9094}
export SLUICE_KAFKA_SASL_USER=${SLUICE_KAFKA_SASL_USER:-sluice}
export SLUICE_KAFKA_SASL_PASSWORD=${SLUICE_KAFKA_SASL_PASSWORD:-sluice-dev-kafka-password}
export SLUICE_PROMETHEUS_PORT=${SLUICE_PROMETHEUS_PORT:-9090}
# etcd (issue #18): one member for service discovery (the gRPC services will
# register under a lease, the gateway will watch). Started only by
# `SLUICE_ETCD=1 make up`, or by `SLUICE_INSTANCES=N make up` with N > 1.
export SLUICE_ETCD_PORT=${SLUICE_ETCD_PORT:-2379}
export SLUICE_ETCD_PEER_PORT=${SLUICE_ETCD_PEER_PORT:-2380}
# Redis Cluster (issue #18): three masters (at least three; commas or spaces),
# each with its cluster bus on port + 10000. Started only by
# `SLUICE_REDIS_CLUSTER=1 make up`, besides the single Redis above.
export SLUICE_REDIS_CLUSTER_PORTS=${SLUICE_REDIS_CLUSTER_PORTS:-7001,7002,7003}
export SLUICE_DB=${SLUICE_DB:-sluice}

# Connection strings the binaries and the test kit read (dev mode only).
export SLUICE_MYSQL_URL=${SLUICE_MYSQL_URL:-mysql://root@127.0.0.1:$SLUICE_MYSQL_PORT}
export SLUICE_REDIS_URL=${SLUICE_REDIS_URL:-redis://127.0.0.1:$SLUICE_REDIS_PORT}
export SLUICE_KAFKA_BROKERS=${SLUICE_KAFKA_BROKERS:-127.0.0.1:$SLUICE_KAFKA_PORT}
export DATABASE_URL=${DATABASE_URL:-$SLUICE_MYSQL_URL/$SLUICE_DB}
# Exported whether or not etcd and the cluster run: only the switches start them.
export SLUICE_ETCD_ENDPOINTS=${SLUICE_ETCD_ENDPOINTS:-http://127.0.0.1:$SLUICE_ETCD_PORT}
if [ -z "${SLUICE_REDIS_CLUSTER_URLS:-}" ]; then
    for _port in ${SLUICE_REDIS_CLUSTER_PORTS//,/ }; do
        SLUICE_REDIS_CLUSTER_URLS="${SLUICE_REDIS_CLUSTER_URLS:+$SLUICE_REDIS_CLUSTER_URLS,}redis://127.0.0.1:$_port"
    done
    unset _port
fi
export SLUICE_REDIS_CLUSTER_URLS

# Topics of the default prefix `sluice` (DESIGN §4): one per table, plus the
# transaction, heartbeat and dead-letter topics.
# Partitions of each row-change topic (and of the dead-letter topic). Six,
# like the relay's own default and compose: an idle Kafka broker costs nothing
# per partition (it answers a fetch when data arrives), per-key order only
# needs the key -> partition mapping, which any count keeps, and several
# cache-syncers in one consumer group (`SLUICE_SYNCERS=N make up`, issue #18)
# share the partitions out: six give two, three or six members an even share.
# The transaction and heartbeat topics keep one partition: their records are
# ordered as a whole. Topics that exist keep their count; adding partitions
# to a topic moves keys to other partitions, so do it only with the pipeline
# caught up (`scripts/kafka-tool.sh topics --alter --topic <t> --partitions 6`).
export SLUICE_TOPIC_PARTITIONS=${SLUICE_TOPIC_PARTITIONS:-6}
export SLUICE_TOPICS=${SLUICE_TOPICS:-"sluice.$SLUICE_DB.user sluice.$SLUICE_DB.follow sluice.$SLUICE_DB.counter sluice.transaction sluice.heartbeat sluice.dlq"}

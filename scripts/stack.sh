#!/usr/bin/env bash
# sluice local stack: its own MariaDB (binlog on), Redis and Apache Kafka broker
# (KRaft, one combined broker+controller node), plus a Prometheus that scrapes
# the sluice processes, all on loopback, all under one state folder.
#
#   scripts/stack.sh install   install what is missing (Debian packages, Kafka's jars)
#   scripts/stack.sh up        install, start everything, wait until each answers
#   scripts/stack.sh down      stop exactly the processes `up` started (by pid)
#   scripts/stack.sh status    show what runs, with pids and ports
#   scripts/stack.sh check     exit 0 only when every server answers
#   scripts/stack.sh restart-kafka [--kill]   stop (SIGTERM, or SIGKILL with
#                              --kill) and start the broker; its data stays
#   scripts/stack.sh start|stop etcd|redis-cluster   start or stop one of the
#                              optional parts only (the rest is left alone)
#
# Optional parts (issue #18), off unless a switch asks for them:
#   SLUICE_ETCD=1              etcd, one member (also on when SLUICE_INSTANCES > 1)
#   SLUICE_REDIS_CLUSTER=1     a Redis Cluster of three masters, besides the Redis
# `down` stops them whether or not the switch is set (by their pid files).
#
# Every step is idempotent: a second `up` is a no-op.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"

# fd 4 is the real stderr, even inside checks whose output wait_for discards.
exec 4>&2
log() { printf '%s\n' "$*" >&4; }
die() { printf 'error: %s\n' "$*" >&4; exit 1; }

# The switches: 1, true, yes or on.
is_on() { case "${1:-}" in 1 | true | yes | on) return 0 ;; *) return 1 ;; esac; }
etcd_wanted() {
    is_on "${SLUICE_ETCD:-}" && return 0
    local n=${SLUICE_INSTANCES:-1}
    [[ $n =~ ^[0-9]+$ ]] || die "SLUICE_INSTANCES must be a number (got '$n')"
    [ "$n" -gt 1 ]
}
redis_cluster_wanted() { is_on "${SLUICE_REDIS_CLUSTER:-}"; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "'$*' needs root and sudo is not available"
    fi
}

# ---------------------------------------------------------------- install
APT_UPDATED=0
apt_install() {
    if [ "$APT_UPDATED" = 0 ]; then
        log "installing Debian packages: $* (apt-get update first)"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        APT_UPDATED=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

install_packages() {
    local missing=()
    command -v mariadbd >/dev/null || missing+=(mariadb-server)
    command -v mariadb >/dev/null || missing+=(mariadb-client)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-cli >/dev/null || missing+=(redis-tools)
    command -v protoc >/dev/null || missing+=(protobuf-compiler)
    command -v make >/dev/null || missing+=(make)
    command -v cc >/dev/null || missing+=(build-essential)
    command -v pkg-config >/dev/null || missing+=(pkg-config)
    command -v curl >/dev/null || missing+=(curl)
    dpkg -s zlib1g-dev >/dev/null 2>&1 || missing+=(zlib1g-dev)
    if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
    # Prometheus and promtool (Debian's 2.42, ~15 s). Without its recommended
    # node exporter; only the binary is used (start_prometheus), never the
    # package's own service.
    if ! { command -v prometheus && command -v promtool; } >/dev/null; then
        apt_install --no-install-recommends prometheus
        # Where no policy-rc.d forbids it, the package starts its own service
        # (0.0.0.0:9090) through /etc/init.d: stop it, the stack runs its own.
        if [ -x /etc/init.d/prometheus ] && /etc/init.d/prometheus status >/dev/null 2>&1; then
            as_root /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        fi
    fi
    if etcd_wanted; then install_etcd; fi
}

# etcd 3.4.23 and etcdctl from Debian (etcd-server, etcd-client; ~10 s).
install_etcd() {
    if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then return; fi
    local fresh=0
    command -v etcd >/dev/null || fresh=1
    apt_install etcd-server etcd-client
    # Where no policy-rc.d forbids it, the package starts its own member
    # (localhost:2379, /var/lib/etcd) as a system service, and at every boot:
    # stop and disable it, the stack runs its own.
    if [ "$fresh" = 1 ]; then
        if [ -d /run/systemd/system ]; then
            as_root systemctl disable --now etcd.service >/dev/null 2>&1 || true
        elif [ -x /etc/init.d/etcd ]; then
            as_root /etc/init.d/etcd stop >/dev/null 2>&1 || true
            as_root update-rc.d etcd disable >/dev/null 2>&1 || true
        fi
    fi
    log "etcd: installed $(etcd --version 2>/dev/null | sed -n 1p)"
}

# Apache Kafka's broker and tools: the runtime jars of scripts/kafka/pom.xml,
# copied by Maven into $SLUICE_KAFKA_HOME/libs once (Maven's own download is
# kept in $SLUICE_CACHE/m2); a folder that holds them is used as it is.
install_kafka() {
    local libs="$SLUICE_KAFKA_HOME/libs"
    if [ -f "$libs/.complete" ]; then
        log "kafka $SLUICE_KAFKA_VERSION: using cached jars in $libs"
        return
    fi
    command -v java >/dev/null || apt_install --no-install-recommends openjdk-17-jre-headless
    command -v mvn >/dev/null || apt_install --no-install-recommends maven
    log "kafka $SLUICE_KAFKA_VERSION: fetching the broker's jars from Maven Central into $libs (first time only, ~30 s)"
    mkdir -p "$SLUICE_KAFKA_HOME"
    rm -rf "$libs.partial"
    if ! mvn -B -q -f "$ROOT/scripts/kafka/pom.xml" -Dmaven.repo.local="$SLUICE_CACHE/m2" \
        -Dkafka.version="$SLUICE_KAFKA_VERSION" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$libs.partial" >"$SLUICE_KAFKA_HOME/fetch.log" 2>&1; then
        tail -n 30 "$SLUICE_KAFKA_HOME/fetch.log" >&2
        die "fetching Apache Kafka $SLUICE_KAFKA_VERSION with Maven failed (log: $SLUICE_KAFKA_HOME/fetch.log)"
    fi
    [ -f "$libs.partial/kafka_2.13-$SLUICE_KAFKA_VERSION.jar" ] ||
        die "Maven did not bring kafka_2.13-$SLUICE_KAFKA_VERSION.jar (log: $SLUICE_KAFKA_HOME/fetch.log)"
    touch "$libs.partial/.complete"
    rm -rf "$libs"
    mv "$libs.partial" "$libs"
    log "kafka $SLUICE_KAFKA_VERSION: $(find "$libs" -name '*.jar' | wc -l) jars in $libs"
}

cmd_install() {
    install_packages
    install_kafka
}

# ---------------------------------------------------------------- helpers
# Running, and not a zombie: a process killed with -9 whose parent (init,
# once this script has exited) has not reaped it yet still answers kill -0.
pid_alive() { # pidfile
    local pid
    [ -f "$1" ] || return 1
    pid=$(cat "$1")
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]]
}

port_open() { # port
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_for() { # what seconds command...
    local what=$1 secs=$2
    shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.2
    done
    log "$what"
}

port_taken_by_other() { # name port pidfile
    if ! pid_alive "$3" && port_open "$2"; then
        die "$1: port $2 is already in use by a process this stack did not start; stop it or set another port (see scripts/env.sh)"
    fi
}

# ---------------------------------------------------------------- MariaDB
MDB="$SLUICE_STATE/mariadb"
mdb_client() { mariadb --no-defaults --protocol=socket --socket="$MDB/mysqld.sock" -uroot "$@"; }

start_mariadb() {
    if pid_alive "$MDB/mariadbd.pid"; then
        log "mariadb: already running (pid $(cat "$MDB/mariadbd.pid")) on 127.0.0.1:$SLUICE_MYSQL_PORT"
        return
    fi
    port_taken_by_other mariadb "$SLUICE_MYSQL_PORT" "$MDB/mariadbd.pid"
    mkdir -p "$MDB/binlog" "$MDB/tmp"
    cat >"$MDB/my.cnf" <<EOF
[mariadbd]
user                           = $(id -un)
datadir                        = $MDB/data
socket                         = $MDB/mysqld.sock
pid-file                       = $MDB/mariadbd.pid
tmpdir                         = $MDB/tmp
log-error                      = $MDB/error.log
port                           = $SLUICE_MYSQL_PORT
bind-address                   = 127.0.0.1
skip-name-resolve
server-id                      = 1
log-bin                        = $MDB/binlog/mysql-bin
binlog_format                  = ROW
binlog_row_image               = FULL
binlog_row_metadata            = FULL
binlog_annotate_row_events     = ON
gtid_strict_mode               = ON
sync_binlog                    = 0
innodb_flush_log_at_trx_commit = 1
innodb_buffer_pool_size        = 512M
max_connections                = 1000
character-set-server           = utf8mb4
collation-server               = utf8mb4_unicode_ci
EOF
    if [ ! -d "$MDB/data/mysql" ]; then
        log "mariadb: initialising datadir $MDB/data"
        mariadb-install-db --defaults-file="$MDB/my.cnf" --auth-root-authentication-method=normal \
            --skip-test-db >"$MDB/install.log" 2>&1 || { cat "$MDB/install.log" >&2; die "mariadb-install-db failed"; }
    fi
    setsid mariadbd --defaults-file="$MDB/my.cnf" </dev/null >/dev/null 2>&1 4>&- &
    wait_for "mariadb: started on 127.0.0.1:$SLUICE_MYSQL_PORT (binlog ROW/FULL, datadir $MDB/data)" 60 \
        mdb_client -e 'SELECT 1' || { tail -n 20 "$MDB/error.log" >&2; die "mariadb did not answer within 60s"; }
    # Dev-mode access: root without a password, over the socket and loopback TCP only.
    mdb_client <<SQL
CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE DATABASE IF NOT EXISTS \`$SLUICE_DB\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
SQL
}

# ---------------------------------------------------------------- Redis
RDS="$SLUICE_STATE/redis"
start_redis() {
    if pid_alive "$RDS/redis.pid"; then
        log "redis: already running (pid $(cat "$RDS/redis.pid")) on 127.0.0.1:$SLUICE_REDIS_PORT"
        return
    fi
    port_taken_by_other redis "$SLUICE_REDIS_PORT" "$RDS/redis.pid"
    mkdir -p "$RDS"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$SLUICE_REDIS_PORT" \
        --pidfile "$RDS/redis.pid" --dir "$RDS" --logfile "$RDS/redis.log" \
        --save "" --appendonly no >/dev/null 4>&-
    wait_for "redis: started on 127.0.0.1:$SLUICE_REDIS_PORT" 30 \
        redis-cli -h 127.0.0.1 -p "$SLUICE_REDIS_PORT" ping || die "redis did not answer within 30s ($RDS/redis.log)"
}

# ---------------------------------------------------------------- Kafka
KFK="$SLUICE_STATE/kafka"
# Kafka's tools are main classes in the cached jars (scripts/kafka-tool.sh).
kafka_tool() { "$ROOT/scripts/kafka-tool.sh" class "$@"; }
topics_tool() { "$ROOT/scripts/kafka-tool.sh" topics "$@"; }

# One node that is both broker and controller (KRaft), on loopback only. The
# file is written at every start from scripts/env.sh; the data stays.
write_kafka_config() {
    cat >"$KFK/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$SLUICE_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$SLUICE_KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$SLUICE_KAFKA_SASL_PORT,CONTROLLER://127.0.0.1:$SLUICE_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$SLUICE_KAFKA_PORT,SASL_PLAINTEXT://127.0.0.1:$SLUICE_KAFKA_SASL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
# SASL/PLAIN on the second listener (the credential tests; see scripts/env.sh).
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SLUICE_KAFKA_SASL_USER="$SLUICE_KAFKA_SASL_PASSWORD";
log.dirs=$KFK/data
# Topics are created explicitly (create_topics below, the relay, the tests).
auto.create.topics.enable=false
delete.topic.enable=true
num.partitions=$SLUICE_TOPIC_PARTITIONS
default.replication.factor=1
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# After a kill -9, the restarted node's broker may register only once the
# controller has let the old registration's session lapse (9 s by default):
# 4 s makes a crash restart ~5 s shorter. Heartbeats stay well inside it.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
# The controller appends a no-op record to its metadata log every 500 ms by
# default, to show it is alive: on one idle node that is most of the
# broker's idle CPU. Every 5 s is plenty for one node.
metadata.max.idle.interval.ms=5000
# A group that forms is served at once (tests start members one by one).
group.initial.rebalance.delay.ms=0
# Sized for 2 cores.
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=2
# A week of data, at most 1 GiB per partition.
log.retention.hours=168
log.retention.bytes=1073741824
log.segment.bytes=268435456
EOF
}

start_kafka() {
    if pid_alive "$KFK/kafka.pid"; then
        log "kafka: already running (pid $(cat "$KFK/kafka.pid")) on 127.0.0.1:$SLUICE_KAFKA_PORT"
        return
    fi
    port_taken_by_other kafka "$SLUICE_KAFKA_PORT" "$KFK/kafka.pid"
    port_taken_by_other "kafka (SASL)" "$SLUICE_KAFKA_SASL_PORT" "$KFK/kafka.pid"
    port_taken_by_other "kafka (controller)" "$SLUICE_KAFKA_CONTROLLER_PORT" "$KFK/kafka.pid"
    [ -f "$SLUICE_KAFKA_HOME/libs/.complete" ] || die "Kafka is not installed: run scripts/stack.sh install"
    mkdir -p "$KFK/data"
    write_kafka_config
    # Format the KRaft storage once; its cluster id is kept beside it.
    if [ ! -f "$KFK/data/meta.properties" ]; then
        [ -s "$KFK/cluster.id" ] || kafka_tool kafka.tools.StorageTool random-uuid >"$KFK/cluster.id" ||
            die "kafka: could not make a cluster id"
        kafka_tool kafka.tools.StorageTool format -t "$(cat "$KFK/cluster.id")" \
            -c "$KFK/server.properties" >"$KFK/format.log" 2>&1 ||
            { cat "$KFK/format.log" >&2; die "kafka: formatting the storage in $KFK/data failed"; }
        log "kafka: formatted KRaft storage in $KFK/data (cluster $(cat "$KFK/cluster.id"))"
    fi
    # A start marker, so readiness is read from this start's log lines only.
    # The log's size now: readiness is read from what this start appends.
    stat -c %s "$KFK/server.log" 2>/dev/null >"$KFK/start.mark" || echo 0 >"$KFK/start.mark"
    # `exec` keeps the recorded pid that of the JVM itself. G1 with a short
    # pause goal: the relay and the syncer wait on the broker's answers.
    (cd "$KFK" && exec setsid java -Xms"$SLUICE_KAFKA_HEAP" -Xmx"$SLUICE_KAFKA_HEAP" \
        -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
        -Dsluice.kafka.log="$KFK/server.log" \
        -cp "$SLUICE_KAFKA_HOME/libs/*" kafka.Kafka "$KFK/server.properties" \
        </dev/null >>"$KFK/stdout.log" 2>&1 4>&-) &
    echo $! >"$KFK/kafka.pid"
    wait_for "kafka: started on 127.0.0.1:$SLUICE_KAFKA_PORT (Apache Kafka $SLUICE_KAFKA_VERSION, KRaft, data $KFK/data)" 120 \
        kafka_ready || { tail -n 20 "$KFK/server.log" "$KFK/stdout.log" >&2; die "kafka did not start within 120s (log: $KFK/server.log)"; }
}

# The broker listens once it has loaded its logs and joined its own quorum,
# and says so in its log (in the part this start wrote: from the size it had,
# or from the top when the log was rolled meanwhile). Not `tail | grep -q`:
# under pipefail, tail's SIGPIPE after an early match would fail the check.
kafka_ready() {
    pid_alive "$KFK/kafka.pid" || { tail -n 5 "$KFK/stdout.log" "$KFK/server.log" >&4; die "kafka exited during start-up"; }
    port_open "$SLUICE_KAFKA_PORT" || return 1
    local mark size
    mark=$(cat "$KFK/start.mark")
    size=$(stat -c %s "$KFK/server.log" 2>/dev/null || echo 0)
    [ "$size" -ge "$mark" ] || mark=0
    grep -q "Kafka Server started" < <(tail -c +"$((mark + 1))" "$KFK/server.log")
}

# The broker does not auto-create topics: create the sluice ones explicitly
# (the missing ones, in parallel: each tool run is a JVM start of ~2 s).
create_topics() {
    local existing topic parts entry pid pids=()
    existing=$(topics_tool --list 2>"$KFK/topics.log") ||
        { cat "$KFK/topics.log" >&2; die "kafka: could not list topics"; }
    for topic in $SLUICE_TOPICS; do
        if grep -qxF -- "$topic" <<<"$existing"; then continue; fi
        # Transaction and heartbeat records keep their order in one partition.
        parts=$SLUICE_TOPIC_PARTITIONS
        case "$topic" in *.transaction | *.heartbeat) parts=1 ;; esac
        topics_tool --create --if-not-exists --topic "$topic" --partitions "$parts" \
            --replication-factor 1 >>"$KFK/topics.log" 2>&1 &
        pids+=("$!:$topic:$parts")
    done
    for entry in "${pids[@]}"; do
        IFS=: read -r pid topic parts <<<"$entry"
        wait "$pid" || { tail -n 5 "$KFK/topics.log" >&2; die "could not create topic $topic"; }
        log "kafka: created topic $topic ($parts partitions)"
    done
}

# ---------------------------------------------------------------- Prometheus
# Scrapes every sluice admin port (compose/prometheus/prometheus.local.yml,
# the compose stack's job names) every 2s; its TSDB lives in the state folder.
PRM="$SLUICE_STATE/prometheus"
PRM_CONFIG="$ROOT/compose/prometheus/prometheus.local.yml"
start_prometheus() {
    if pid_alive "$PRM/prometheus.pid"; then
        log "prometheus: already running (pid $(cat "$PRM/prometheus.pid")) on 127.0.0.1:$SLUICE_PROMETHEUS_PORT"
        return
    fi
    if ! pid_alive "$PRM/prometheus.pid" && port_open "$SLUICE_PROMETHEUS_PORT"; then
        die "prometheus: port $SLUICE_PROMETHEUS_PORT is already in use by a process this stack did not start (Debian's prometheus service? \`service prometheus stop\`); stop it or set SLUICE_PROMETHEUS_PORT"
    fi
    command -v prometheus >/dev/null || die "prometheus is not installed: run scripts/stack.sh install"
    promtool check config "$PRM_CONFIG" >/dev/null || die "prometheus: $PRM_CONFIG is not valid (promtool check config)"
    mkdir -p "$PRM/data"
    # `exec` keeps the recorded pid that of prometheus itself; fd 4 is closed
    # so that a pipe reading this script's output is not held open by it.
    (cd "$PRM" && exec setsid prometheus \
        --config.file="$PRM_CONFIG" \
        --storage.tsdb.path="$PRM/data" \
        --storage.tsdb.retention.time=2d \
        --web.listen-address="127.0.0.1:$SLUICE_PROMETHEUS_PORT" \
        </dev/null >>"$PRM/prometheus.log" 2>&1 4>&-) &
    echo $! >"$PRM/prometheus.pid"
    wait_for "prometheus: started on 127.0.0.1:$SLUICE_PROMETHEUS_PORT (config $PRM_CONFIG, data $PRM/data)" 60 \
        prometheus_ready || { tail -n 20 "$PRM/prometheus.log" >&2; die "prometheus did not become ready within 60s (log: $PRM/prometheus.log)"; }
}

prometheus_ready() {
    pid_alive "$PRM/prometheus.pid" || { tail -n 5 "$PRM/prometheus.log" >&4; die "prometheus exited during start-up"; }
    curl -fsS -m 1 "http://127.0.0.1:$SLUICE_PROMETHEUS_PORT/-/ready"
}

# ---------------------------------------------------------------- etcd
# One member (Debian's etcd 3.4), for service discovery (issue #18): the
# services will register under a lease, the gateway will watch. Loopback
# only, no auth; its data stays in the state folder. The --initial-* flags
# only matter the first time (an existing data dir keeps its member).
ETC="$SLUICE_STATE/etcd"
start_etcd() {
    if pid_alive "$ETC/etcd.pid"; then
        log "etcd: already running (pid $(cat "$ETC/etcd.pid")) on 127.0.0.1:$SLUICE_ETCD_PORT"
        return
    fi
    port_taken_by_other etcd "$SLUICE_ETCD_PORT" "$ETC/etcd.pid"
    port_taken_by_other "etcd (peer)" "$SLUICE_ETCD_PEER_PORT" "$ETC/etcd.pid"
    command -v etcd >/dev/null || die "etcd is not installed: run SLUICE_ETCD=1 scripts/stack.sh install"
    mkdir -p "$ETC"
    # etcd 3.4 exits at once on any architecture but amd64 and ppc64le unless
    # ETCD_UNSUPPORTED_ARCH names the one it runs on (its
    # op-guide/supported-platform.md; arm64 is "experimental" there).
    local arch arch_env=()
    arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
    case "$arch" in
    amd64 | x86_64 | ppc64el | ppc64le) ;;
    *)
        case "$arch" in
        aarch64) arch=arm64 ;;
        armhf | armel | armv7l) arch=arm ;;
        i386 | i686) arch=386 ;;
        mips64el) arch=mips64le ;;
        esac
        arch_env=("ETCD_UNSUPPORTED_ARCH=${ETCD_UNSUPPORTED_ARCH:-$arch}")
        ;;
    esac
    local client="http://127.0.0.1:$SLUICE_ETCD_PORT" peer="http://127.0.0.1:$SLUICE_ETCD_PEER_PORT"
    # `exec` (and env's own exec) keep the recorded pid that of etcd itself.
    # Periodic compaction keeps the revisions of lease churn from piling up.
    (cd "$ETC" && exec setsid env "${arch_env[@]}" etcd \
        --name sluice --data-dir "$ETC/data" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "sluice=$peer" --initial-cluster-token sluice-local \
        --initial-cluster-state new \
        --auto-compaction-mode periodic --auto-compaction-retention 1h \
        --logger zap --log-outputs stderr \
        </dev/null >>"$ETC/etcd.log" 2>&1 4>&-) &
    echo $! >"$ETC/etcd.pid"
    wait_for "etcd: started on 127.0.0.1:$SLUICE_ETCD_PORT (peer $SLUICE_ETCD_PEER_PORT, $(etcd --version 2>/dev/null | sed -n 1p), data $ETC/data)" 30 \
        etcd_ready || { tail -n 20 "$ETC/etcd.log" >&2; die "etcd did not become healthy within 30s (log: $ETC/etcd.log)"; }
}

etcd_healthy() {
    local out
    out=$(curl -fsS -m 1 "http://127.0.0.1:$SLUICE_ETCD_PORT/health") || return 1
    [[ $out == *'"health":"true"'* ]]
}

etcd_ready() {
    pid_alive "$ETC/etcd.pid" || { tail -n 5 "$ETC/etcd.log" >&4; die "etcd exited during start-up"; }
    etcd_healthy
}

stop_etcd() { stop_pid etcd "$ETC/etcd.pid" etcd; }

# ---------------------------------------------------------------- Redis Cluster
# Masters only (no replicas), each in .state/redis-cluster/<port>/ with its
# own nodes file, log and pid file, and the settings of the single Redis
# above (no persistence: after a restart a node is empty, but the nodes
# files keep the cluster formed). Formed once, when every node is fresh.
RCL="$SLUICE_STATE/redis-cluster"
read -ra RCL_PORTS <<<"${SLUICE_REDIS_CLUSTER_PORTS//,/ }"

rcl_info() { # port: the node's CLUSTER INFO, without the \r
    local out
    out=$(redis-cli -h 127.0.0.1 -p "$1" cluster info) || return 1
    printf '%s\n' "${out//$'\r'/}"
}

redis_cluster_ok() { # every node answers cluster_state:ok
    local port
    for port in "${RCL_PORTS[@]}"; do
        [[ $(rcl_info "$port") == *cluster_state:ok* ]] || return 1
    done
}

start_redis_cluster() {
    [ ${#RCL_PORTS[@]} -ge 3 ] ||
        die "redis-cluster: Redis Cluster needs at least 3 masters (SLUICE_REDIS_CLUSTER_PORTS=$SLUICE_REDIS_CLUSTER_PORTS)"
    local port dir info fresh=0 formed=0
    for port in "${RCL_PORTS[@]}"; do
        dir="$RCL/$port"
        if pid_alive "$dir/redis.pid"; then
            log "redis-cluster: node already running (pid $(cat "$dir/redis.pid")) on 127.0.0.1:$port"
            continue
        fi
        port_taken_by_other redis-cluster "$port" "$dir/redis.pid"
        port_taken_by_other "redis-cluster (bus)" "$((port + 10000))" "$dir/redis.pid"
        mkdir -p "$dir"
        redis-server --daemonize yes --bind 127.0.0.1 --port "$port" \
            --pidfile "$dir/redis.pid" --dir "$dir" --logfile "$dir/redis.log" \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --save "" --appendonly no >/dev/null 4>&-
    done
    for port in "${RCL_PORTS[@]}"; do
        wait_for "redis-cluster: node on 127.0.0.1:$port answers" 30 \
            redis-cli -h 127.0.0.1 -p "$port" ping || die "redis-cluster: node $port did not answer within 30s ($RCL/$port/redis.log)"
    done
    # A fresh node knows only itself and serves no slot; a formed one knows
    # the others from its nodes file.
    for port in "${RCL_PORTS[@]}"; do
        info=$(rcl_info "$port") || die "redis-cluster: CLUSTER INFO failed on $port"
        if [[ $info == *cluster_known_nodes:1$'\n'* && $info == *cluster_slots_assigned:0$'\n'* ]]; then
            fresh=$((fresh + 1))
        elif [[ $info == *cluster_known_nodes:${#RCL_PORTS[@]}$'\n'* ]]; then
            formed=$((formed + 1))
        fi
    done
    if [ "$fresh" = "${#RCL_PORTS[@]}" ]; then
        local addrs=() t0=$SECONDS
        for port in "${RCL_PORTS[@]}"; do addrs+=("127.0.0.1:$port"); done
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 0 --cluster-yes \
            >"$RCL/create.log" 2>&1 || { cat "$RCL/create.log" >&2; die "redis-cluster: redis-cli --cluster create failed"; }
        log "redis-cluster: formed ${addrs[*]} (16384 slots over ${#RCL_PORTS[@]} masters, $((SECONDS - t0)) s)"
    elif [ "$formed" != "${#RCL_PORTS[@]}" ]; then
        die "redis-cluster: the nodes ${RCL_PORTS[*]} are neither all fresh nor all in one cluster ($fresh fresh, $formed formed); stop it (scripts/stack.sh stop redis-cluster) and remove $RCL to form it anew"
    fi
    wait_for "redis-cluster: cluster_state:ok on 127.0.0.1:${RCL_PORTS[*]} (state $RCL)" 30 \
        redis_cluster_ok || die "redis-cluster: cluster_state is not ok after 30s (redis-cli -p ${RCL_PORTS[0]} cluster info; logs in $RCL/<port>/redis.log)"
}

# Every node that has a pid file, whether or not it is in the port list now.
stop_redis_cluster() {
    local pidfile found=0
    for pidfile in "$RCL"/*/redis.pid; do
        [ -e "$pidfile" ] || continue
        found=1
        stop_pid "redis-cluster:$(basename "$(dirname "$pidfile")")" "$pidfile" redis-server
    done
    [ "$found" = 1 ] || log "redis-cluster: not running"
}

# ---------------------------------------------------------------- stop
stop_pid() { # name pidfile expected-comm
    local name=$1 pidfile=$2 comm=$3 pid
    if ! pid_alive "$pidfile"; then
        rm -f "$pidfile"
        log "$name: not running"
        return
    fi
    pid=$(cat "$pidfile")
    if ! grep -q -- "$comm" "/proc/$pid/comm" 2>/dev/null; then
        log "$name: pid $pid is not $comm any more; leaving it alone"
        rm -f "$pidfile"
        return
    fi
    kill "$pid"
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: still running after 30s; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    log "$name: stopped (pid $pid)"
}

cmd_down() {
    stop_etcd
    stop_redis_cluster
    stop_pid prometheus "$PRM/prometheus.pid" prometheus
    stop_pid kafka "$KFK/kafka.pid" java
    stop_pid redis "$RDS/redis.pid" redis-server
    stop_pid mariadb "$MDB/mariadbd.pid" mariadbd
}

show() { # name pidfile port
    if pid_alive "$2"; then
        printf '%-14s running  pid %-7s 127.0.0.1:%s\n' "$1" "$(cat "$2")" "$3"
    else
        printf '%-14s stopped\n' "$1"
    fi
}

redis_cluster_running() { # any node, listed or not
    local pidfile
    for pidfile in "$RCL"/*/redis.pid; do pid_alive "$pidfile" && return 0; done
    return 1
}

cmd_status() {
    show mariadb "$MDB/mariadbd.pid" "$SLUICE_MYSQL_PORT"
    show redis "$RDS/redis.pid" "$SLUICE_REDIS_PORT"
    show kafka "$KFK/kafka.pid" "$SLUICE_KAFKA_PORT"
    show prometheus "$PRM/prometheus.pid" "$SLUICE_PROMETHEUS_PORT"
    # The optional parts: "off" when neither asked for nor running.
    if etcd_wanted || pid_alive "$ETC/etcd.pid"; then
        show etcd "$ETC/etcd.pid" "$SLUICE_ETCD_PORT"
    else
        printf '%-14s off      (SLUICE_ETCD=1 or SLUICE_INSTANCES>1 starts it)\n' etcd
    fi
    if redis_cluster_wanted || redis_cluster_running; then
        local port dir state
        for port in "${RCL_PORTS[@]}"; do show redis-cluster "$RCL/$port/redis.pid" "$port"; done
        for dir in "$RCL"/*/; do # nodes running off the current port list
            port=$(basename "$dir")
            [[ " ${RCL_PORTS[*]} " == *" $port "* ]] || ! pid_alive "$dir/redis.pid" ||
                show redis-cluster "$dir/redis.pid" "$port"
        done
        state=$(rcl_info "${RCL_PORTS[0]}" 2>/dev/null | grep -m1 '^cluster_state:' || true)
        printf '%-14s %s\n' "" "${state:-cluster_state: no answer on ${RCL_PORTS[0]}}"
    else
        printf '%-14s off      (SLUICE_REDIS_CLUSTER=1 starts it)\n' redis-cluster
    fi
}

# The optional parts are checked when asked for or running.
cmd_check() {
    pid_alive "$MDB/mariadbd.pid" && pid_alive "$RDS/redis.pid" && pid_alive "$KFK/kafka.pid" &&
        pid_alive "$PRM/prometheus.pid" &&
        port_open "$SLUICE_MYSQL_PORT" && port_open "$SLUICE_REDIS_PORT" && port_open "$SLUICE_KAFKA_PORT" &&
        port_open "$SLUICE_PROMETHEUS_PORT" || return 1
    if etcd_wanted || pid_alive "$ETC/etcd.pid"; then
        pid_alive "$ETC/etcd.pid" && etcd_healthy >/dev/null 2>&1 || return 1
    fi
    if redis_cluster_wanted || redis_cluster_running; then
        local port
        for port in "${RCL_PORTS[@]}"; do pid_alive "$RCL/$port/redis.pid" || return 1; done
        redis_cluster_ok >/dev/null 2>&1 || return 1
    fi
}

cmd_up() {
    cmd_install
    mkdir -p "$SLUICE_STATE"
    start_mariadb
    start_redis
    start_kafka
    create_topics
    start_prometheus
    if redis_cluster_wanted; then start_redis_cluster; fi
    if etcd_wanted; then start_etcd; fi
    log "stack is up (state in $SLUICE_STATE):"
    log "  mariadb     mysql://root@127.0.0.1:$SLUICE_MYSQL_PORT/$SLUICE_DB"
    log "  redis       redis://127.0.0.1:$SLUICE_REDIS_PORT"
    log "  kafka       127.0.0.1:$SLUICE_KAFKA_PORT"
    log "  prometheus  http://127.0.0.1:$SLUICE_PROMETHEUS_PORT"
    if redis_cluster_wanted; then log "  redis-cluster $SLUICE_REDIS_CLUSTER_URLS"; fi
    if etcd_wanted; then log "  etcd        $SLUICE_ETCD_ENDPOINTS"; fi
}

# Run the command only when executed (sourcing gives the functions, for debugging).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-}" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    check) cmd_check ;;
    restart-kafka) # [--kill]: SIGKILL instead of a clean shutdown
        if [ "${2:-}" = --kill ] && pid_alive "$KFK/kafka.pid"; then
            kill -9 "$(cat "$KFK/kafka.pid")"
            while pid_alive "$KFK/kafka.pid"; do sleep 0.05; done
            # The JVM's main thread can be a zombie while its other threads
            # still hold the sockets: wait for the port itself (bounded).
            for _ in $(seq 1 600); do port_open "$SLUICE_KAFKA_PORT" || break; sleep 0.05; done
            rm -f "$KFK/kafka.pid"
            log "kafka: killed (SIGKILL)"
        else
            stop_pid kafka "$KFK/kafka.pid" java
        fi
        start_kafka
        ;;
    restart-redis) # comes back empty (no persistence): run `cache-syncer rebuild`
        stop_pid redis "$RDS/redis.pid" redis-server
        start_redis
        ;;
    start | stop) # one optional part only, whatever the switches say
        case "$1:${2:-}" in
        start:etcd)
            install_etcd
            mkdir -p "$SLUICE_STATE"
            start_etcd
            ;;
        start:redis-cluster)
            mkdir -p "$SLUICE_STATE"
            start_redis_cluster
            ;;
        stop:etcd) stop_etcd ;;
        stop:redis-cluster) stop_redis_cluster ;;
        *) die "usage: $0 $1 etcd|redis-cluster" ;;
        esac
        ;;
    *) die "usage: $0 install|up|down|status|check|restart-kafka [--kill]|restart-redis|start|stop etcd|redis-cluster" ;;
    esac
fi

#!/usr/bin/env bash
# sluice local stack: its own MariaDB (binlog on), Redis and Kafka-protocol broker
# (tansu), plus a Prometheus that scrapes the sluice processes, all on
# loopback, all under one state folder.
#
#   scripts/stack.sh install   install what is missing (Debian packages, tansu)
#   scripts/stack.sh up        install, start everything, wait until each answers
#   scripts/stack.sh down      stop exactly the processes `up` started (by pid)
#   scripts/stack.sh status    show what runs, with pids and ports
#   scripts/stack.sh check     exit 0 only when every server answers
#   scripts/stack.sh restart-kafka   stop and start the broker (its data stays)
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
    command -v sqlite3 >/dev/null || missing+=(sqlite3)
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
}

install_tansu() {
    if [ -x "$SLUICE_TANSU_BIN" ]; then
        log "tansu $TANSU_VERSION: using cached binary $SLUICE_TANSU_BIN"
        return
    fi
    command -v cargo >/dev/null || die "cargo is needed to build the tansu broker"
    log "tansu $TANSU_VERSION: no cached binary; building it from crates.io into $SLUICE_CACHE"
    log "  (first time only, takes ~15 minutes on 2 cores; log: $SLUICE_CACHE/tansu-build.log)"
    mkdir -p "$SLUICE_CACHE"
    local root
    root=$(dirname "$(dirname "$SLUICE_TANSU_BIN")")
    if ! cargo install tansu --version "$TANSU_VERSION" --locked \
        --features dynostore,libsql --root "$root" >"$SLUICE_CACHE/tansu-build.log" 2>&1; then
        tail -n 30 "$SLUICE_CACHE/tansu-build.log" >&2
        die "building tansu failed (full log: $SLUICE_CACHE/tansu-build.log)"
    fi
    log "tansu $TANSU_VERSION: built $SLUICE_TANSU_BIN"
}

cmd_install() {
    install_packages
    install_tansu
}

# ---------------------------------------------------------------- helpers
pid_alive() { # pidfile
    [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
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

# ---------------------------------------------------------------- tansu
TSU="$SLUICE_STATE/tansu"
# The broker answers a metadata request (its storage task is alive: after a
# panic in it, tansu 0.6.0 keeps its port open but answers nothing).
tansu_answers() {
    timeout 10 "$SLUICE_TANSU_BIN" topic list --broker "tcp://127.0.0.1:$SLUICE_KAFKA_PORT" >/dev/null 2>&1
}

start_tansu() {
    if pid_alive "$TSU/tansu.pid"; then
        if tansu_answers; then
            log "kafka (tansu): already running (pid $(cat "$TSU/tansu.pid")) on 127.0.0.1:$SLUICE_KAFKA_PORT"
            return
        fi
        log "kafka (tansu): running but not answering (its storage task died? see $TSU/tansu.log); restarting it"
        stop_pid "kafka (tansu)" "$TSU/tansu.pid" tansu
    fi
    port_taken_by_other "kafka (tansu)" "$SLUICE_KAFKA_PORT" "$TSU/tansu.pid"
    [ -x "$SLUICE_TANSU_BIN" ] || die "tansu is not installed: run scripts/stack.sh install"
    mkdir -p "$TSU"
    # Durable sqlite storage: topics, messages and committed offsets survive a
    # restart. tansu resolves the sqlite path against its working directory
    # (it drops the leading slash), hence `cd /`.
    # `exec` keeps the recorded pid that of tansu itself.
    # SLUICE_KAFKA_STORAGE=memory://tansu/ runs it in memory instead (nothing
    # survives a restart; for measuring what the storage engine costs).
    local storage=${SLUICE_KAFKA_STORAGE:-sqlite://$TSU/tansu.db}
    (cd / && exec setsid "$SLUICE_TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$SLUICE_KAFKA_PORT" \
        --advertised-listener-url "tcp://127.0.0.1:$SLUICE_KAFKA_PORT" \
        --storage-engine "$storage" \
        </dev/null >>"$TSU/tansu.log" 2>&1 4>&-) &
    echo $! >"$TSU/tansu.pid"
    wait_for "kafka (tansu): started on 127.0.0.1:$SLUICE_KAFKA_PORT (storage $storage)" 60 \
        tansu_ready || { tail -n 20 "$TSU/tansu.log" >&2; die "tansu did not start within 60s (log: $TSU/tansu.log)"; }
    [ "${storage%%:*}" = sqlite ] || return 0
    # tansu 0.6.0 keeps record headers in a table without an index and looks
    # them up once per fetched record (ddl/040-header.sql, sql/header_fetch.sql):
    # a full scan per record, ~10 ms at 120k headers, in the one task that
    # also serves every produce. Under a burst, fetches starve produces until
    # they time out. This index makes the lookup a seek (tansu uses it at
    # once; it survives restarts).
    sqlite3 -cmd ".timeout 10000" "$TSU/tansu.db" \
        "CREATE INDEX IF NOT EXISTS header_topition_offset_id ON header (topition, offset_id);" ||
        die "cannot index tansu's header table ($TSU/tansu.db)"
}

tansu_ready() {
    pid_alive "$TSU/tansu.pid" || { tail -n 5 "$TSU/tansu.log" >&4; die "tansu exited during start-up"; }
    port_open "$SLUICE_KAFKA_PORT"
}

# The broker does not auto-create topics: create the sluice ones explicitly.
create_topics() {
    local existing topic
    existing=$("$SLUICE_TANSU_BIN" topic list --broker "tcp://127.0.0.1:$SLUICE_KAFKA_PORT" 2>/dev/null || true)
    for topic in $SLUICE_TOPICS; do
        if grep -qF -- "\"name\":\"$topic\"" <<<"$existing"; then continue; fi
        # Transaction and heartbeat records keep their order in one partition.
        local parts=$SLUICE_TOPIC_PARTITIONS
        case "$topic" in *.transaction | *.heartbeat) parts=1 ;; esac
        "$SLUICE_TANSU_BIN" topic create "$topic" --partitions "$parts" \
            --broker "tcp://127.0.0.1:$SLUICE_KAFKA_PORT" >>"$TSU/topics.log" 2>&1 ||
            { tail -n 5 "$TSU/topics.log" >&2; die "could not create topic $topic"; }
        log "kafka (tansu): created topic $topic ($parts partitions)"
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
    stop_pid prometheus "$PRM/prometheus.pid" prometheus
    stop_pid "kafka (tansu)" "$TSU/tansu.pid" tansu
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

cmd_status() {
    show mariadb "$MDB/mariadbd.pid" "$SLUICE_MYSQL_PORT"
    show redis "$RDS/redis.pid" "$SLUICE_REDIS_PORT"
    show "kafka (tansu)" "$TSU/tansu.pid" "$SLUICE_KAFKA_PORT"
    show prometheus "$PRM/prometheus.pid" "$SLUICE_PROMETHEUS_PORT"
}

cmd_check() {
    pid_alive "$MDB/mariadbd.pid" && pid_alive "$RDS/redis.pid" && pid_alive "$TSU/tansu.pid" && tansu_answers &&
        pid_alive "$PRM/prometheus.pid" &&
        port_open "$SLUICE_MYSQL_PORT" && port_open "$SLUICE_REDIS_PORT" && port_open "$SLUICE_KAFKA_PORT" &&
        port_open "$SLUICE_PROMETHEUS_PORT"
}

cmd_up() {
    cmd_install
    mkdir -p "$SLUICE_STATE"
    start_mariadb
    start_redis
    start_tansu
    create_topics
    start_prometheus
    log "stack is up (state in $SLUICE_STATE):"
    log "  mariadb     mysql://root@127.0.0.1:$SLUICE_MYSQL_PORT/$SLUICE_DB"
    log "  redis       redis://127.0.0.1:$SLUICE_REDIS_PORT"
    log "  kafka       127.0.0.1:$SLUICE_KAFKA_PORT"
    log "  prometheus  http://127.0.0.1:$SLUICE_PROMETHEUS_PORT"
}

# Run the command only when executed (sourcing gives the functions, for debugging).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    case "${1:-}" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    check) cmd_check ;;
    restart-kafka)
        stop_pid "kafka (tansu)" "$TSU/tansu.pid" tansu
        start_tansu
        ;;
    restart-redis) # comes back empty (no persistence): run `cache-syncer rebuild`
        stop_pid redis "$RDS/redis.pid" redis-server
        start_redis
        ;;
    *) die "usage: $0 install|up|down|status|check|restart-kafka|restart-redis" ;;
    esac
fi

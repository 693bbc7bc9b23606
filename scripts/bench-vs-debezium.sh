#!/usr/bin/env bash
# `make bench-vs-debezium` (issue #20): sluice's relay beside Debezium's
# connector in Kafka Connect, over the same binlog ranges, to the stack's
# Apache Kafka broker. Needs the stack (`make up` or `scripts/stack.sh up`;
# stop the mesh for numbers worth recording: `scripts/mesh.sh down`) and the
# release relay (target/release/binlog-relay; built here when missing).
#
#   scripts/bench-vs-debezium.sh            # 1,000,000 batch rows, 20,000 small transactions
#   BENCH_ROWS=100000 BENCH_TXS=2000 scripts/bench-vs-debezium.sh
#
# Workloads (those of `make bench-relay`, binlog-relay/benches/relay.rs
# write_batch and write_mixed, restated here in SQL; change them together),
# each written into a fresh database and a binlog range of its own:
#   batch  BENCH_ROWS `counter` rows as 10,000-row INSERT ... SELECTs;
#   mixed  BENCH_TXS follow-shaped transactions from 4 writers (a `follow`
#          row inserted or its deleted_at flipped, two `counter` upserts: 3 rows).
# For each workload, one after the other:
#   1. Debezium is primed: a fresh connector (its own topic prefix, server id,
#      offsets file and schema-history topic) takes a schema-only snapshot
#      (snapshot.mode=no_data), which stores its offset at the binlog's end,
#      and is stopped. Then the workload is written, with nothing reading.
#   2. Debezium is started again and reads the workload from that offset;
#      it is stopped once every row is on its topics.
#   3. The relay runs over the same range (`run --from F:P --until F:P`)
#      and exits once everything is acknowledged.
# Both write to row-change topics created here beforehand with 6 partitions
# (the relay's default) and message.timestamp.type=LogAppendTime, so a
# message's timestamp is when the broker appended it: rows/s is counted
# from the first to the last message on the workload's two row topics.
# CPU: user+system seconds of the whole process (GNU time; the JVM's start
# and the connector's start-up included) and those within the first-to-last
# message window (/proc/<pid>/stat sampled every 0.2 s); peak RSS is the
# process's VmHWM (GNU time's maximum resident set size). Also shown: the
# time from the process's launch to its first message (the JVM's and
# Connect's start for Debezium).
#
# Debezium: io.debezium:debezium-connector-mariadb 3.5.0.Final, the newest
# MariaDB connector on Maven Central (SLUICE_DEBEZIUM_ARTIFACT and
# SLUICE_DEBEZIUM_VERSION choose another). Not 3.6.1.Final, Debezium's newest
# release: its MariaDB connector is not on Maven Central (the pom answers
# 404), and its MySQL connector (debezium-connector-mysql, which used to read
# MariaDB too) refuses MariaDB 10.11 at start-up: `SHOW BINARY LOG STATUS`
# fails there, and it takes VERSION() 10.11 for a MySQL at or above 8.4,
# which must have that statement (MySqlConnection.resolveBinaryLogStatusStatement).
# Kafka Connect (connect-runtime, connect-json) is the broker's version,
# SLUICE_KAFKA_VERSION. Jars come from Maven Central
# (scripts/debezium/connect-pom.xml and pom.xml) into the user cache, once.
#
# Settings: JsonConverter with schemas.enable=false for keys and values
# (sluice's envelope has no schema block), provide.transaction.metadata=true
# (sluice always writes BEGIN/END records and the envelope's transaction
# block), message.key.columns as the relay's default (counter by owner_id,
# follow by from_id,to_id), Kafka schema history, everything else Debezium's
# and Connect's defaults; the JVM options of Kafka's bin/connect-standalone.sh
# (-Xms256M -Xmx2G, G1); Connect's source-task producer as Connect sets it
# (acks=all, not idempotent, one request in flight, linger.ms 5). The relay:
# as `make bench-relay` runs it (release build, idempotent producer,
# acks=all, linger.ms 0).
#
# Environment: BENCH_ROWS (1000000), BENCH_TXS (20000), BENCH_DBZ_TIMEOUT
# (seconds a Debezium run may take, 900), BENCH_CONNECT_PORT (Connect's REST
# port, 18083), BENCH_RELAY (the relay binary, target/release/binlog-relay),
# BENCH_KEEP=1 keeps the database and topics, BENCH_VALUE_ENCODING=debezium
# runs the relay in its Debezium drop-in encoding (default sluice).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

ROWS=${BENCH_ROWS:-1000000}
TXS=${BENCH_TXS:-20000}
DBZ_TIMEOUT=${BENCH_DBZ_TIMEOUT:-900}
CONNECT_PORT=${BENCH_CONNECT_PORT:-18083}
[[ $ROWS =~ ^[1-9][0-9]*$ && $TXS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROWS and BENCH_TXS must be positive numbers"
# Debezium and Kafka Connect jars, the connector class (shared with
# scripts/parity-vs-debezium.sh).
# shellcheck source=scripts/debezium/common.sh
source "$ROOT/scripts/debezium/common.sh"
RELAY=${BENCH_RELAY:-$ROOT/target/release/binlog-relay}
KFK_DATA=$SLUICE_STATE/kafka/data
TICK=$(getconf CLK_TCK)

# ---------------------------------------------------------------- MariaDB
sql() { mariadb --no-defaults -h127.0.0.1 -P"$SLUICE_MYSQL_PORT" -uroot -N -B "$@"; }
position() { sql -e 'SHOW MASTER STATUS' | awk '{print $1 ":" $2}'; }

# The workloads of binlog-relay/benches/relay.rs (write_batch, write_mixed).
write_batch() { # db rows
    local done=0 n
    while [ "$done" -lt "$2" ]; do
        n=$(($2 - done < 10000 ? $2 - done : 10000))
        echo "INSERT INTO counter SELECT seq, 1, seq, NOW(6) FROM seq_$((done + 1))_to_$((done + n));"
        done=$((done + n))
    done | sql "$1"
}

write_mixed() { # db txs: 4 writers over 1,000 users
    local w per=$(($2 / 4)) pids=()
    for w in 0 1 2 3; do
        awk -v w="$w" -v per="$per" 'BEGIN {
            for (i = 0; i < per; i++) {
                n = w * per + i; f = n % 1000 + 1; t = (n * 7 + 3) % 1000 + 1
                print "START TRANSACTION;"
                print "INSERT INTO follow (from_id, to_id, created_at) VALUES (" f ", " t ", NOW(6)) ON DUPLICATE KEY UPDATE deleted_at = IF(deleted_at IS NULL, NOW(6), NULL);"
                print "INSERT INTO counter (owner_id, kind, value, updated_at) VALUES (" f + 10000000 ", 1, 1, NOW(6)), (" t + 10000000 ", 2, 1, NOW(6)) ON DUPLICATE KEY UPDATE value = value + 1, updated_at = NOW(6);"
                print "COMMIT;"
            } }' | sql "$1" &
        pids+=($!)
    done
    for w in "${pids[@]}"; do wait "$w" || die "a mixed-workload writer failed"; done
}

# ---------------------------------------------------------------- Kafka
topics_tool() { "$ROOT/scripts/kafka-tool.sh" topics "$@"; }

# The row-change topics of a prefix, created before the run with the
# broker's append time as the message timestamp.
create_row_topics() { # prefix...
    local p t pids=()
    for p in "$@"; do
        for t in counter follow; do
            topics_tool --create --topic "$p.$DB.$t" --partitions 6 --replication-factor 1 \
                --config message.timestamp.type=LogAppendTime >>"$RUN/topics.log" 2>&1 &
            pids+=($!)
        done
    done
    for p in "${pids[@]}"; do wait "$p" || { tail -n 5 "$RUN/topics.log" >&2; die "could not create the row topics"; }; done
}

# Messages on a prefix's two row topics as the broker's last high-watermark
# checkpoint (replication-offset-checkpoint, written every 5 s) has them:
# a progress reading that costs the measured processes nothing (a Kafka
# tool is a JVM start, seconds of CPU on these 2 cores).
acked() { # prefix
    awk -v c="$1.$DB.counter" -v f="$1.$DB.follow" '$1 == c || $1 == f {n += $3} END {print n + 0}' \
        "$KFK_DATA/replication-offset-checkpoint" 2>/dev/null || echo 0
}

# count first_ms last_ms of the messages on a prefix's two row topics.
topic_span() { # prefix expected
    local re="^${1//./\\.}\\.${DB}\\.(counter|follow)\$"
    "$ROOT/scripts/kafka-tool.sh" console-consumer --include "$re" --from-beginning \
        --max-messages "$2" --timeout-ms 20000 --property print.timestamp=true \
        --property print.key=false --property print.value=false 2>>"$RUN/consumer.log" |
        awk -F'[:\t ]' '/^LogAppendTime:/ { n++; t = $2 + 0; if (!lo || t < lo) lo = t; if (t > hi) hi = t }
            END { print n + 0, lo + 0, hi + 0 }' || true
}

# Mean key and value bytes of the first 20,000 messages of a topic.
mean_sizes() { # topic
    "$ROOT/scripts/kafka-tool.sh" console-consumer --topic "$1" --from-beginning \
        --max-messages 20000 --timeout-ms 20000 --property print.key=true \
        --property key.separator=$'\t' 2>>"$RUN/consumer.log" |
        awk -F'\t' '{ n++; k += length($1); v += length($2) } END { if (n) printf "%d %.0f %.0f\n", n, k / n, v / n; else print "0 0 0" }' || true
}

# ---------------------------------------------------------------- processes
# A measured process runs under GNU time (whole-process CPU and peak RSS);
# a sampler records its CPU ticks every 0.2 s for the message window.
MEASURED=() SAMPLERS=()
start_measured() { # name command...
    local name=$1 tpid pid
    shift
    (exec /usr/bin/time -f '%U %S %M' -o "$RUN/$name.time" "$@" >"$RUN/$name.log" 2>&1) &
    tpid=$!
    for _ in $(seq 1 50); do
        pid=$(ps -o pid= --ppid "$tpid" 2>/dev/null | head -n1 | tr -d ' ')
        [ -n "$pid" ] && break
        sleep 0.02
    done
    [ -n "$pid" ] || die "$name did not start"
    echo "$EPOCHREALTIME 0" >"$RUN/$name.cpu"
    (
        while read -r stat 2>/dev/null <"/proc/$pid/stat"; do
            read -ra f <<<"${stat##*) }" # fields from the 3rd on: utime is the 14th
            echo "$EPOCHREALTIME $((f[11] + f[12]))"
            sleep 0.2
        done >>"$RUN/$name.cpu"
    ) &
    SAMPLERS+=($!)
    MEASURED+=("$tpid:$pid")
    M_TPID=$tpid M_PID=$pid
}

stop_measured() { # tpid pid: SIGTERM, SIGKILL after 60 s; only while it is still time's child
    local tpid=$1 pid=$2 e keep=()
    if [ "$(ps -o ppid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$tpid" ]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid still running after 60 s: SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
        fi
    fi
    wait "$tpid" 2>/dev/null || true
    for e in "${MEASURED[@]}"; do [ "$e" = "$tpid:$pid" ] || keep+=("$e"); done
    MEASURED=("${keep[@]}")
}

cleanup() {
    local entry
    for entry in "${MEASURED[@]}"; do stop_measured "${entry%%:*}" "${entry##*:}"; done
    for entry in "${SAMPLERS[@]}"; do kill "$entry" 2>/dev/null || true; done
    if [ -n "${DB:-}" ] && [ "${BENCH_KEEP:-0}" != 1 ]; then
        topics_tool --delete --topic "vsdbz_${TAG}_.*" >>"$RUN/topics.log" 2>&1 || log "could not delete the topics vsdbz_${TAG}_*"
        sql -e "DROP DATABASE IF EXISTS \`$DB\`" || true
    fi
}

# CPU seconds of a sampled process between two epoch-ms times: from the last
# sample at or before the first to the first sample at or after the second.
window_cpu() { # name first_ms last_ms
    awk -v a="$2" -v b="$3" -v tick="$TICK" '{ t = $1 * 1000 }
        t <= a { lo = $2 } t >= b && hi == "" { hi = $2 } { last = $2 }
        END { if (hi == "") hi = last; printf "%.2f\n", (hi - lo) / tick }' "$RUN/$1.cpu"
}

# ---------------------------------------------------------------- Debezium
# Connect standalone: the worker's properties, then the connector's.
connect_config() { # prefix server_id
    local dir=$RUN/connect-$1
    mkdir -p "$dir"
    cat >"$dir/worker.properties" <<EOF
bootstrap.servers=$SLUICE_KAFKA_BROKERS
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=false
value.converter.schemas.enable=false
offset.storage.file.filename=$dir/offsets
offset.flush.interval.ms=10000
plugin.path=$DBZ_HOME/plugins
listeners=http://127.0.0.1:$CONNECT_PORT
EOF
    cat >"$dir/connector.properties" <<EOF
name=$1
connector.class=$DBZ_CLASS
tasks.max=1
database.hostname=127.0.0.1
database.port=$SLUICE_MYSQL_PORT
database.user=root
database.password=
database.ssl.mode=$DBZ_NO_TLS
database.server.id=$2
topic.prefix=$1
database.include.list=$DB
snapshot.mode=no_data
snapshot.locking.mode=none
schema.history.internal.kafka.bootstrap.servers=$SLUICE_KAFKA_BROKERS
schema.history.internal.kafka.topic=$1.schema-history
schema.history.internal.store.only.captured.databases.ddl=true
provide.transaction.metadata=true
message.key.columns=$DB.counter:owner_id;$DB.follow:from_id,to_id
topic.creation.default.replication.factor=1
topic.creation.default.partitions=1
EOF
}

start_connect() { # name prefix
    local dir=$RUN/connect-$2
    start_measured "$1" java -Xms256M -Xmx2G -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" -Dsluice.kafka.log="$dir/connect.log" \
        -cp "$CONNECT_HOME/libs/*" org.apache.kafka.connect.cli.ConnectStandalone \
        "$dir/worker.properties" "$dir/connector.properties"
}

# The connector or its task FAILED, as Connect's REST API says (its trace shown).
connector_failed() { # name
    local status
    status=$(curl -fsS -m 2 "http://127.0.0.1:$CONNECT_PORT/connectors/$1/status" 2>/dev/null) || return 1
    [[ $status == *'"state":"FAILED"'* ]] || return 1
    printf '%s\n' "$status" | sed 's/\\n/\n/g; s/\\t/  /g' | head -n 20 >&2
}

# A fresh connector's schema-only snapshot: its offset is then the binlog's end.
prime_debezium() { # prefix server_id
    local deadline=$((SECONDS + 180))
    connect_config "$1" "$2"
    start_connect "prime-$1" "$1"
    local tpid=$M_TPID pid=$M_PID log=$RUN/connect-$1/connect.log
    until grep -q -E 'Connected to binlog at|Keepalive thread is running' "$log" 2>/dev/null; do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "Kafka Connect exited while priming $1 (log: $log)"; }
        connector_failed "$1" && { stop_measured "$tpid" "$pid"; die "Debezium failed while priming $1 (log: $log)"; }
        [ $SECONDS -lt $deadline ] || { tail -n 30 "$log" >&2; die "Debezium did not reach the binlog within 180 s (log: $log)"; }
        sleep 0.5
    done
    stop_measured "$tpid" "$pid"
    [ -s "$RUN/connect-$1/offsets" ] || die "Debezium stored no offset while priming $1 (log: $log)"
    log "debezium $1: primed (schema-only snapshot, offset stored)"
}

# Debezium reads the workload from its primed offset until every row is on
# its topics; then it is stopped.
run_debezium() { # name prefix rows
    local deadline=$((SECONDS + DBZ_TIMEOUT)) n=0 last=0 still=$SECONDS log=$RUN/connect-$2/connect.log
    start_connect "$1" "$2"
    local tpid=$M_TPID pid=$M_PID
    while n=$(acked "$2") && [ "$n" -lt "$3" ]; do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$log" >&2; die "Kafka Connect exited during $1 (log: $log)"; }
        [ "$n" != "$last" ] && { last=$n still=$SECONDS; }
        ! connector_failed "$2" || { stop_measured "$tpid" "$pid"; die "Debezium failed during $1 (log: $log)"; }
        [ $((SECONDS - still)) -lt 120 ] || { tail -n 30 "$log" >&2; die "$1: no progress for 120 s at $n of $3 rows (log: $log)"; }
        [ $SECONDS -lt $deadline ] || die "$1: $n of $3 rows after BENCH_DBZ_TIMEOUT=$DBZ_TIMEOUT s; try fewer BENCH_ROWS (log: $log)"
        sleep 1
    done
    stop_measured "$tpid" "$pid"
}

# ---------------------------------------------------------------- relay
run_relay() { # name prefix from until
    start_measured "$1" env SLUICE_DEV=true RELAY_MYSQL__URL="$SLUICE_MYSQL_URL/$DB" \
        RELAY_MYSQL__MAX_CONNECTIONS=3 RELAY_KAFKA__BROKERS="$SLUICE_KAFKA_BROKERS" \
        RELAY_KAFKA__TOPIC_PREFIX="$2" RELAY_ADMIN__ADDR=127.0.0.1:0 \
        RELAY_SERVER_ID=$((800000 + TAG % 100000)) RELAY_STATE_DIR="$RUN/relay-$2" \
        RELAY_DEBEZIUM__VALUE_ENCODING="${BENCH_VALUE_ENCODING:-sluice}" \
        RELAY_FILTER__INCLUDE_DATABASES="[\"$DB\"]" "$RELAY" run --from "$3" --until "$4"
    local rc=0
    wait "$M_TPID" || rc=$?
    stop_measured "$M_TPID" "$M_PID"
    [ "$rc" = 0 ] || { tail -n 20 "$RUN/$1.log" >&2; die "the relay failed over $3 .. $4 (log: $RUN/$1.log)"; }
}

# ---------------------------------------------------------------- results
RESULTS=()
measure() { # workload tool name prefix rows
    local span n first last secs start t user sys rss
    span=$(topic_span "$4" "$5")
    read -r n first last <<<"$span"
    [ "$n" = "$5" ] || log "warning: $2 $1: $n messages on the row topics, $5 rows written"
    secs=$(awk -v a="$first" -v b="$last" 'BEGIN { printf "%.3f", (b - a) / 1000 }')
    read -r start _ <"$RUN/$3.cpu" # the launch
    # GNU time writes a "Command terminated by signal" line first for a killed JVM.
    read -r user sys rss < <(grep -E '^[0-9.]+ [0-9.]+ [0-9]+$' "$RUN/$3.time")
    t=$(window_cpu "$3" "$first" "$last")
    RESULTS+=("$(awk -v w="$1" -v tool="$2" -v n="$n" -v s="$secs" -v u="$user" -v sy="$sys" -v win="$t" \
        -v rss="$rss" -v up="$(awk -v a="$first" -v b="$start" 'BEGIN { printf "%.1f", a / 1000 - b }')" 'BEGIN {
        rate = s > 0 ? n / s : 0
        printf "| %s | %s | %d | %.0f | %.2f | %.1f | %.1f | %.1f | %.0f |\n", w, tool, n, rate, s, up, (u + sy) / n * 1e6, win / n * 1e6, rss / 1024 }')")
    log "$2, $1: ${RESULTS[-1]}"
}

# ---------------------------------------------------------------- run
install_jars
"$ROOT/scripts/stack.sh" check || die "the stack is not running: scripts/stack.sh up (or make up)"
[ -f "$KFK_DATA/replication-offset-checkpoint" ] || die "no $KFK_DATA/replication-offset-checkpoint: is the broker the stack's?"
[ -x /usr/bin/time ] || die "GNU time is not installed (apt-get install time)"
! (exec 3<>"/dev/tcp/127.0.0.1/$CONNECT_PORT") 2>/dev/null || die "port $CONNECT_PORT is taken: set BENCH_CONNECT_PORT"
if [ ! -x "$RELAY" ]; then
    [ -z "${BENCH_RELAY:-}" ] || die "BENCH_RELAY=$BENCH_RELAY is not an executable"
    log "building the release relay (cargo build --release -p binlog-relay)"
    cargo build --release -p binlog-relay
fi

TAG=$$
DB=vsdbz_$TAG
RUN=$SLUICE_STATE/bench-vs-debezium/$TAG
mkdir -p "$RUN"
trap cleanup EXIT
log "run $TAG: database $DB, logs in $RUN"
sql -e "CREATE DATABASE \`$DB\`"
sql "$DB" <<'SQL'
CREATE TABLE counter (owner_id BIGINT UNSIGNED NOT NULL, kind TINYINT UNSIGNED NOT NULL,
    value BIGINT NOT NULL, updated_at DATETIME(6) NOT NULL, PRIMARY KEY (owner_id, kind));
CREATE TABLE follow (from_id BIGINT UNSIGNED NOT NULL, to_id BIGINT UNSIGNED NOT NULL,
    created_at DATETIME(6) NOT NULL, deleted_at DATETIME(6) NULL, PRIMARY KEY (from_id, to_id));
SQL

SIZES=() SERVER_ID=$((700000 + TAG % 100000))
for workload in batch mixed; do
    w=${workload:0:1}
    sp=vsdbz_${TAG}_sluice_$w dp=vsdbz_${TAG}_dbz_$w
    create_row_topics "$sp" "$dp"
    SERVER_ID=$((SERVER_ID + 1))
    prime_debezium "$dp" "$SERVER_ID"
    sql -e 'FLUSH BINARY LOGS'
    from=$(position)
    t0=$SECONDS
    if [ "$workload" = batch ]; then
        write_batch "$DB" "$ROWS"
        rows=$ROWS
    else
        write_mixed "$DB" "$TXS"
        rows=$((TXS / 4 * 4 * 3))
    fi
    to=$(position)
    log "$workload: wrote $rows rows in $((SECONDS - t0)) s ($from .. $to)"
    run_debezium "debezium-$workload" "$dp" "$rows"
    measure "$workload" Debezium "debezium-$workload" "$dp" "$rows"
    run_relay "relay-$workload" "$sp" "$from" "$to"
    measure "$workload" "sluice relay" "relay-$workload" "$sp" "$rows"
    if [ "$workload" = batch ]; then
        SIZES+=("sluice relay: $(mean_sizes "$sp.$DB.counter")" "Debezium: $(mean_sizes "$dp.$DB.counter")")
    fi
done

echo
echo "Batch: $ROWS rows; mixed: $TXS transactions ($((TXS / 4 * 4 * 3)) rows). Apache Kafka $SLUICE_KAFKA_VERSION," \
    "Kafka Connect $SLUICE_KAFKA_VERSION standalone, $SLUICE_DEBEZIUM_ARTIFACT $SLUICE_DEBEZIUM_VERSION" \
    "(JsonConverter, schemas.enable=false), $(java -version 2>&1 | head -n1)."
echo
echo "| workload | process | messages | rows/s (first → last message) | first → last message, s | start → first message, s | CPU s per M rows (whole process) | CPU s per M rows (message window) | peak RSS MiB |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${RESULTS[@]}"
echo
echo "Mean message size on the batch's counter topic (first 20,000 messages: messages, key bytes, value bytes):"
printf '  %s\n' "${SIZES[0]}" "${SIZES[1]}"

#!/usr/bin/env bash
# `make parity-vs-debezium` (issue #20): Debezium's MariaDB connector (in
# Kafka Connect) and the relay's drop-in encoding
# (`--value-encoding debezium`) over the same binlog range, their topics
# compared message by message: key, op, before, after, the comparable
# source fields, tombstones, the transaction topic, and (both with
# JsonConverter's schemas.enable=true) every key and value schema. The
# range holds every column type the relay documents: extremes, NULLs, zero
# dates, emoji, a 70 KB text, a composite key, a table without a key,
# updates, deletes and a primary-key change. Then a Kafka Connect sink
# (Debezium's JDBC sink connector) reads the relay's topics with the schema
# block into a second database, whose tables must equal the source's.
#
#   scripts/parity-vs-debezium.sh        # fetches the jars once (Maven Central)
#   PARITY_IF_CACHED=1 scripts/parity-vs-debezium.sh   # skip (exit 0, saying so) without cached jars
#
# Needs the stack (`make up` or `scripts/stack.sh up`). Differences the
# README lists as explained are reported as such; any other fails the run
# (exit 1). Environment: PARITY_CONNECT_PORT (18084), PARITY_RELAY (the
# relay binary; target/debug/binlog-relay, built when missing),
# PARITY_KEEP=1 keeps the database, topics and dumps.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/env.sh
source "$ROOT/scripts/env.sh"
cd "$ROOT"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# shellcheck source=scripts/debezium/common.sh
source "$ROOT/scripts/debezium/common.sh"
CONNECT_PORT=${PARITY_CONNECT_PORT:-18084}
RELAY=${PARITY_RELAY:-$ROOT/target/debug/binlog-relay}

if [ "${PARITY_IF_CACHED:-0}" = 1 ] && ! jars_cached; then
    log "parity-vs-debezium: SKIPPED: the Kafka Connect and Debezium jars are not in $SLUICE_CACHE" \
        "(run scripts/parity-vs-debezium.sh once with Maven Central reachable to fetch them)"
    exit 0
fi
install_jars
install_sink_jars
"$ROOT/scripts/stack.sh" check || die "the stack is not running: scripts/stack.sh up (or make up)"
! (exec 3<>"/dev/tcp/127.0.0.1/$CONNECT_PORT") 2>/dev/null || die "port $CONNECT_PORT is taken: set PARITY_CONNECT_PORT"
if [ ! -x "$RELAY" ]; then
    [ -z "${PARITY_RELAY:-}" ] || die "PARITY_RELAY=$PARITY_RELAY is not an executable"
    log "building the relay (cargo build -p binlog-relay)"
    cargo build -q -p binlog-relay
fi

sql() { mariadb --no-defaults --default-character-set=utf8mb4 -h127.0.0.1 -P"$SLUICE_MYSQL_PORT" -uroot -N -B "$@"; }
position() { sql -e 'SHOW MASTER STATUS' | awk '{print $1 ":" $2}'; }
topics_tool() { "$ROOT/scripts/kafka-tool.sh" topics "$@"; }

TAG=$$
DB=dbzpar_$TAG
SINK_DB=dbzsink_$TAG
RUN=$SLUICE_STATE/parity-vs-debezium/$TAG
# Both sides run twice: with the schema block (JsonConverter's
# schemas.enable=true, the relay's debezium.schemas_enable) and without.
MODES="schema bare"
sp() { echo "dbzpar_${TAG}_sluice_$1"; }
dp() { echo "dbzpar_${TAG}_dbz_$1"; }
schemas() { [ "$1" = schema ] && echo true || echo false; }
CONNECT_PID=
mkdir -p "$RUN"
cleanup() {
    [ -z "$CONNECT_PID" ] || { kill "$CONNECT_PID" 2>/dev/null || true; wait "$CONNECT_PID" 2>/dev/null || true; }
    if [ "${PARITY_KEEP:-0}" != 1 ]; then
        topics_tool --delete --topic "dbzpar_${TAG}_.*" >>"$RUN/topics.log" 2>&1 || true
        sql -e "DROP DATABASE IF EXISTS \`$DB\`" || true
        sql -e "DROP DATABASE IF EXISTS \`$SINK_DB\`" || true
    fi
}
trap cleanup EXIT
log "parity run $TAG: database $DB, dumps and logs in $RUN"

TABLES="kinds pair nokey sinkable"
sql -e "CREATE DATABASE \`$DB\`"
sql "$DB" <<'SQL'
CREATE TABLE kinds (
  id INT NOT NULL PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED,
  dec1 DECIMAL(10,2), dec2 DECIMAL(65,30), f FLOAT, d DOUBLE,
  dt0 DATETIME, dt3 DATETIME(3), dt6 DATETIME(6),
  ts0 TIMESTAMP NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL,
  dd DATE, t0 TIME, t6 TIME(6), y YEAR,
  b1 BIT(1), b12 BIT(12), b64 BIT(64),
  c CHAR(10), vc VARCHAR(100), txt TEXT, mtxt MEDIUMTEXT,
  bin BINARY(4), vbin VARBINARY(16), blb BLOB,
  e ENUM('a','b','c'), st SET('x','y','z'),
  j JSON, g GEOMETRY NULL
) DEFAULT CHARSET=utf8mb4;
CREATE TABLE pair (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT, PRIMARY KEY (a, b)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE nokey (x INT, y VARCHAR(10)) DEFAULT CHARSET=utf8mb4;
-- Common types with values a JDBC sink stores as they are (kinds has
-- extremes no sink column takes: TIME beyond a day, 65-digit DECIMALs,
-- BIGINT UNSIGNED above 2^63, which Debezium sends wrapped).
CREATE TABLE sinkable (id INT NOT NULL PRIMARY KEY, n BIGINT, u INT UNSIGNED, amount DECIMAL(12,3),
  f DOUBLE, at DATETIME(6), at0 DATETIME, d DATE, t TIME(3), y YEAR, flag BIT(1), name VARCHAR(40),
  note TEXT, raw VARBINARY(8), e ENUM('a','b'), j JSON) DEFAULT CHARSET=utf8mb4;
SQL

# ---------------------------------------------------------------- Debezium
connect_config() { # mode
    local dir=$RUN/connect-$1 p
    p=$(dp "$1")
    mkdir -p "$dir"
    cat >"$dir/worker.properties" <<EOF
bootstrap.servers=$SLUICE_KAFKA_BROKERS
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=$(schemas "$1")
value.converter.schemas.enable=$(schemas "$1")
offset.storage.file.filename=$dir/offsets
offset.flush.interval.ms=1000
plugin.path=$DBZ_HOME/plugins
listeners=http://127.0.0.1:$CONNECT_PORT
EOF
    cat >"$dir/connector.properties" <<EOF
name=$p
connector.class=$DBZ_CLASS
tasks.max=1
database.hostname=127.0.0.1
database.port=$SLUICE_MYSQL_PORT
database.user=root
database.password=
database.ssl.mode=$DBZ_NO_TLS
database.server.id=$((700000 + TAG % 100000 + ${#1}))
topic.prefix=$p
database.include.list=$DB
snapshot.mode=no_data
snapshot.locking.mode=none
schema.history.internal.kafka.bootstrap.servers=$SLUICE_KAFKA_BROKERS
schema.history.internal.kafka.topic=$p.schema-history
schema.history.internal.store.only.captured.databases.ddl=true
provide.transaction.metadata=true
topic.creation.default.replication.factor=1
topic.creation.default.partitions=1
EOF
}

start_connect() { # mode
    local dir=$RUN/connect-$1
    java -Xms256M -Xmx1G -XX:+UseG1GC -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" -Dsluice.kafka.log="$dir/connect.log" \
        -cp "$CONNECT_HOME/libs/*" org.apache.kafka.connect.cli.ConnectStandalone \
        "$dir/worker.properties" "$dir/connector.properties" >>"$dir/stdout.log" 2>&1 &
    CONNECT_PID=$!
}
stop_connect() {
    kill "$CONNECT_PID" 2>/dev/null || true
    wait "$CONNECT_PID" 2>/dev/null || true
    CONNECT_PID=
}
connector_failed() { # mode
    local status
    status=$(curl -fsS -m 2 "http://127.0.0.1:$CONNECT_PORT/connectors/$(dp "$1")/status" 2>/dev/null) || return 1
    [[ $status == *'"state":"FAILED"'* ]] || return 1
    printf '%s\n' "$status" | sed 's/\\n/\n/g; s/\\t/  /g' | head -n 20 >&2
}

# A schema-only snapshot stores each connector's offset at the binlog's end.
for m in $MODES; do
    connect_config "$m"
    start_connect "$m"
    clog=$RUN/connect-$m/connect.log
    deadline=$((SECONDS + 180))
    until grep -q -E 'Connected to binlog at|Keepalive thread is running' "$clog" 2>/dev/null; do
        kill -0 "$CONNECT_PID" 2>/dev/null || { tail -n 30 "$clog" >&2; die "Kafka Connect exited while priming"; }
        ! connector_failed "$m" || die "Debezium failed while priming (log: $clog)"
        [ $SECONDS -lt $deadline ] || die "Debezium did not reach the binlog within 180 s (log: $clog)"
        sleep 0.5
    done
    stop_connect
    log "debezium ($m): primed (schema-only snapshot)"
done

# ---------------------------------------------------------------- the range
for m in $MODES; do
    for p in "$(sp "$m")" "$(dp "$m")"; do
        for t in $TABLES; do
            topics_tool --create --if-not-exists --topic "$p.$DB.$t" --partitions 1 --replication-factor 1 >>"$RUN/topics.log" 2>&1
        done
        topics_tool --create --if-not-exists --topic "$p.transaction" --partitions 1 --replication-factor 1 >>"$RUN/topics.log" 2>&1
    done
done
sql -e 'FLUSH BINARY LOGS'
from=$(position)
long_text=$(head -c 70000 /dev/zero | tr '\0' 'x')
sql "$DB" <<SQL
SET time_zone = '+00:00';
INSERT INTO kinds (id) VALUES (1);
INSERT INTO kinds VALUES (2, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
  9223372036854775807, 18446744073709551615, 99999999.99, 99999999999999999999999999999999999.999999999999999999999999999999,
  3.4e38, 1.7976931348623157e308, '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999',
  '2038-01-19 03:14:07', '2038-01-19 03:14:07.999999', '9999-12-31', '838:59:59', '838:59:59.000000', 2155,
  b'1', b'111111111111', b'1111111111111111111111111111111111111111111111111111111111111111',
  'emoji 🎉', 'héllo wörld ✓', 'text', 'medium', x'00ff10ee', x'deadbeef', x'000102', 'c', 'x,z',
  '{"k": [1, 2, {"z": null}], "a": "é"}', ST_GeomFromText('POINT(1 2)'));
INSERT INTO kinds VALUES (3, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0,
  -9223372036854775808, 0, -99999999.99, -0.000000000000000000000000000001,
  -1.5, -2.2250738585072014e-308, '1000-01-01 00:00:00', '1000-01-01 00:00:00.001', '1000-01-01 00:00:00.000001',
  '1970-01-01 00:00:01', '1970-01-01 00:00:01.000001', '1000-01-01', '-838:59:59', '-00:00:00.000001', 1901,
  b'0', b'000000000001', b'0', '', '', '', '', x'00000000', x'', x'', 'a', '', '[]', NULL);
SET SESSION sql_mode = '';
INSERT INTO kinds (id, dt0, dt6, dd) VALUES (4, '0000-00-00 00:00:00', '0000-00-00 00:00:00.000000', '0000-00-00');
SET SESSION sql_mode = DEFAULT;
INSERT INTO kinds (id, mtxt) VALUES (5, '$long_text');
UPDATE kinds SET vc = 'changed', d = 0.1, dt6 = '2026-12-01 06:36:11.106207' WHERE id = 2;
DELETE FROM kinds WHERE id = 3;
UPDATE kinds SET id = 6 WHERE id = 5;
INSERT INTO pair VALUES (1, 'one', 10), (1, 'two', 20);
UPDATE pair SET v = v + 1 WHERE a = 1;
UPDATE pair SET b = 'three' WHERE a = 1 AND b = 'one';
DELETE FROM pair WHERE b = 'two';
INSERT INTO nokey VALUES (1, 'a'), (2, NULL);
UPDATE nokey SET y = 'b' WHERE x = 1;
DELETE FROM nokey WHERE x = 2;
INSERT INTO sinkable VALUES (1, -42, 4000000000, 123456789.125, 2.5, '2026-12-01 06:36:11.106207',
  '2026-12-01 06:36:11', '2026-12-01', '12:34:56.789', 2026, b'1', 'héllo 🎉', 'text', x'00ff', 'b', '{"a": 1}'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
UPDATE sinkable SET name = 'changed', amount = -0.5 WHERE id = 1;
INSERT INTO sinkable (id, name) VALUES (3, 'gone');
DELETE FROM sinkable WHERE id = 3;
SQL
to=$(position)
log "range: $from .. $to"

# ---------------------------------------------------------------- both read it
# The range's 19 source transactions each end with an END record on the
# transaction topic, after all their row messages and tombstones: Debezium
# is done with the range when it has sent 38 transaction records.
TX_RECORDS=38
count() { # topic
    "$ROOT/scripts/kafka-tool.sh" get-offsets --topic "$1" 2>/dev/null | awk -F: '{n += $3} END {print n + 0}'
}
dump() { # topic file
    "$ROOT/scripts/kafka-tool.sh" console-consumer --topic "$1" --from-beginning --timeout-ms 15000 \
        --isolation-level read_committed --property print.key=true --property key.separator=$'\t' \
        --property print.headers=false >"$2" 2>>"$RUN/consumer.log" || true
}
status=0
for m in $MODES; do
    S=$(sp "$m") D=$(dp "$m")
    start_connect "$m"
    deadline=$((SECONDS + 300))
    until [ "$(count "$D.transaction")" -ge "$TX_RECORDS" ]; do
        kill -0 "$CONNECT_PID" 2>/dev/null || { tail -n 30 "$RUN/connect-$m/connect.log" >&2; die "Kafka Connect exited"; }
        ! connector_failed "$m" || die "Debezium failed (log: $RUN/connect-$m/connect.log)"
        [ $SECONDS -lt $deadline ] || die "Debezium ($m): $(count "$D.transaction") of $TX_RECORDS transaction records after 300 s"
        sleep 1
    done
    stop_connect
    log "debezium ($m): done"

    env SLUICE_DEV=true RELAY_MYSQL__URL="$SLUICE_MYSQL_URL/$DB" RELAY_MYSQL__MAX_CONNECTIONS=3 \
        RELAY_KAFKA__BROKERS="$SLUICE_KAFKA_BROKERS" RELAY_KAFKA__TOPIC_PREFIX="$S" RELAY_ADMIN__ADDR=127.0.0.1:0 \
        RELAY_SERVER_ID=$((800000 + TAG % 100000 + ${#m})) RELAY_STATE_DIR="$RUN/relay-$m" RELAY_TOPIC_PARTITIONS=1 \
        RELAY_MESSAGE_KEY_COLUMNS= RELAY_DEBEZIUM__VALUE_ENCODING=debezium RELAY_DEBEZIUM__SCHEMAS_ENABLE="$(schemas "$m")" \
        RELAY_FILTER__INCLUDE_DATABASES="[\"$DB\"]" "$RELAY" run --from "$from" --until "$to" >"$RUN/relay-$m.log" 2>&1 ||
        { tail -n 20 "$RUN/relay-$m.log" >&2; die "the relay failed over $from .. $to (log: $RUN/relay-$m.log)"; }
    log "relay ($m): done"

    mkdir -p "$RUN/$m"
    for t in $TABLES transaction; do
        case $t in transaction) s=$S.transaction d=$D.transaction ;; *) s=$S.$DB.$t d=$D.$DB.$t ;; esac
        dump "$s" "$RUN/$m/sluice.$t.tsv"
        dump "$d" "$RUN/$m/debezium.$t.tsv"
    done
    echo "== $m (schemas.enable=$(schemas "$m")) =="
    python3 "$ROOT/scripts/debezium/parity.py" --sluice-prefix "$S" --debezium-prefix "$D" --dir "$RUN/$m" $TABLES ||
        status=1
done
# ---------------------------------------------------------------- a sink reads it
# A Kafka Connect sink built for Debezium's format, Debezium's own JDBC sink
# connector, reads the relay's drop-in topics with the schema block into a
# second database; its tables must then hold the source's rows.
S=$(sp schema)
sql -e "CREATE DATABASE \`$SINK_DB\`"
mkdir -p "$RUN/sink"
cat >"$RUN/sink/worker.properties" <<EOF
bootstrap.servers=$SLUICE_KAFKA_BROKERS
key.converter=org.apache.kafka.connect.json.JsonConverter
value.converter=org.apache.kafka.connect.json.JsonConverter
key.converter.schemas.enable=true
value.converter.schemas.enable=true
offset.storage.file.filename=$RUN/sink/offsets
plugin.path=$DBZ_HOME/plugins
listeners=http://127.0.0.1:$CONNECT_PORT
consumer.isolation.level=read_committed
consumer.auto.offset.reset=earliest
# One record per batch: in one batch the JDBC sink 3.5.0 runs a key's final
# delete before the insert that creates the table (Table ... doesn't exist).
consumer.max.poll.records=1
EOF
cat >"$RUN/sink/connector.properties" <<EOF
name=$SINK_DB
connector.class=io.debezium.connector.jdbc.JdbcSinkConnector
tasks.max=1
topics=$S.$DB.sinkable,$S.$DB.pair
connection.url=jdbc:mariadb://127.0.0.1:$SLUICE_MYSQL_PORT/$SINK_DB
connection.username=root
connection.password=
insert.mode=upsert
delete.enabled=true
primary.key.mode=record_key
schema.evolution=basic
batch.size=1
# Names no other database on the server has: the sink asks the driver
# whether a table exists without naming the database.
collection.name.format=sink_\${source.table}
EOF
java -Xms256M -Xmx1G -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" -Dsluice.kafka.log="$RUN/sink/connect.log" \
    -cp "$CONNECT_HOME/libs/*" org.apache.kafka.connect.cli.ConnectStandalone \
    "$RUN/sink/worker.properties" "$RUN/sink/connector.properties" >>"$RUN/sink/stdout.log" 2>&1 &
CONNECT_PID=$!
# A source table as text, row by row in key order, each column in one
# spelling whatever its type on either side (the sink creates its own
# columns from the Connect schema: DATETIME(6) for every DATETIME, BLOB for
# binary strings): temporal values with six fraction digits, binary ones and
# BITs as numbers or hex, geometry as WKT. Zero dates read as NULL: Debezium
# sends them as null (documented in the README). In the sink database the
# table is sink_<table>.
table_text() { # db table key
    local cols name=$2
    [ "$1" = "$SINK_DB" ] && name=sink_$2
    cols=$(sql -e "SELECT GROUP_CONCAT(CASE
            WHEN DATA_TYPE = 'geometry' THEN CONCAT('ST_AsText(\`', COLUMN_NAME, '\`)')
            WHEN DATA_TYPE = 'bit' THEN CONCAT('CAST(\`', COLUMN_NAME, '\` + 0 AS CHAR)')
            WHEN DATA_TYPE IN ('binary', 'varbinary', 'tinyblob', 'blob', 'mediumblob', 'longblob')
                THEN CONCAT('HEX(\`', COLUMN_NAME, '\`)')
            WHEN DATA_TYPE IN ('datetime', 'timestamp') THEN CONCAT('NULLIF(DATE_FORMAT(\`', COLUMN_NAME,
                '\`, ''%Y-%m-%d %H:%i:%s.%f''), ''0000-00-00 00:00:00.000000'')')
            WHEN DATA_TYPE = 'date' THEN CONCAT('NULLIF(CAST(\`', COLUMN_NAME, '\` AS CHAR), ''0000-00-00'')')
            WHEN DATA_TYPE = 'time' THEN CONCAT('TIME_FORMAT(\`', COLUMN_NAME, '\`, ''%H:%i:%s.%f'')')
            ELSE CONCAT('CAST(\`', COLUMN_NAME, '\` AS CHAR)') END ORDER BY ORDINAL_POSITION)
        FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '$DB' AND TABLE_NAME = '$2'")
    sql --batch -e "SELECT $cols FROM \`$1\`.\`$name\` ORDER BY $3"
}
deadline=$((SECONDS + 180))
sink_ok=0
while [ $SECONDS -lt $deadline ]; do
    kill -0 "$CONNECT_PID" 2>/dev/null || { tail -n 30 "$RUN/sink/connect.log" >&2; die "the sink's Kafka Connect exited"; }
    if curl -fsS -m 2 "http://127.0.0.1:$CONNECT_PORT/connectors/$SINK_DB/status" 2>/dev/null | grep -q '"state":"FAILED"'; then
        curl -fsS -m 2 "http://127.0.0.1:$CONNECT_PORT/connectors/$SINK_DB/status" | sed 's/\\n/\n/g' | head -n 20 >&2
        die "the JDBC sink failed (log: $RUN/sink/connect.log)"
    fi
    same=1
    for tk in "sinkable id" "pair a,b"; do
        set -- $tk
        [ "$(table_text "$DB" "$1" "$2")" = "$(table_text "$SINK_DB" "$1" "$2" 2>/dev/null)" ] || same=0
    done
    [ $same = 1 ] && { sink_ok=1; break; }
    sleep 1
done
stop_connect
echo "== sink: Debezium's JDBC sink connector, the relay's drop-in topics with the schema block -> $SINK_DB =="
for tk in "sinkable id" "pair a,b"; do
    set -- $tk
    table_text "$DB" "$1" "$2" >"$RUN/sink/source.$1.tsv"
    table_text "$SINK_DB" "$1" "$2" >"$RUN/sink/sink.$1.tsv" || true
    [ -s "$RUN/sink/source.$1.tsv" ] || die "no rows read from the source's $1"
    if cmp -s "$RUN/sink/source.$1.tsv" "$RUN/sink/sink.$1.tsv"; then
        echo "$1: $(wc -l <"$RUN/sink/source.$1.tsv") rows, every column equal to the source"
    else
        echo "$1: DIFFERENT from the source:"
        diff "$RUN/sink/source.$1.tsv" "$RUN/sink/sink.$1.tsv" | cut -c1-300 | head -n 20
        status=1
    fi
done
[ $sink_ok = 1 ] || status=1
exit $status

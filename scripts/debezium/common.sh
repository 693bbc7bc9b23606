# Shared by scripts/bench-vs-debezium.sh and scripts/parity-vs-debezium.sh
# (sourced after scripts/env.sh, with ROOT, log and die defined): the pinned
# Debezium connector and Kafka Connect, their jars fetched with Maven into
# the user cache once (install_jars), and the connector's class.
export SLUICE_DEBEZIUM_VERSION=${SLUICE_DEBEZIUM_VERSION:-3.5.0.Final}
export SLUICE_DEBEZIUM_ARTIFACT=${SLUICE_DEBEZIUM_ARTIFACT:-debezium-connector-mariadb}
CONNECT_HOME=$SLUICE_CACHE/kafka-connect-$SLUICE_KAFKA_VERSION
DBZ_HOME=$SLUICE_CACHE/debezium-$SLUICE_DEBEZIUM_VERSION
DBZ_PLUGIN=$DBZ_HOME/plugins/$SLUICE_DEBEZIUM_ARTIFACT
case "$SLUICE_DEBEZIUM_ARTIFACT" in
debezium-connector-mysql) DBZ_CLASS=io.debezium.connector.mysql.MySqlConnector DBZ_NO_TLS=disabled ;;
debezium-connector-mariadb) DBZ_CLASS=io.debezium.connector.mariadb.MariaDbConnector DBZ_NO_TLS=disable ;;
*) die "SLUICE_DEBEZIUM_ARTIFACT must be debezium-connector-mysql or debezium-connector-mariadb" ;;
esac

# ---------------------------------------------------------------- jars
# Maven copies a pom's runtime jars into one folder of the user cache, once
# (its own download is kept in $SLUICE_CACHE/m2, as for the broker's jars);
# a folder that holds them is used as it is.
fetch_jars() { # what pom folder log [extra mvn args...]
    local what=$1 pom=$2 dir=$3 flog=$4
    shift 4
    if [ -f "$dir/.complete" ]; then
        log "$what: using cached jars in $dir"
        return
    fi
    command -v mvn >/dev/null || die "maven is not installed (apt-get install maven)"
    log "$what: fetching the jars from Maven Central into $dir (first time only)"
    mkdir -p "$(dirname "$dir")"
    rm -rf "$dir.partial"
    if ! mvn -B -q -f "$pom" -Dmaven.repo.local="$SLUICE_CACHE/m2" "$@" dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$dir.partial" >"$flog" 2>&1; then
        tail -n 30 "$flog" >&2
        die "$what: fetching with Maven failed (log: $flog)"
    fi
    touch "$dir.partial/.complete"
    rm -rf "$dir"
    mv "$dir.partial" "$dir"
    log "$what: $(find "$dir" -name '*.jar' | wc -l) jars in $dir"
}

install_jars() {
    command -v java >/dev/null || die "java is not installed (scripts/stack.sh install brings OpenJDK 17)"
    fetch_jars "kafka connect $SLUICE_KAFKA_VERSION" "$ROOT/scripts/debezium/connect-pom.xml" \
        "$CONNECT_HOME/libs" "$CONNECT_HOME/fetch.log" -Dkafka.version="$SLUICE_KAFKA_VERSION"
    [ -f "$CONNECT_HOME/libs/connect-runtime-$SLUICE_KAFKA_VERSION.jar" ] ||
        die "no connect-runtime-$SLUICE_KAFKA_VERSION.jar in $CONNECT_HOME/libs"
    # A Connect plugin folder: the connector and what it needs, without the
    # jars the worker's classpath has (Kafka's, slf4j, Jackson's core: a
    # second Jackson in the plugin's isolated loader breaks Debezium's
    # converters, which call the worker's JsonConverter with its JsonNode).
    fetch_jars "debezium $SLUICE_DEBEZIUM_VERSION ($SLUICE_DEBEZIUM_ARTIFACT)" "$ROOT/scripts/debezium/pom.xml" \
        "$DBZ_PLUGIN" "$DBZ_HOME/fetch-$SLUICE_DEBEZIUM_ARTIFACT.log" -Ddebezium.version="$SLUICE_DEBEZIUM_VERSION" \
        -Ddebezium.artifact="$SLUICE_DEBEZIUM_ARTIFACT" -DexcludeGroupIds=org.apache.kafka,org.slf4j \
        -DexcludeArtifactIds=jackson-core,jackson-databind,jackson-annotations
    [ -f "$DBZ_PLUGIN/$SLUICE_DEBEZIUM_ARTIFACT-$SLUICE_DEBEZIUM_VERSION.jar" ] ||
        die "no $SLUICE_DEBEZIUM_ARTIFACT-$SLUICE_DEBEZIUM_VERSION.jar in $DBZ_PLUGIN"
}


# Whether the jars are in the cache already (nothing to fetch).
jars_cached() {
    [ -f "$CONNECT_HOME/libs/.complete" ] && [ -f "$DBZ_PLUGIN/.complete" ] &&
        [ -f "$DBZ_HOME/plugins/debezium-connector-jdbc/.complete" ]
}

# Debezium's JDBC sink connector (a Kafka Connect sink), for the sink check
# of scripts/parity-vs-debezium.sh: beside the source connector in the same
# plugin folder.
SINK_PLUGIN=$DBZ_HOME/plugins/debezium-connector-jdbc
install_sink_jars() {
    fetch_jars "debezium $SLUICE_DEBEZIUM_VERSION (debezium-connector-jdbc)" "$ROOT/scripts/debezium/pom.xml" \
        "$SINK_PLUGIN" "$DBZ_HOME/fetch-debezium-connector-jdbc.log" -Ddebezium.version="$SLUICE_DEBEZIUM_VERSION" \
        -Ddebezium.artifact=debezium-connector-jdbc -DexcludeGroupIds=org.apache.kafka,org.slf4j \
        -DexcludeArtifactIds=jackson-core,jackson-databind,jackson-annotations
}

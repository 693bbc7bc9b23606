#!/usr/bin/env bash
# Apache Kafka's own command-line tools, run from the jars `make up` fetched
# (the distribution's bin/*.sh are not on Maven Central; these are the main
# classes behind them), pointed at the local broker.
#
#   scripts/kafka-tool.sh topics --list
#   scripts/kafka-tool.sh topics --describe --topic sluice.sluice.follow
#   scripts/kafka-tool.sh console-consumer --topic sluice.sluice.follow --from-beginning \
#       --property print.key=true --property print.headers=true
#   scripts/kafka-tool.sh consumer-groups --describe --group sluice-syncer
#   scripts/kafka-tool.sh get-offsets --topic sluice.sluice.follow
#   scripts/kafka-tool.sh class <main class> [args]   any other tool
#
# --bootstrap-server is added unless given; SLUICE_KAFKA_BROKERS overrides it.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"

usage() {
    sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
    echo "tools: topics console-consumer console-producer consumer-groups get-offsets producer-perf-test delete-records log-dirs class" >&2
    exit 2
}

tool=${1:-}
[ -n "$tool" ] || usage
shift
case "$tool" in
topics) class=org.apache.kafka.tools.TopicCommand ;;
console-consumer) class=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
console-producer) class=org.apache.kafka.tools.ConsoleProducer ;;
consumer-groups) class=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
get-offsets) class=org.apache.kafka.tools.GetOffsetShell ;;
producer-perf-test) class=org.apache.kafka.tools.ProducerPerformance ;;
delete-records) class=org.apache.kafka.tools.DeleteRecordsCommand ;;
log-dirs) class=org.apache.kafka.tools.LogDirsCommand ;;
class)
    class=${1:?usage: $0 class <main class> [args]}
    shift
    ;;
-h | --help | help) usage ;;
*) echo "unknown tool '$tool'" >&2; usage ;;
esac

[ -f "$SLUICE_KAFKA_HOME/libs/.complete" ] ||
    { echo "Kafka's jars are not in $SLUICE_KAFKA_HOME/libs: run scripts/stack.sh install (or make up)" >&2; exit 2; }
args=("$@")
if [ "$tool" != class ] && [ "$tool" != producer-perf-test ] && [[ " $* " != *" --bootstrap-server "* ]]; then
    args=(--bootstrap-server "$SLUICE_KAFKA_BROKERS" "${args[@]}")
fi
exec java -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/tools-log4j2.properties" \
    -cp "$SLUICE_KAFKA_HOME/libs/*" "$class" "${args[@]}"

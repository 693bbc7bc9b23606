#!/usr/bin/env bash
# Sourced by the benchmark scripts: `start_memory_broker` starts a tansu with
# in-memory storage on 127.0.0.1:$SLUICE_KAFKA_MEM_PORT (default 9093) for
# the length of the calling script (stopped on exit) and sets MEM_BROKER to
# its address. Benchmarks run against it next to the stack's durable broker,
# to tell the broker's storage cost from sluice's own.

start_memory_broker() {
    local port=${SLUICE_KAFKA_MEM_PORT:-9093}
    [ -x "$SLUICE_TANSU_BIN" ] || { echo "tansu is not installed: make up" >&2; exit 2; }
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is taken; set SLUICE_KAFKA_MEM_PORT" >&2
        exit 2
    fi
    local log="$SLUICE_STATE/bench/tansu-memory.log"
    mkdir -p "$(dirname "$log")"
    "$SLUICE_TANSU_BIN" broker \
        --listener-url "tcp://127.0.0.1:$port" \
        --advertised-listener-url "tcp://127.0.0.1:$port" \
        --storage-engine "memory://tansu/" </dev/null >"$log" 2>&1 &
    MEM_PID=$!
    trap 'kill "$MEM_PID" 2>/dev/null || true; wait "$MEM_PID" 2>/dev/null || true' EXIT
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        kill -0 "$MEM_PID" 2>/dev/null || { tail -n 5 "$log" >&2; echo "the in-memory broker exited" >&2; exit 1; }
        sleep 0.1
    done
    MEM_BROKER="127.0.0.1:$port"
    echo "in-memory broker on $MEM_BROKER (pid $MEM_PID); durable broker on $SLUICE_KAFKA_BROKERS"
}

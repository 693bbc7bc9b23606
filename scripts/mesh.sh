#!/usr/bin/env bash
# The sluice processes of the local mesh, each started from target/$PROFILE
# with a pid file and a log under .state/mesh/.
#
#   scripts/mesh.sh up       start every built process that is not running
#   scripts/mesh.sh down     stop exactly those processes (by pid)
#   scripts/mesh.sh status
#   scripts/mesh.sh start|stop <name>    one process
#   scripts/mesh.sh exec <binary> [args] run a binary with the mesh's environment
#
# SLUICE_SYNCERS=N starts N cache-syncers in one consumer group: the first
# is `cache-syncer` (admin 9102), the others `cache-syncer@2`, `@3`, …
# (admin 9112, 9113, …). SLUICE_INSTANCES=N starts N instances of each gRPC
# service, registered in etcd (the stack's, SLUICE_ETCD_ENDPOINTS), and the
# gateway balances over them: `user-service@2` serves gRPC on 8180 and its
# admin port on 9180, `@3` on 8280/9280, … (count-service and
# relation-service likewise from 8081/9081 and 8082/9082). `down` and
# `status` cover every one that runs, whatever the variables say then.
# SLUICE_RELAYS=N starts N binlog-relays of one `ha.name` (issue #19): one
# leads, the others wait as standbys; `binlog-relay` on admin 9101, then
# `binlog-relay@2` on 9302, `@3` on 9303, … (RELAY_HA__ENABLED is set for
# all of them, so the checkpoint lives in the source database).
#
# A process is "up" when its admin port answers /healthz.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
PROFILE=${PROFILE:-debug}
MESH="$SLUICE_STATE/mesh"
export SLUICE_DEV=${SLUICE_DEV:-true}

# Point every binary at this stack (its ports may be overridden in env.sh),
# unless the caller set a binary's own variable already. With
# SLUICE_REDIS_CLUSTER=1 that is the stack's Redis Cluster: a comma-separated
# list of seed nodes puts every binary in cluster mode.
MESH_REDIS_URL=$SLUICE_REDIS_URL
case "${SLUICE_REDIS_CLUSTER:-}" in 1 | true | yes | on) MESH_REDIS_URL=$SLUICE_REDIS_CLUSTER_URLS ;; esac
for prefix in RELAY SYNCER USER RELATION COUNT GATEWAY; do
    for pair in "MYSQL__URL=$DATABASE_URL" "REDIS__URL=$MESH_REDIS_URL" "KAFKA__BROKERS=$SLUICE_KAFKA_BROKERS"; do
        var="${prefix}_${pair%%=*}"
        [ -n "${!var:-}" ] || export "$var=${pair#*=}"
    done
done

# The relay streams the application database only, keeps its checkpoint in
# the state folder, and sends heartbeats often enough for the watermark.
export RELAY_STATE_DIR=${RELAY_STATE_DIR:-$SLUICE_STATE/binlog-relay}
export RELAY_FILTER__INCLUDE_DATABASES=${RELAY_FILTER__INCLUDE_DATABASES:-[\"$SLUICE_DB\"]}
export SYNCER_SOURCE_DB=${SYNCER_SOURCE_DB:-$SLUICE_DB}
# sluice-loadgen registers its users (1,000 and more) from this one address:
# no per-client limit on register and login in the local mesh.
export GATEWAY_AUTH_PER_CLIENT__ATTEMPTS=${GATEWAY_AUTH_PER_CLIENT__ATTEMPTS:-0}

# name  admin-port  arguments (in start order; stopped in reverse)
PROCESSES=(
    "binlog-relay 9101 run"
    "cache-syncer 9102 run"
    "user-service 9080"
    "count-service 9081"
    "relation-service 9082"
    "gateway 9888"
)

SLUICE_RELAYS=${SLUICE_RELAYS:-1}
[[ "$SLUICE_RELAYS" =~ ^[1-9]$ ]] || { echo "SLUICE_RELAYS must be 1..9, not '$SLUICE_RELAYS'" >&2; exit 2; }
if [ "$SLUICE_RELAYS" -gt 1 ]; then
    export RELAY_HA__ENABLED=${RELAY_HA__ENABLED:-true}
    extra=()
    for i in $(seq 2 "$SLUICE_RELAYS"); do extra+=("binlog-relay@$i $((9300 + i)) run"); done
    PROCESSES=("${PROCESSES[0]}" "${extra[@]}" "${PROCESSES[@]:1}")
fi
SLUICE_SYNCERS=${SLUICE_SYNCERS:-1}
[[ "$SLUICE_SYNCERS" =~ ^[1-9][0-9]?$ ]] || { echo "SLUICE_SYNCERS must be 1..99, not '$SLUICE_SYNCERS'" >&2; exit 2; }
if [ "$SLUICE_SYNCERS" -gt 1 ]; then
    extra=()
    for i in $(seq 2 "$SLUICE_SYNCERS"); do extra+=("cache-syncer@$i $((9110 + i)) run"); done
    PROCESSES=("${PROCESSES[0]}" "${PROCESSES[1]}" "${extra[@]}" "${PROCESSES[@]:2}")
fi
SLUICE_INSTANCES=${SLUICE_INSTANCES:-1}
[[ "$SLUICE_INSTANCES" =~ ^[1-9]$ ]] || { echo "SLUICE_INSTANCES must be 1..9, not '$SLUICE_INSTANCES'" >&2; exit 2; }
# Admin port of instance <i> of a service whose first admin port is <base>.
instance_admin() { echo $(($1 + 100 * ($2 - 1))); }
if [ "$SLUICE_INSTANCES" -gt 1 ]; then
    extra=()
    for i in $(seq 2 "$SLUICE_INSTANCES"); do
        extra+=("user-service@$i $(instance_admin 9080 "$i")"
            "count-service@$i $(instance_admin 9081 "$i")"
            "relation-service@$i $(instance_admin 9082 "$i")")
    done
    last=$((${#PROCESSES[@]} - 1)) # the gateway, started after every service
    PROCESSES=("${PROCESSES[@]:0:$last}" "${extra[@]}" "${PROCESSES[$last]}")
fi
# Extra syncers and service instances started earlier (by pid file), so that
# down/status see them.
for pidfile in "$MESH"/*@*.pid; do
    [ -e "$pidfile" ] || continue
    name=$(basename "$pidfile" .pid)
    i=${name#*@}
    case "$name" in
    binlog-relay@*)
        [ "$i" -le "$SLUICE_RELAYS" ] 2>/dev/null && continue
        PROCESSES=("$name $((9300 + i)) run" "${PROCESSES[@]}")
        ;;
    cache-syncer@*)
        [ "$i" -le "$SLUICE_SYNCERS" ] 2>/dev/null && continue
        PROCESSES+=("$name $((9110 + i)) run")
        ;;
    user-service@* | count-service@* | relation-service@*)
        [ "$i" -le "$SLUICE_INSTANCES" ] 2>/dev/null && continue
        case "$name" in user-*) base=9080 ;; count-*) base=9081 ;; *) base=9082 ;; esac
        PROCESSES=("$name $(instance_admin "$base" "$i")" "${PROCESSES[@]}")
        ;;
    esac
done
# With several instances, every service registers in etcd and the gateway
# watches it.
if [ "$SLUICE_INSTANCES" -gt 1 ]; then
    for prefix in USER RELATION COUNT GATEWAY; do
        var="${prefix}_DISCOVERY__ETCD"
        [ -n "${!var:-}" ] || export "$var=$SLUICE_ETCD_ENDPOINTS"
    done
fi

log() { printf '%s\n' "$*" >&2; }

# Running, and not a zombie: a process killed with -9 whose parent (init,
# once mesh.sh has exited) has not reaped it yet still answers kill -0.
alive() {
    local pid
    [ -f "$MESH/$1.pid" ] || return 1
    pid=$(cat "$MESH/$1.pid")
    kill -0 "$pid" 2>/dev/null || return 1
    [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]]
}

healthy() { curl -fsS -m 1 "http://127.0.0.1:$1/healthz" >/dev/null 2>&1; }

start_one() { # name port args...
    local name=$1 port=$2
    shift 2
    if alive "$name"; then
        log "$name: already running (pid $(cat "$MESH/$name.pid")), admin 127.0.0.1:$port"
        return
    fi
    # `cache-syncer@2` is the cache-syncer binary on its own admin port.
    local bin="$ROOT/target/$PROFILE/${name%%@*}"
    [ -x "$bin" ] || { log "$name: $bin is not built (run cargo build --workspace)"; return 1; }
    # A process just killed may still hold its admin port while its last
    # threads exit (its main thread already a zombie): wait for the port.
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
        sleep 0.05
    done
    mkdir -p "$MESH"
    # shellcheck disable=SC2086
    if [[ "$name" == binlog-relay@* ]]; then
        RELAY_ADMIN__ADDR=127.0.0.1:$port setsid "$bin" "$@" </dev/null >>"$MESH/$name.log" 2>&1 &
    elif [[ "$name" == cache-syncer* ]]; then
        SYNCER_ADMIN__ADDR=127.0.0.1:$port setsid "$bin" "$@" </dev/null >>"$MESH/$name.log" 2>&1 &
    elif [[ "$name" == *-service@* ]]; then
        # Instance i: gRPC port = admin port - 1000 (8180 for 9180, …).
        local prefix
        prefix=$(tr '[:lower:]' '[:upper:]' <<<"${name%%-service@*}")
        env "${prefix}_GRPC_ADDR=127.0.0.1:$((port - 1000))" "${prefix}_ADMIN__ADDR=127.0.0.1:$port" \
            setsid "$bin" "$@" </dev/null >>"$MESH/$name.log" 2>&1 &
    else
        setsid "$bin" "$@" </dev/null >>"$MESH/$name.log" 2>&1 &
    fi
    echo $! >"$MESH/$name.pid"
    local deadline=$((SECONDS + 60))
    until healthy "$port"; do
        if ! alive "$name"; then
            tail -n 20 "$MESH/$name.log" >&2
            log "$name: exited during start-up (log: $MESH/$name.log)"
            return 1
        fi
        [ $SECONDS -lt $deadline ] || { log "$name: admin port $port did not answer within 60s"; return 1; }
        sleep 0.2
    done
    log "$name: started (pid $(cat "$MESH/$name.pid")), admin 127.0.0.1:$port, log $MESH/$name.log"
}

stop_one() { # name
    local name=$1 pid
    alive "$name" || { rm -f "$MESH/$name.pid"; return 0; }
    pid=$(cat "$MESH/$name.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$MESH/$name.pid"
    log "$name: stopped (pid $pid)"
}

case "${1:-}" in
up)
    for entry in "${PROCESSES[@]}"; do
        # shellcheck disable=SC2086
        start_one $entry
    done
    ;;
down)
    for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do
        read -r name _ <<<"${PROCESSES[$i]}"
        stop_one "$name"
    done
    ;;
start | stop) # one process by name (start: only when not running)
    name=${2:?usage: $0 $1 <name>}
    for entry in "${PROCESSES[@]}"; do
        read -r n _ <<<"$entry"
        if [ "$n" = "$name" ]; then
            # shellcheck disable=SC2086
            if [ "$1" = start ]; then start_one $entry; else stop_one "$name"; fi
            exit 0
        fi
    done
    log "unknown process $name"
    exit 2
    ;;
exec) # run a built binary with the mesh's environment (e.g. cache-syncer verify)
    shift
    bin=${1:?usage: $0 exec <binary> [args]}
    shift
    exec "$ROOT/target/$PROFILE/$bin" "$@"
    ;;
status)
    for entry in "${PROCESSES[@]}"; do
        read -r name port _ <<<"$entry"
        if alive "$name"; then
            printf '%-19s running  pid %-7s admin 127.0.0.1:%s\n' "$name" "$(cat "$MESH/$name.pid")" "$port"
        else
            printf '%-19s stopped\n' "$name"
        fi
    done
    ;;
*) log "usage: $0 up|down|status|start <name>|stop <name>|exec <binary> [args]"; exit 2 ;;
esac

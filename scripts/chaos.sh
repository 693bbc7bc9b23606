#!/usr/bin/env bash
# `make chaos`: the fault suite, against the running local mesh (`make up`).
#
# sluice-loadgen toggles follows through the REST API at a steady rate while
# this script injects faults: kill -9 of the relay and of the syncer (several
# times), a broker restart, and a Redis restart (empty) followed by a
# rebuild. Then the loadgen waits until the syncer has applied the newest
# acknowledged write and checks every pair against its last acknowledged
# state, and `cache-syncer verify` compares Redis with MySQL.
#
#   scripts/chaos.sh           long form (~3 min of load, 3 rounds of kills)
#   scripts/chaos.sh --short   short form for CI (~40 s of load, 1 round)
#   scripts/chaos.sh --group   a group of SLUICE_SYNCERS (3) cache-syncers over
#                              row topics of 6 or more partitions: 1,000
#                              writes/s for 60 s while one member is killed
#                              (-9) and restarted every 10 s, in turn; a
#                              read-your-writes load beside it must see no
#                              stale token read, and the watermark, sampled
#                              every 50 ms, must never decrease (issue #18)
#
# With SLUICE_RELAYS=N (2 or more; `make up` with the same variable) the
# relays run as leader and standbys (issue #19) and each relay kill hits the
# current leader: a relay failover; a standby must take over and lose
# nothing.
#
# Report: .state/chaos/report.json. Exit status 1 when an acknowledged write
# is missing or verify finds a difference.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
PROFILE=${PROFILE:-debug}
export PROFILE

SHORT=false GROUP=false
case "${1:-}" in
--short) SHORT=true ;;
--group) GROUP=true ;;
"") ;;
*) echo "usage: $0 [--short|--group]" >&2; exit 2 ;;
esac
if $SHORT; then
    ROUNDS=1 DURATION=40 RATE=${CHAOS_RATE:-100} PAUSE=4 CONNS=16
elif $GROUP; then
    ROUNDS=0 DURATION=${CHAOS_DURATION:-60} RATE=${CHAOS_RATE:-1000} PAUSE=10 CONNS=64
    export SLUICE_SYNCERS=${SLUICE_SYNCERS:-3}
else
    ROUNDS=3 DURATION=180 RATE=${CHAOS_RATE:-200} PAUSE=8 CONNS=16
fi
OUT="$SLUICE_STATE/chaos"
mkdir -p "$OUT"
MESH="$SLUICE_STATE/mesh"

log() { printf '[chaos %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 2; }

scripts/stack.sh check || die "the stack is not running: run make up"
scripts/mesh.sh up 2>/dev/null || die "the mesh does not start: run make up"
LOADGEN="target/$PROFILE/sluice-loadgen"
[ -x "$LOADGEN" ] || die "$LOADGEN is not built: run cargo build --workspace"

faults=()
fault() { faults+=("$1"); log "fault ${#faults[@]}: $1"; }

kill9() { # name
    local pid
    pid=$(cat "$MESH/$1.pid" 2>/dev/null) || { log "$1 is not running"; return; }
    kill -9 "$pid" 2>/dev/null || true
    fault "kill -9 $1 (pid $pid)"
    sleep 1 # the process is down for a moment: that is the fault
    scripts/mesh.sh start "$1" 2>/dev/null || die "$1 did not come back"
}

# The relay that leads now (SLUICE_RELAYS > 1), by its /status.
leader_relay() {
    local name port
    for name in binlog-relay $(for i in $(seq 2 "${SLUICE_RELAYS:-1}"); do echo "binlog-relay@$i"; done); do
        if [ "$name" = binlog-relay ]; then port=9101; else port=$((9300 + ${name#*@})); fi
        if curl -fsS -m 1 "http://127.0.0.1:$port/status" 2>/dev/null | grep -q '"role":"leader"'; then
            echo "$name"
            return
        fi
    done
    echo binlog-relay
}

# Something died on its own (a relay losing the broker exits; the mesh
# restarts it, as a supervisor would).
heal() { scripts/mesh.sh up >/dev/null 2>&1 || die "the mesh did not come back"; }

if $GROUP; then
    # Six or more partitions per row topic, or the group has too few to share.
    for t in user follow counter; do
        n=$(scripts/kafka-tool.sh topics --describe --topic "sluice.$SLUICE_DB.$t" 2>/dev/null |
            grep -oE 'PartitionCount: *[0-9]+' | grep -oE '[0-9]+' | head -1 || true)
        [ "${n:-0}" -ge 6 ] || die "sluice.$SLUICE_DB.$t has ${n:-no} partitions; the group form needs 6 or more (a fresh stack has 6: make down; rm -rf .state; make up)"
    done
    log "group of $SLUICE_SYNCERS syncers: $(SLUICE_SYNCERS=$SLUICE_SYNCERS scripts/mesh.sh status | grep -c '^cache-syncer.*running') running"
fi

# CHAOS_WRITES=mysql: the follows go straight into MySQL through
# relation-service's own transaction (sluice-loadgen --writes-to mysql), not
# through the gateway: on 2 cores the REST hops cap the rate below 1,000/s,
# and the faults here are the CDC pipeline's. Checks and token reads stay REST.
WRITES=${CHAOS_WRITES:-rest}
log "load: $RATE writes/s for ${DURATION}s through $WRITES; $ROUNDS round(s) of faults"
"$LOADGEN" chaos -c "$CONNS" -d "$DURATION" --rate "$RATE" --settle 300 --writes-to "$WRITES" \
    --report "$OUT/loadgen.json" --json >"$OUT/loadgen.out" 2>"$OUT/loadgen.err" &
LG=$!
RYW= WM=
trap 'kill $LG $RYW $WM 2>/dev/null || true' EXIT
if $GROUP; then
    # Read-your-writes beside the load: each connection toggles its own pair
    # and reads it back with the token (exit 1 on a stale token read).
    "$LOADGEN" rest-ryw -c 4 -d "$DURATION" --rate 40 --quiet \
        --report "$OUT/ryw.json" --json >"$OUT/ryw.out" 2>"$OUT/ryw.err" &
    RYW=$!
    # The published watermark, every 50 ms, for the never-decreases check
    # (on the cluster, -c follows the key to its node).
    WM_PORT=$SLUICE_REDIS_PORT
    case "${SLUICE_REDIS_CLUSTER:-}" in 1 | true | yes | on) WM_PORT=${SLUICE_REDIS_CLUSTER_PORTS%%,*} ;; esac
    (
        while :; do
            redis-cli -c -p "$WM_PORT" HGET "${SYNCER_REDIS__NAMESPACE:-sluice}:watermark" seq 2>/dev/null || true
            sleep 0.05
        done
    ) >"$OUT/watermark.samples" &
    WM=$!
    # One member killed (-9) every PAUSE seconds, in turn, for the run.
    members=(cache-syncer)
    for i in $(seq 2 "$SLUICE_SYNCERS"); do members+=("cache-syncer@$i"); done
    k=0
    while kill -0 "$LG" 2>/dev/null && [ "$k" -lt $((DURATION / PAUSE)) ]; do
        sleep "$PAUSE"
        kill9 "${members[$((k % ${#members[@]}))]}"
        k=$((k + 1))
    done
else
    sleep "$PAUSE"
fi

for round in $(seq 1 "$ROUNDS"); do
    log "round $round"
    if [ "${SLUICE_RELAYS:-1}" -gt 1 ]; then
        relay=$(leader_relay)
        log "relay failover: killing the leader, $relay"
        kill9 "$relay"
    else
        kill9 binlog-relay
    fi
    sleep "$PAUSE"
    kill9 cache-syncer
    sleep "$PAUSE"
    if [ "$round" = 1 ]; then
        scripts/stack.sh restart-kafka >/dev/null 2>&1 || die "the broker did not restart"
        fault "broker restart"
        heal
        sleep "$PAUSE"
        scripts/mesh.sh stop cache-syncer 2>/dev/null
        case "${SLUICE_REDIS_CLUSTER:-}" in
        1 | true | yes | on)
            # The mesh runs on the Redis Cluster: every master emptied.
            for port in ${SLUICE_REDIS_CLUSTER_PORTS//,/ }; do
                redis-cli -p "$port" FLUSHALL >/dev/null || die "redis-cluster node $port did not flush"
            done
            fault "redis cluster emptied + rebuild"
            ;;
        *)
            scripts/stack.sh restart-redis >/dev/null 2>&1 || die "redis did not restart"
            fault "redis restart (empty) + rebuild"
            ;;
        esac
        scripts/mesh.sh exec cache-syncer rebuild >"$OUT/rebuild.out" 2>&1 || die "rebuild failed: $(tail -3 "$OUT/rebuild.out")"
        heal
        sleep "$PAUSE"
    fi
    heal
done

log "faults done; waiting for the load to end and the pipeline to settle"
set +e
wait $LG
lg_rc=$?
ryw_rc=0
if $GROUP; then
    wait "$RYW"
    ryw_rc=$?
    kill "$WM" 2>/dev/null
    wait "$WM" 2>/dev/null
fi
set -e
trap - EXIT
[ -s "$OUT/loadgen.json" ] || die "sluice-loadgen wrote no report (exit $lg_rc): $(tail -5 "$OUT/loadgen.err")"

# The last writes are applied (the loadgen waited for them); the user
# columns are written in batches right after: verify until clean, bounded.
diffs=-1
for _ in $(seq 1 30); do
    if scripts/mesh.sh exec cache-syncer verify >"$OUT/verify.out" 2>&1; then
        diffs=0
        break
    fi
    diffs=$(grep -oE '[0-9]+ differences' "$OUT/verify.out" | grep -oE '^[0-9]+' | tail -1 || true)
    diffs=${diffs:--1}
    sleep 2
done

python3 - "$OUT" "$diffs" "$GROUP" "$WRITES" "${faults[@]}" <<'EOF'
import json, os, sys
out, diffs, group, writes, faults = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "true", sys.argv[4], sys.argv[5:]
lg = json.load(open(f"{out}/loadgen.json"))
c = lg.get("chaos", {})
report = {
    "writes_sent": lg["ok"] + lg["errors"],
    "writes_acknowledged": lg["ok"],
    "writes_failed_or_unknown": lg["errors"],
    "writes_to": writes,
    "write_rate_per_s": lg["req_per_s"],
    "write_latency_ms": lg["latency_ms"],
    "faults_injected": len(faults),
    "faults": faults,
    "pipeline_caught_up": c.get("pipeline_caught_up"),
    "settle_seconds": c.get("settle_seconds"),
    "pairs_checked": c.get("pairs_checked"),
    "lost_acknowledged_writes": c.get("lost_acknowledged_writes"),
    "verify_differences": diffs,
}
if group:
    ryw = json.load(open(f"{out}/ryw.json")) if os.path.exists(f"{out}/ryw.json") else {}
    report["token_reads"] = ryw.get("token_reads")
    seqs = [int(l) for l in open(f"{out}/watermark.samples") if l.strip().isdigit()]
    report["watermark_samples"] = len(seqs)
    report["watermark_regressions"] = sum(1 for a, b in zip(seqs, seqs[1:]) if b < a)
json.dump(report, open(f"{out}/report.json", "w"), indent=2)
print(json.dumps(report, indent=2))
EOF
regressions=0
if $GROUP; then
    regressions=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["watermark_regressions"])' "$OUT/report.json")
fi
if [ "$lg_rc" != 0 ] || [ "$diffs" != 0 ] || [ "$ryw_rc" != 0 ] || [ "$regressions" != 0 ]; then
    log "FAILED: loadgen exit $lg_rc, verify differences $diffs, read-your-writes exit $ryw_rc, watermark regressions $regressions (see $OUT)"
    tail -5 "$OUT/verify.out" >&2 || true
    exit 1
fi
log "passed: ${#faults[@]} faults, 0 lost acknowledged writes, 0 differences"

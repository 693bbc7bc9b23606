#!/usr/bin/env bash
# `make bench-idle`: CPU each process of the stack and the mesh uses while
# nothing is written, sampled from /proc over a window (default 60 s), as a
# share of one core. Run after `make up` with no load running.
#
#   scripts/bench-idle.sh [seconds]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
SECS=${1:-60}
HZ=$(getconf CLK_TCK)

declare -A PIDFILE=(
    [kafka]="$SLUICE_STATE/kafka/kafka.pid"
    [mariadb]="$SLUICE_STATE/mariadb/mariadbd.pid"
    [redis]="$SLUICE_STATE/redis/redis.pid"
    [prometheus]="$SLUICE_STATE/prometheus/prometheus.pid"
)
for name in binlog-relay cache-syncer user-service count-service relation-service gateway; do
    PIDFILE[$name]="$SLUICE_STATE/mesh/$name.pid"
done

ticks() { # pid -> utime+stime of the process (all threads)
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo ""
}

declare -A PID START
for name in "${!PIDFILE[@]}"; do
    f=${PIDFILE[$name]}
    [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null || continue
    PID[$name]=$(cat "$f")
    START[$name]=$(ticks "${PID[$name]}")
done
[ ${#PID[@]} -gt 0 ] || { echo "nothing is running: make up" >&2; exit 2; }
echo "sampling ${#PID[@]} processes for ${SECS}s..." >&2
sleep "$SECS"
printf '| process | CPU over %ss (%% of one core) |\n|---|---|\n' "$SECS"
for name in $(printf '%s\n' "${!PID[@]}" | sort); do
    end=$(ticks "${PID[$name]}")
    [ -n "$end" ] || { printf '| %s | exited |\n' "$name"; continue; }
    awk -v a="${START[$name]}" -v b="$end" -v hz="$HZ" -v s="$SECS" -v n="$name" \
        'BEGIN { printf "| %s | %.2f |\n", n, 100 * (b - a) / hz / s }'
done

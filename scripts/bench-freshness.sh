#!/usr/bin/env bash
# `make bench-freshness`: freshness of the pipeline under a steady write load,
# against the running mesh (`make up`; for numbers worth recording run the
# mesh from release builds: `PROFILE=release make up`).
#
# sluice-loadgen rest-ryw writes follows/unfollows through the REST API at
# --rate, and after each write reads with and without its consistency token.
# The relay's and the syncer's latency histograms are scraped before and
# after; their quantiles over the run come from the bucket deltas.
#
#   scripts/bench-freshness.sh [rate/s] [seconds] [connections]
#
# SCENARIO=rest-follow measures the pipeline under writes only (random
# follows, no reads in the loop), which is how to reach 1,000 writes/s on a
# 2-core machine that also runs every server.
#
# WRITES_TO=mysql commits each follow with relation-service's own transaction
# straight into MySQL (`sluice-loadgen --writes-to mysql`), leaving out the
# gateway and gRPC hops, so the pipeline can be measured at rates the REST
# write path does not reach here; the token reads still go through REST.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$ROOT/scripts/env.sh"
cd "$ROOT"
RATE=${1:-1000}
SECS=${2:-30}
CONNS=${3:-64}
PROFILE=${PROFILE:-release}
LOADGEN="target/$PROFILE/sluice-loadgen"
[ -x "$LOADGEN" ] || { echo "$LOADGEN is not built: cargo build --release --workspace" >&2; exit 2; }
OUT="$SLUICE_STATE/bench"
mkdir -p "$OUT"

scrape() { curl -fsS -m 5 "http://127.0.0.1:9101/metrics"; curl -fsS -m 5 "http://127.0.0.1:9102/metrics"; }
scrape >"$OUT/before.prom" || { echo "the relay or the syncer is not running: make up" >&2; exit 2; }
"$LOADGEN" "${SCENARIO:-rest-ryw}" -c "$CONNS" -d "$SECS" --rate "$RATE" \
    --writes-to "${WRITES_TO:-rest}" --json >"$OUT/loadgen.json"
scrape >"$OUT/after.prom"

python3 - "$OUT" <<'EOF'
import json, re, sys
out = sys.argv[1]

def buckets(path, name):
    b = {}
    for line in open(path):
        m = re.match(rf'{name}_bucket\{{(?:.*,)?le="([^"]+)"\}} (\S+)', line)
        if m:
            b[float(m.group(1))] = b.get(float(m.group(1)), 0) + float(m.group(2))
    return b

def quantiles(name):
    before, after = buckets(f"{out}/before.prom", name), buckets(f"{out}/after.prom", name)
    delta = sorted((le, after[le] - before.get(le, 0)) for le in after)
    total = delta[-1][1] if delta else 0
    def q(p):
        # Upper bound of the bucket holding the p-quantile (Prometheus style
        # linear interpolation inside the bucket).
        prev_le, prev_n = 0.0, 0.0
        for le, n in delta:
            if n >= p * total:
                if le == float("inf"):
                    return prev_le
                frac = (p * total - prev_n) / (n - prev_n) if n > prev_n else 1
                return prev_le + (le - prev_le) * frac
            prev_le, prev_n = le, n
        return float("nan")
    return int(total), q(0.5) * 1000, q(0.99) * 1000

lg = json.load(open(f"{out}/loadgen.json"))
t = lg.get("token_reads", {})
rows = [
    ("commit → Kafka ack (relay)", *quantiles("binlog_relay_commit_to_ack_seconds")),
    ("commit → applied in Redis (syncer)", *quantiles("cache_syncer_commit_to_applied_seconds")),
]
if not t:
    t = {}
print(f"writes: {lg.get('writes')} in {lg['seconds']} s = {lg.get('writes_per_s')}/s (target {lg['target_rate']}/s), "
      f"errors {lg['errors']}, write+reads loop p50 {lg['latency_ms']['p50']} ms")
for name, n, p50, p99 in rows:
    print(f"{name:38} n={n:<7} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
w = t.get("added_wait_ms", {})
if t: print(f"{'token read, added wait':38} n={t.get('count', 0):<7} p50 {w.get('p50', 0):7.1f} ms   p99 {w.get('p99', 0):7.1f} ms"
      f"   (stale with token: {t.get('stale')}, from synced cache: {t.get('synced_cache')}, from MySQL: {t.get('primary')}; "
      f"stale without token: {lg.get('plain_reads_stale')})")
EOF

#!/usr/bin/env bash
# bench/compaction_stall.sh: put latency while compactions land during snapshots (issue 7), for
# synod alone, to compare two builds (run it for each, alternating, on an otherwise idle
# machine).
#
#   bench/compaction_stall.sh [SYNOD_BINARY] [LABEL]
#
# Starts a fresh 3-member synod cluster on loopback (clients on 46379, 46381, 46383, each peer
# port one above) with --snapshot-count $SNAPSHOT_COUNT (default 20000), builds a history with
# $PRELOAD (default 50s) of puts at 256 clients, then compacts to $KEEP (default 250000)
# revisions back every $EVERY (default 2) seconds with etcdctl while it measures $DURATION
# (default 20s) of puts at 16 and at 256 clients. Prints one line per run: throughput and
# latency percentiles in microseconds. The binary (default target/release/synod) must be built
# with `--features bench`; etcdctl 3.4 must be installed. Members and the compaction loop are
# stopped on exit, and the data directory removed.
set -euo pipefail
cd "$(dirname "$0")/.."
SYNOD=${1:-target/release/synod}
LABEL=${2:-synod}
SNAPSHOT_COUNT=${SNAPSHOT_COUNT:-20000}
PRELOAD=${PRELOAD:-50s}
KEEP=${KEEP:-250000}
EVERY=${EVERY:-2}
DURATION=${DURATION:-20s}
NAMES=(c1 c2 c3)
PORTS=(46379 46381 46383)
WORK=$(mktemp -d /tmp/synod-compaction.XXXXXX)
# shellcheck source=bench/synod_cluster.sh
. bench/synod_cluster.sh
start_synod_cluster compaction --snapshot-count "$SNAPSHOT_COUNT"
endpoints=$ENDPOINTS
first=${endpoints%%,*}
# Ready once a write commits, within 60 s.
for attempt in $(seq 60); do
    if timeout 10 etcdctl --endpoints="$first" put ready 1 >/dev/null 2>&1; then
        break
    fi
    [ "$attempt" -lt 60 ] || { echo "compaction_stall.sh: no write within 60 s" >&2; exit 1; }
    sleep 1
done

summary() { # file clients
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("%s clients=%s put/s=%.0f p50=%d p99=%d p99.9=%d max=%d errors=%d" % (
    sys.argv[2], sys.argv[3], d["throughput_per_second"], d["latency_us_p50"],
    d["latency_us_p99"], d["latency_us_p999"], d["latency_us_max"], d["errors"]))
' "$1" "$LABEL" "$2"
}

timeout 600 "$SYNOD" bench --endpoints "$endpoints" --clients 256 --conns 16 \
    --duration "$PRELOAD" --warmup 0s --json >"$WORK/preload.json"
summary "$WORK/preload.json" "256 (preload)"

# Compacts to KEEP revisions back, every EVERY seconds (at most 600 times).
(
    for _ in $(seq 600); do
        revision=$(timeout 10 etcdctl --endpoints="$first" get ready -w json 2>/dev/null |
            grep -o '"revision":[0-9]*' | head -n 1 | cut -d: -f2) || true
        if [ -n "$revision" ] && [ "$revision" -gt "$KEEP" ]; then
            timeout 10 etcdctl --endpoints="$first" compact $((revision - KEEP)) >/dev/null 2>&1 || true
        fi
        sleep "$EVERY"
    done
) 2>/dev/null &
EXTRA_PIDS+=($!)

for clients in 16 256; do
    timeout 600 "$SYNOD" bench --endpoints "$endpoints" --clients "$clients" --conns 16 \
        --duration "$DURATION" --json >"$WORK/run.$clients.json"
    summary "$WORK/run.$clients.json" "$clients"
done
echo "$LABEL: $(grep -c 'took a snapshot' "$WORK/c1.log" || true) snapshots on c1"

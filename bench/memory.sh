#!/usr/bin/env bash
# bench/memory.sh: the memory step of bench/compare.sh for synod alone (issue 7), to measure a
# change to the store without the whole comparison.
#
#   bench/memory.sh [KEYS] [SYNOD_BINARY]
#
# Starts a fresh 3-member synod cluster on loopback (clients on 45379, 45381, 45383, each peer
# port one above), writes KEYS keys (default 1,000,000) of 256 bytes with `synod bench`'s
# preload exactly as compare.sh does, waits 5 s, and prints VmRSS and VmHWM of each member.
# The binary (default target/release/synod) must be built with `--features bench`. Members are
# stopped on exit, and their data directory removed. On a machine busy with other work, members
# starved of the CPU may hold elections and fail the preload: SYNOD_ELECTION_TIMEOUT=5000 in the
# environment (inherited by the members) avoids that without changing what is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${1:-1000000}
SYNOD=${2:-target/release/synod}
NAMES=(m1 m2 m3)
PORTS=(45379 45381 45383)
WORK=$(mktemp -d /tmp/synod-memory.XXXXXX)
# shellcheck source=bench/synod_cluster.sh
. bench/synod_cluster.sh
start_synod_cluster memory
endpoints=$ENDPOINTS
# Ready once a write commits (a one-key preload), within 60 s.
for attempt in $(seq 60); do
    if timeout 10 "$SYNOD" bench --endpoints "$endpoints" --clients 1 --conns 1 \
        --workload get-serializable --key-space 1 --value-size 1 --total 1 --warmup 0s \
        --duration 1s --timeout 5s --json >/dev/null 2>&1; then
        break
    fi
    [ "$attempt" -lt 60 ] || { echo "memory.sh: the cluster took no write within 60 s" >&2; exit 1; }
    sleep 1
done
started=$(date +%s.%N)
timeout 900 "$SYNOD" bench --endpoints "$endpoints" --clients 3 --conns 3 --workload get-serializable \
    --key-space "$KEYS" --value-size 256 --preload-concurrency 256 \
    --total 1 --warmup 0s --duration 1s --timeout 30s --json >"$WORK/bench.json"
echo "loaded $KEYS keys in $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
sleep 5
for i in 0 1 2; do
    status=/proc/${PIDS[$i]}/status
    rss=$(awk '/^VmRSS/ { print $2 }' "$status")
    hwm=$(awk '/^VmHWM/ { print $2 }' "$status")
    echo "${NAMES[$i]} (pid ${PIDS[$i]}): VmRSS $((rss / 1024)) MiB, VmHWM $((hwm / 1024)) MiB"
done

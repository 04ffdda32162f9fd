#!/usr/bin/env bash
# bench/failover.sh: synod's failover alone, quicker than bench/compare.sh (issue 7).
#
#   bench/failover.sh [--engine raft|multipaxos] [--trials N] [--synod PATH] [-- SERVE FLAGS...]
#
# Starts a 3-member synod cluster with default settings (heartbeat 100 ms, election timeout
# 1 s) from target/release/synod (build it with `cargo build --release --features bench -p
# synod`), then runs N trials (default 20) of `synod bench failover`: kill -9 of the leader,
# and the time to the first successful write through a survivor, probing every 5 ms. The
# killed member is restarted on its data between trials. Prints each trial and the p50, p99
# and max; the JSON of every trial and the members' logs go under
# target/bench-failover/<engine>/. Flags after
# `--` are passed to every member's `synod serve`.
#
# Every member started is stopped on exit, failure or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

ENGINE=raft
TRIALS=20
SYNOD=$ROOT/target/release/synod
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        --engine)
            ENGINE=${2:?--engine needs raft or multipaxos}
            shift
            ;;
        --trials)
            TRIALS=${2:?--trials needs a number}
            shift
            ;;
        --synod)
            SYNOD=${2:?--synod needs a path}
            shift
            ;;
        --)
            shift
            EXTRA=("$@")
            break
            ;;
        -h | --help)
            sed -n '2,14p' "$0"
            exit 0
            ;;
        *)
            echo "failover.sh: unknown argument $1 (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done
[ -x "$SYNOD" ] || {
    echo "failover.sh: $SYNOD not found; cargo build --release --features bench -p synod" >&2
    exit 1
}

NAMES=(infra1 infra2 infra3)
# Client ports (peer port = client port + 1): above the kernel's ephemeral range and apart
# from bench/compare.sh's.
PORTS=(64101 64201 64301)
OUT=$ROOT/target/bench-failover/$ENGINE
WORK=$(mktemp -d)
mkdir -p "$OUT"
declare -A PID=()

stop_all() {
    local name
    for name in "${NAMES[@]}"; do
        if [ -n "${PID[$name]:-}" ] && kill -0 "${PID[$name]}" 2>/dev/null; then
            kill -TERM "${PID[$name]}" 2>/dev/null || true
        fi
    done
    for name in "${NAMES[@]}"; do
        if [ -n "${PID[$name]:-}" ]; then
            local deadline=$((SECONDS + 20))
            while kill -0 "${PID[$name]}" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
                sleep 0.1
            done
            kill -KILL "${PID[$name]}" 2>/dev/null || true
        fi
    done
    cp "$WORK"/*.log "$OUT"/ 2>/dev/null || true
    rm -rf "$WORK"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

start_member() { # index
    local i=$1 name=${NAMES[$1]} cluster="" j
    for j in 0 1 2; do
        cluster+="${cluster:+,}${NAMES[$j]}=http://127.0.0.1:$((PORTS[j] + 1))"
    done
    "$SYNOD" serve --name "$name" --data-dir "$WORK/$name" \
        --listen-client-urls "http://127.0.0.1:${PORTS[$i]}" \
        --advertise-client-urls "http://127.0.0.1:${PORTS[$i]}" \
        --listen-peer-urls "http://127.0.0.1:$((PORTS[i] + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((PORTS[i] + 1))" \
        --initial-cluster "$cluster" --initial-cluster-token "failover-$ENGINE" \
        --initial-cluster-state new --engine "$ENGINE" "${EXTRA[@]}" \
        >>"$WORK/$name.log" 2>&1 &
    PID[$name]=$!
    # Out of the job table: no "Killed" line when a trial kills it.
    disown "${PID[$name]}"
}

for i in 0 1 2; do start_member "$i"; done
endpoints=$(printf '127.0.0.1:%s,' "${PORTS[@]}")
endpoints=${endpoints%,}
times=()
for trial in $(seq 1 "$TRIALS"); do
    pids=$(IFS=,; echo "${PID[infra1]},${PID[infra2]},${PID[infra3]}")
    out=$OUT/t$trial.json
    if timeout 120 "$SYNOD" bench failover --endpoints "$endpoints" --pids "$pids" \
        --probe-interval 5ms --attempt-timeout 1s --json >"$out"; then
        ms=$(grep -o '"failover_ms":[0-9.]*' "$out" | cut -d: -f2)
        times+=("$ms")
        echo "trial $trial: $ms ms"
    else
        echo "trial $trial failed" >&2
    fi
    for i in 0 1 2; do
        kill -0 "${PID[${NAMES[$i]}]}" 2>/dev/null || start_member "$i"
    done
    sleep 1
done
[ "${#times[@]}" -gt 0 ] || exit 1
printf '%s\n' "${times[@]}" | sort -n | awk -v engine="$ENGINE" '
    { t[NR] = $1 }
    END {
        p50 = t[int((NR * 50 + 99) / 100)]; p99 = t[int((NR * 99 + 99) / 100)]
        printf "%s: %d trials, p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", engine, NR, p50, p99, t[NR]
    }'

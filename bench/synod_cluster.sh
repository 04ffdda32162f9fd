# bench/synod_cluster.sh: sourced by bench/memory.sh and bench/compaction_stall.sh. Starts a
# fresh 3-member synod cluster on loopback and stops it (and removes its data) on exit.
#
# Before `start_synod_cluster TOKEN [FLAG...]`, set SYNOD (the binary), NAMES and PORTS (three
# each: member names and client ports; each peer port is one above), and WORK (a scratch
# directory, removed on exit). Extra flags go to every member. It sets PIDS and ENDPOINTS
# (http://127.0.0.1:PORT, comma-separated). A script that starts more background work sets
# EXTRA_PIDS to have it stopped first.

PIDS=()
EXTRA_PIDS=()
ENDPOINTS=""

stop_synod_cluster() {
    local pid
    for pid in "${EXTRA_PIDS[@]}"; do
        pkill -TERM -P "$pid" 2>/dev/null || true
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}

start_synod_cluster() { # token [flag...]
    local token=$1 cluster="" i port
    shift
    trap stop_synod_cluster EXIT INT TERM
    for i in 0 1 2; do
        cluster+="${cluster:+,}${NAMES[$i]}=http://127.0.0.1:$((PORTS[$i] + 1))"
    done
    for i in 0 1 2; do
        port=${PORTS[$i]}
        ENDPOINTS+="${ENDPOINTS:+,}http://127.0.0.1:$port"
        "$SYNOD" serve --name "${NAMES[$i]}" --data-dir "$WORK/${NAMES[$i]}" \
            --listen-client-urls "http://127.0.0.1:$port" \
            --advertise-client-urls "http://127.0.0.1:$port" \
            --listen-peer-urls "http://127.0.0.1:$((port + 1))" \
            --initial-advertise-peer-urls "http://127.0.0.1:$((port + 1))" \
            --initial-cluster "$cluster" --initial-cluster-token "$token" \
            --initial-cluster-state new "$@" >"$WORK/${NAMES[$i]}.log" 2>&1 &
        PIDS+=($!)
    done
}

#!/usr/bin/env bash
# bench/compare.sh: synod against etcd 3.4 on this machine, in one command (issue 7).
#
#   bench/compare.sh            the full comparison (about 12 minutes on 2 cores): writes the
#                               raw results to bench/results, BENCHMARKS.md at the root, and the
#                               plots under bench/
#   bench/compare.sh --quick    a short run to check that everything works (under 3 minutes
#                               once built); writes under target/bench-compare/quick/ and
#                               leaves the committed comparison alone
#
# Options: --rounds N (throughput rounds per system, default 2), --keep-data (keep the
# members' data directories and logs), --skip-build.
#
# What it does, in order:
#   1. installs etcd 3.4 (Debian's etcd-server), etcdctl (etcd-client) and DejaVu Sans (for
#      the plots' text) if any is missing, and builds synod (release, feature bench);
#   2. throughput and latency: rounds alternate etcd, synod, etcd, synod, ..., each on a
#      freshly started 3-member cluster, running every workload at 1, 16, 64 and 256 clients;
#   3. failover: per system, kill -9 of the leader to the first successful write, over 20
#      trials (5 in --quick), restarting the killed member between trials;
#   4. memory: per system, VmRSS of each member after writing 1,000,000 keys of 256 bytes
#      (50,000 in --quick);
#   5. `synod bench report` writes the document and the plots from the raw results.
#
# Only one cluster runs at a time, so that neither competes with the other for the cores.
# Both run with their defaults (fsync on, heartbeat 100 ms, election timeout 1 s), each member
# its own process, data in a temporary directory on disk. Every member this script starts is
# recorded by PID and stopped on exit, on failure and on Ctrl-C; every wait has a deadline and
# every command a timeout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=full
ROUNDS=2
KEEP_DATA=0
SKIP_BUILD=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) MODE=quick ;;
        --rounds)
            ROUNDS=${2:?--rounds needs a number}
            shift
            ;;
        --keep-data) KEEP_DATA=1 ;;
        --skip-build) SKIP_BUILD=1 ;;
        -h | --help)
            sed -n '2,30p' "$0"
            exit 0
            ;;
        *)
            echo "compare.sh: unknown argument $1 (try --help)" >&2
            exit 2
            ;;
    esac
    shift
done
case "$ROUNDS" in
    '' | *[!0-9]* | 0)
        echo "compare.sh: --rounds takes a positive number" >&2
        exit 2
        ;;
esac

# ---------------------------------------------------------------------------------------------
# Parameters.

WORKLOADS=(put get get-serializable txn mixed)
CLIENT_COUNTS=(1 16 64 256)
# Clients share at most this many gRPC connections (fewer clients use one each).
CONNS_MAX=16
KEY_SPACE=10000
VALUE_SIZE=256
FAILOVER_PROBE_INTERVAL=5ms
FAILOVER_ATTEMPT_TIMEOUT=1s
MEMORY_SETTLE_SECONDS=5
MEMORY_PRELOAD_CONCURRENCY=256
if [ "$MODE" = quick ]; then
    WARMUP=0.2
    DURATION=0.4
    FAILOVER_TRIALS=5
    MEMORY_KEYS=50000
    MEMORY_SETTLE_SECONDS=2
    OUT_DIR=$ROOT/target/bench-compare/quick
    RESULTS=$OUT_DIR/results
    DOCUMENT=$OUT_DIR/BENCHMARKS.md
    PLOTS=$OUT_DIR
    NOTES=/dev/null
else
    WARMUP=1
    DURATION=3
    FAILOVER_TRIALS=20
    MEMORY_KEYS=1000000
    RESULTS=$ROOT/bench/results
    DOCUMENT=$ROOT/BENCHMARKS.md
    PLOTS=$ROOT/bench
    NOTES=$ROOT/bench/observations.md
fi

NAMES=(infra1 infra2 infra3)
# Client ports; each member's peer port is its client port + 1. Above the kernel's ephemeral
# range (32768-60999) and the integration tests' ports (10000-32199), so nothing else is handed
# them.
declare -A CLIENT_PORTS=([etcd]="61379 62379 63379" [synod]="61479 62479 63479")

SYNOD=$ROOT/target/release/synod
FONT=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf

# ---------------------------------------------------------------------------------------------
# Processes: every member started is in LIVE (pid -> 1) until it has been reaped. CHILD is the
# foreground tool running now, if any.

declare -A LIVE=()
declare -A PID=()     # member name -> pid, in the running cluster
declare -A DATA=()    # member name -> data directory, in the running cluster
declare -A LOG=()     # member name -> log file
SYSTEM=""             # the system whose cluster is running, if any
CHILD=""
WORK=""
STARTED_AT=$(date +%s)

log() { printf '== [%4ds] %s\n' "$(($(date +%s) - STARTED_AT))" "$*" >&2; }
warn() { printf '!! %s\n' "$*" >&2; }

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "$CHILD" ]; then
        kill -TERM "$CHILD" 2>/dev/null || true
    fi
    if [ "${#LIVE[@]}" -gt 0 ]; then
        log "stopping members still running: ${!LIVE[*]}"
        stop_pids "${!LIVE[@]}"
    fi
    if [ -n "$WORK" ] && [ -d "$WORK" ]; then
        if [ "$KEEP_DATA" = 1 ] || [ "$status" -ne 0 ]; then
            log "data and logs kept in $WORK"
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'warn "interrupted"; exit 130' INT
trap 'warn "terminated"; exit 143' TERM

# Stops the given member pids: SIGTERM, up to 15 s to exit, then SIGKILL; reaps each.
stop_pids() {
    local pid deadline=$(($(date +%s) + 15))
    for pid in "$@"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "$@"; do
        while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            warn "pid $pid ignored SIGTERM for 15 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.2
        fi
        unset "LIVE[$pid]"
    done
}

# Runs a tool in the background with a time limit and waits for it, so that a signal to this
# script is handled at once rather than after the tool ends. Its stdout goes to $RUN_OUT.
RUN_OUT=/dev/null
run_bounded() {
    local seconds=$1
    shift
    timeout --kill-after=5 "$seconds" "$@" >"$RUN_OUT" &
    CHILD=$!
    local status=0
    wait "$CHILD" || status=$?
    CHILD=""
    return "$status"
}

# ---------------------------------------------------------------------------------------------
# Clusters.

endpoint_of() { # system index
    local ports=(${CLIENT_PORTS[$1]})
    echo "127.0.0.1:${ports[$2]}"
}

all_endpoints() { # system
    local i eps=()
    for i in 0 1 2; do eps+=("$(endpoint_of "$1" "$i")"); done
    (IFS=,; echo "${eps[*]}")
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The command line of member `index` of `system`, into the array MEMBER_COMMAND.
member_command() { # system index
    local system=$1 i=$2 ports=(${CLIENT_PORTS[$1]})
    local name=${NAMES[$i]} client=${ports[$i]} peer=$((ports[$i] + 1))
    local cluster="" j
    for j in 0 1 2; do
        cluster+="${cluster:+,}${NAMES[$j]}=http://127.0.0.1:$((ports[$j] + 1))"
    done
    local flags=(
        --name "$name"
        --data-dir "${DATA[$name]}"
        --listen-client-urls "http://127.0.0.1:$client"
        --advertise-client-urls "http://127.0.0.1:$client"
        --listen-peer-urls "http://127.0.0.1:$peer"
        --initial-advertise-peer-urls "http://127.0.0.1:$peer"
        --initial-cluster "$cluster"
        --initial-cluster-token "compare-$system"
        --initial-cluster-state new
    )
    case "$system" in
        etcd) MEMBER_COMMAND=(etcd "${flags[@]}") ;;
        synod) MEMBER_COMMAND=("$SYNOD" serve "${flags[@]}") ;;
    esac
}

start_member() { # system index
    local name=${NAMES[$2]}
    member_command "$1" "$2"
    record_command "$1 member" "${MEMBER_COMMAND[@]}"
    "${MEMBER_COMMAND[@]}" >>"${LOG[$name]}" 2>&1 &
    PID[$name]=$!
    LIVE[${PID[$name]}]=1
    # Out of the job table: the shell still reaps it, without a "Killed" line when the
    # failover trials kill it; stop_pids watches it with kill -0.
    disown "${PID[$name]}"
}

# Starts a fresh 3-member cluster of `system` (data under $WORK/<system>-<phase>) and waits
# until a write commits through every member.
start_cluster() { # system phase
    local system=$1 phase=$2 i port
    [ -z "$SYSTEM" ] || { warn "a $SYSTEM cluster is still running"; return 1; }
    for port in ${CLIENT_PORTS[$system]}; do
        if port_in_use "$port" || port_in_use "$((port + 1))"; then
            warn "port $port or $((port + 1)) is in use: is another comparison running?"
            return 1
        fi
    done
    local dir=$WORK/$system-$phase
    mkdir -p "$dir"
    PID=()
    for i in 0 1 2; do
        local name=${NAMES[$i]}
        DATA[$name]=$dir/$name
        LOG[$name]=$dir/$name.log
        start_member "$system" "$i"
    done
    SYSTEM=$system
    wait_all_ready
}

# Waits (at most 60 s) until a put commits through each member of the running cluster.
wait_all_ready() {
    local i deadline=$(($(date +%s) + 60))
    for i in 0 1 2; do
        local ep
        ep=$(endpoint_of "$SYSTEM" "$i")
        until ETCDCTL_API=3 etcdctl --endpoints="$ep" --dial-timeout=1s --command-timeout=3s \
            put compare/ready "$i" >/dev/null 2>&1; do
            if [ "$(date +%s)" -ge "$deadline" ]; then
                warn "$SYSTEM member ${NAMES[$i]} ($ep) took no write within 60 s; its log:"
                tail -n 30 "${LOG[${NAMES[$i]}]}" >&2 || true
                return 1
            fi
            sleep 0.2
        done
    done
}

# Removes a stopped cluster's data and logs (unless --keep-data): a million keys take room.
discard_data() { # system phase
    [ "$KEEP_DATA" = 1 ] || rm -rf "${WORK:?}/$1-$2"
}

stop_cluster() {
    local pids=() name
    for name in "${NAMES[@]}"; do
        if [ -n "${PID[$name]:-}" ] && [ -n "${LIVE[${PID[$name]}]:-}" ]; then
            pids+=("${PID[$name]}")
        fi
    done
    [ "${#pids[@]}" -eq 0 ] || stop_pids "${pids[@]}"
    PID=()
    SYSTEM=""
}

# The running cluster's endpoints, leader first (so that a single client talks to the leader
# in both systems), from etcdctl's "endpoint status" (its fifth column says IS LEADER).
endpoints_leader_first() {
    local all status leader rest=() ep
    all=$(all_endpoints "$SYSTEM")
    status=$(ETCDCTL_API=3 etcdctl --endpoints="$all" --dial-timeout=2s --command-timeout=3s \
        endpoint status -w simple 2>/dev/null || true)
    leader=$(awk -F', ' '$5 == "true" { print $1; exit }' <<<"$status")
    if [ -z "$leader" ]; then
        warn "no member says it leads; using the endpoints in order"
        echo "$all"
        return
    fi
    IFS=, read -r -a eps <<<"$all"
    for ep in "${eps[@]}"; do
        [ "$ep" = "$leader" ] || rest+=("$ep")
    done
    echo "$leader,${rest[0]},${rest[1]}"
}

# ---------------------------------------------------------------------------------------------
# The record of what was run.

declare -A RECORDED=()
record_command() { # kind command...
    local kind=$1
    shift
    [ -z "${RECORDED[$kind]:-}" ] || return 0
    RECORDED[$kind]=1
    local arg text="" plain='^[A-Za-z0-9_./:=,@%+$-]+$'
    for arg in "$@"; do
        arg=${arg//$WORK/\$D}
        arg=${arg//$ROOT\//}
        # Quoted only where the shell needs it (printf %q also escapes commas).
        if [[ $arg =~ $plain ]]; then
            text+="$arg "
        else
            text+="$(printf '%q' "$arg") "
        fi
    done
    printf '# %s\n%s\n\n' "$kind" "${text% }" >>"$RESULTS/commands.txt"
}

machine_facts() {
    local cpu mem fs dev rota dsync
    cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
    fs=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
    dev=$(df -P "$WORK" | awk 'NR == 2 { print $1 }')
    dev=${dev#/dev/}
    rota=$(cat "/sys/block/${dev%%[0-9]*}/queue/rotational" 2>/dev/null || echo "?")
    # The disk's synchronous write rate: 500 writes of 4 KiB, each with O_DSYNC, over a file
    # written beforehand, as a write-ahead log with preallocated segments syncs its data.
    dd if=/dev/zero of="$WORK/dsync-test" bs=4k count=500 status=none
    sync
    dsync=$(dd if=/dev/zero of="$WORK/dsync-test" bs=4k count=500 oflag=dsync conv=notrunc 2>&1 |
        awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") print $(i - 1) }')
    rm -f "$WORK/dsync-test"
    local dsync_text="?"
    if [ -n "$dsync" ]; then
        dsync_text=$(awk -v s="$dsync" 'BEGIN { printf "%.0f writes/s (%.2f ms each)", 500 / s, s * 2 }')
    fi
    local rev dirty=""
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] ||
        dirty=" (with uncommitted changes)"
    {
        echo "cores: $(nproc) ($cpu)"
        echo "memory: $mem"
        echo "kernel: $(uname -sr)"
        echo "disk: $fs (rotational flag: $rota); 4 KiB O_DSYNC writes: $dsync_text"
        echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "etcd: $(etcd --version | head -n 1) ($(etcd --version | awk -F': ' '/Go Version/ { print $2 }'))"
        echo "synod: git $rev$dirty, $("$SYNOD" --version)"
        echo "rustc: $(rustc --version)"
        echo "load generator: synod bench (etcd-client crate), on the same machine"
    } >"$RESULTS/machine.txt"
}

# ---------------------------------------------------------------------------------------------
# Setup.

as_root() {
    if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then
        sudo "$@"
    else
        "$@"
    fi
}

apt_install() {
    log "installing $* from Debian"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2; then
        as_root apt-get update >&2
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "$@" >&2
    fi
}

command -v etcd >/dev/null || apt_install etcd-server
command -v etcdctl >/dev/null || apt_install etcd-client
[ -f "$FONT" ] || apt_install fonts-dejavu-core
if ! etcd --version | grep -q 'etcd Version: 3\.4\.'; then
    warn "expected etcd 3.4, found: $(etcd --version | head -n 1)"
fi
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    warn "the system's etcd service is running and will share the CPU; consider stopping it"
fi

if [ "$SKIP_BUILD" = 0 ]; then
    # etcd-client's build runs protoc; protox stands in for it (.cargo/config.toml).
    if [ ! -x target/tools/bin/protox ]; then
        log "installing protox (pure-Rust protoc) into target/tools"
        cargo install protox --version 0.10.0 --features bin --locked --root target/tools
    fi
    log "building synod (release, feature bench)"
    cargo build --release --locked --features bench -p synod
fi
[ -x "$SYNOD" ] || { warn "$SYNOD is missing (drop --skip-build)"; exit 1; }

# On disk, not tmpfs: fsync must cost what it costs.
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/synod-compare.XXXXXX")
rm -rf "$RESULTS"
mkdir -p "$RESULTS/runs" "$RESULTS/failover" "$RESULTS/memory"
: >"$RESULTS/commands.txt"
record_command "the comparison" bench/compare.sh $([ "$MODE" = quick ] && echo --quick)
machine_facts
{
    echo "mode: $MODE"
    echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "rounds: $ROUNDS"
    echo "warmup_seconds: $WARMUP"
    echo "duration_seconds: $DURATION"
    echo "key_space: $KEY_SPACE"
    echo "value_size_bytes: $VALUE_SIZE"
    echo "conns_rule: min(clients, $CONNS_MAX) gRPC connections"
    echo "client_counts: ${CLIENT_COUNTS[*]}"
    echo "failover_trials: $FAILOVER_TRIALS"
    echo "failover_probe_interval: $FAILOVER_PROBE_INTERVAL"
    echo "failover_attempt_timeout: $FAILOVER_ATTEMPT_TIMEOUT"
    echo "memory_keys: $MEMORY_KEYS"
    echo "memory_settle_seconds: $MEMORY_SETTLE_SECONDS"
    echo "memory_preload_concurrency: $MEMORY_PRELOAD_CONCURRENCY"
    echo "data_dir_filesystem: $(df -PT "$WORK" | awk 'NR == 2 { print $2 }')"
    echo "results_dir: ${RESULTS#$ROOT/}"
} >"$RESULTS/settings.txt"
export SYNOD_LOG_LEVEL=warn

# ---------------------------------------------------------------------------------------------
# 0. The floor of a replicated write: one fdatasync on the data's file system plus one loopback
#    round trip, measured with nothing else in the path.

log "the floor: fdatasync and loopback round trip"
record_command "the floor of a replicated write" "$SYNOD" bench floor --dir "$WORK" --json
RUN_OUT=$RESULTS/floor.json
if ! run_bounded 120 "$SYNOD" bench floor --dir "$WORK" --json; then
    warn "the floor measurement failed"
    rm -f "$RESULTS/floor.json"
fi

# ---------------------------------------------------------------------------------------------
# 1. Throughput and latency.

# The longest a run may take: warm-up, measurement, preloading and a request timeout to spare.
RUN_SECONDS_MAX=120
for round in $(seq 1 "$ROUNDS"); do
    for system in etcd synod; do
        log "round $round of $ROUNDS: $system"
        start_cluster "$system" "round$round"
        endpoints=$(endpoints_leader_first)
        # The members' CPU per request is read from their /proc/<pid>/stat.
        member_pids=()
        for name in "${NAMES[@]}"; do member_pids+=("${PID[$name]}"); done
        server_pids=$(IFS=,; echo "${member_pids[*]}")
        preloaded=0
        for workload in "${WORKLOADS[@]}"; do
            for clients in "${CLIENT_COUNTS[@]}"; do
                conns=$((clients < CONNS_MAX ? clients : CONNS_MAX))
                args=(
                    --endpoints "$endpoints" --clients "$clients" --conns "$conns"
                    --workload "$workload" --warmup "${WARMUP}s" --duration "${DURATION}s"
                    --key-space "$KEY_SPACE" --value-size "$VALUE_SIZE" --json
                    --server-pids "$server_pids"
                )
                # The read workloads need every key; the first of them writes them.
                if [ "$workload" != put ]; then
                    if [ "$preloaded" = 1 ]; then args+=(--skip-preload); fi
                    preloaded=1
                fi
                record_command "a throughput run" "$SYNOD" bench "${args[@]}"
                out=$RESULTS/runs/$system.r$round.$workload.c$clients.json
                RUN_OUT=$out
                if ! run_bounded "$RUN_SECONDS_MAX" "$SYNOD" bench "${args[@]}"; then
                    warn "$system $workload at $clients clients failed: $(head -c 300 "$out")"
                    rm -f "$out"
                fi
                RUN_OUT=/dev/null
            done
        done
        stop_cluster
        discard_data "$system" "round$round"
    done
done

# ---------------------------------------------------------------------------------------------
# 2. Failover.

for system in etcd synod; do
    log "failover: $system, $FAILOVER_TRIALS trials"
    start_cluster "$system" failover
    for trial in $(seq 1 "$FAILOVER_TRIALS"); do
        pids=()
        for name in "${NAMES[@]}"; do pids+=("${PID[$name]}"); done
        args=(
            failover --endpoints "$(all_endpoints "$system")"
            --pids "$(IFS=,; echo "${pids[*]}")" --probe-interval "$FAILOVER_PROBE_INTERVAL"
            --attempt-timeout "$FAILOVER_ATTEMPT_TIMEOUT" --json
        )
        record_command "a failover trial" "$SYNOD" bench "${args[@]}"
        out=$RESULTS/failover/$system.t$trial.json
        RUN_OUT=$out
        if ! run_bounded 120 "$SYNOD" bench "${args[@]}"; then
            warn "$system failover trial $trial failed"
            rm -f "$out"
        fi
        RUN_OUT=/dev/null
        [ ! -s "$out" ] || log "  trial $trial: $(grep -o '"failover_ms":[0-9.]*' "$out")"
        # Restart whichever member died (the killed leader), on its own data.
        for i in 0 1 2; do
            name=${NAMES[$i]}
            if ! kill -0 "${PID[$name]}" 2>/dev/null; then
                unset "LIVE[${PID[$name]}]"
                start_member "$system" "$i"
            fi
        done
        wait_all_ready
        sleep 0.5
    done
    stop_cluster
    discard_data "$system" failover
done

# ---------------------------------------------------------------------------------------------
# 3. Memory.

for system in etcd synod; do
    log "memory: $system, writing $MEMORY_KEYS keys"
    start_cluster "$system" memory
    endpoints=$(endpoints_leader_first)
    args=(
        --endpoints "$endpoints" --clients 3 --conns 3 --workload get-serializable
        --key-space "$MEMORY_KEYS" --value-size "$VALUE_SIZE" --preload-concurrency "$MEMORY_PRELOAD_CONCURRENCY"
        --total 1 --warmup 0s --duration 1s --timeout 30s --json
    )
    record_command "loading the keys for the memory measurement" "$SYNOD" bench "${args[@]}"
    load_started=$(date +%s.%N)
    run_bounded 900 "$SYNOD" bench "${args[@]}"
    load_seconds=$(awk -v a="$load_started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    sleep "$MEMORY_SETTLE_SECONDS"
    members=""
    for name in "${NAMES[@]}"; do
        status=/proc/${PID[$name]}/status
        rss=$(awk '/^VmRSS/ { print $2 }' "$status")
        hwm=$(awk '/^VmHWM/ { print $2 }' "$status")
        disk=$(du -sk "${DATA[$name]}" | cut -f1)
        members+="${members:+,}{\"name\":\"$name\",\"vm_rss_kb\":$rss,\"vm_hwm_kb\":$hwm,\"data_dir_kb\":$disk}"
        log "  $name: VmRSS $((rss / 1024)) MiB, VmHWM $((hwm / 1024)) MiB, data $((disk / 1024)) MiB"
    done
    printf '{"keys":%d,"value_size_bytes":%d,"load_seconds":%s,"members":[%s]}\n' \
        "$MEMORY_KEYS" "$VALUE_SIZE" "$load_seconds" "$members" >"$RESULTS/memory/$system.json"
    stop_cluster
    discard_data "$system" memory
done

# ---------------------------------------------------------------------------------------------
# 4. The document.

elapsed=$(($(date +%s) - STARTED_AT))
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS/machine.txt"
echo "elapsed: $((elapsed / 60)) min $((elapsed % 60)) s" >>"$RESULTS/settings.txt"
report=(
    bench report --results "$RESULTS" --out "$DOCUMENT" --plots "$PLOTS" --notes "$NOTES"
    --font "$FONT"
)
record_command "the document and plots" "$SYNOD" "${report[@]}"
"$SYNOD" "${report[@]}"
log "done in $((elapsed / 60)) min $((elapsed % 60)) s: $DOCUMENT"

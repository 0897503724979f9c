#!/usr/bin/env bash
# KeyRelay throughput/latency benchmark: wrk against a local mock upstream, directly and through KeyRelay.
# See bench/README.md. All traffic stays on 127.0.0.1.
#
# Environment:
#   DURATION=10s            wrk duration per scenario
#   KEYRELAY_BIN=path       use this keyrelay binary instead of building build-bench/
#   BUILD_DIR=path          build directory (default: <repo>/build-bench)
#   KEYRELAY_CMAKE_ARGS=..  extra cmake arguments for the build (word-split)
#   WRK_TIMEOUT=2s          wrk per-request timeout
#   RESULTS_DIR=path        keep raw wrk output and logs here (default: a temp dir, deleted on exit)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
DURATION=${DURATION:-10s}
BUILD_DIR=${BUILD_DIR:-$REPO_DIR/build-bench}
WRK_TIMEOUT=${WRK_TIMEOUT:-2s}
READY_TIMEOUT_S=15

die() { echo "run.sh: $*" >&2; exit 1; }

# --- prerequisites ------------------------------------------------------------------------------
command -v wrk >/dev/null 2>&1 || die "wrk not found; install it with: apt-get install wrk"
command -v curl >/dev/null 2>&1 || die "curl not found; install it with: apt-get install curl"
CC=${CC:-cc}
command -v "$CC" >/dev/null 2>&1 || die "no C compiler ($CC); install one with: apt-get install gcc"
[[ $DURATION =~ ^[0-9]+[smh]?$ ]] || die "DURATION must look like 10s, 1m or 30 (got '$DURATION')"

# Duration in seconds, for bounding wrk with timeout(1).
duration_seconds() {
    local d=$1 n=${1%[smh]}
    case $d in
        *m) echo $((n * 60)) ;;
        *h) echo $((n * 3600)) ;;
        *) echo "$n" ;;
    esac
}
DURATION_S=$(duration_seconds "$DURATION")

# --- keyrelay binary ----------------------------------------------------------------------------
if [[ -n ${KEYRELAY_BIN:-} ]]; then
    [[ -x $KEYRELAY_BIN ]] || die "KEYRELAY_BIN=$KEYRELAY_BIN is not an executable"
else
    KEYRELAY_BIN=$BUILD_DIR/app/keyrelay
    if [[ ! -x $KEYRELAY_BIN ]]; then
        echo "Building Release keyrelay into $BUILD_DIR ..." >&2
        # shellcheck disable=SC2086  # KEYRELAY_CMAKE_ARGS is meant to be word-split
        if ! cmake -S "$REPO_DIR" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
                -DKEYRELAY_BUILD_GUI=OFF -DKEYRELAY_BUILD_TESTS=OFF ${KEYRELAY_CMAKE_ARGS:-} >&2 \
            || ! ninja -C "$BUILD_DIR" -j2 >&2; then
            die "building keyrelay failed (see the compiler output above)"
        fi
    fi
fi

# --- temp dir, process bookkeeping, cleanup ----------------------------------------------------
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/keyrelay-bench.XXXXXX")
if [[ -n ${RESULTS_DIR:-} ]]; then
    mkdir -p "$RESULTS_DIR"
    RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
else
    RESULTS_DIR=$WORK_DIR
fi
MOCK_PID=
KR_PID=
WRK_PID=

STOP_RC=
stop_process() { # pid name: SIGTERM, wait up to 5 s, then SIGKILL; sets STOP_RC to the exit status
    local pid=$1 name=$2 i
    STOP_RC=
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: $name (pid $pid) did not stop within 5 s of SIGTERM; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    STOP_RC=0
    wait "$pid" 2>/dev/null || STOP_RC=$?
    return 0
}

# shellcheck disable=SC2317  # invoked through trap
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $WRK_PID ]]; then stop_process "$WRK_PID" wrk; fi
    if [[ -n $KR_PID ]]; then stop_process "$KR_PID" keyrelay; fi
    if [[ -n $MOCK_PID ]]; then stop_process "$MOCK_PID" mock_upstream; fi
    if [[ $RESULTS_DIR != "$WORK_DIR" ]]; then
        rm -rf "$WORK_DIR"
    elif [[ $rc -ne 0 ]]; then
        echo "run.sh: failed (exit $rc); logs kept in $WORK_DIR" >&2
        return
    else
        rm -rf "$WORK_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ports --------------------------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
USED_PORTS=" 9000 "
PICKED_PORT=
pick_port() { # sets PICKED_PORT (not via $(...), so USED_PORTS persists)
    local lo hi p i
    read -r lo hi </proc/sys/net/ipv4/ip_local_port_range || { lo=32768; hi=60999; }
    for ((i = 0; i < 200; i++)); do
        p=$((lo + (RANDOM * 32768 + RANDOM) % (hi - lo + 1)))
        [[ $USED_PORTS == *" $p "* ]] && continue
        port_in_use "$p" && continue
        USED_PORTS+="$p "
        PICKED_PORT=$p
        return 0
    done
    die "could not find a free port"
}

# wait_ready pid name logfile pattern url: poll (bounded) until the log shows pattern and url answers 200
wait_ready() {
    local pid=$1 name=$2 log=$3 pattern=$4 url=$5 i
    for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "run.sh: $name exited before it was ready; its output:" >&2
            cat "$log" "$log.err" 2>/dev/null >&2 || true
            return 1
        fi
        if grep -q "$pattern" "$log" 2>/dev/null \
            && [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]]; then
            return 0
        fi
        sleep 0.1
    done
    echo "run.sh: $name not ready after ${READY_TIMEOUT_S}s; its output:" >&2
    cat "$log" "$log.err" 2>/dev/null >&2 || true
    return 1
}

# --- mock upstream ------------------------------------------------------------------------------
"$CC" -std=c11 -O2 -Wall -Wextra -Werror -o "$WORK_DIR/mock_upstream" "$SCRIPT_DIR/mock_upstream.c"

DUMP_FILE=$RESULTS_DIR/upstream-dump.txt # requests tagged X-Bench-Dump, as the mock received them
: >"$DUMP_FILE"
start_mock() {
    pick_port
    MOCK_PORT=$PICKED_PORT
    "$WORK_DIR/mock_upstream" "$MOCK_PORT" "$DUMP_FILE" >"$RESULTS_DIR/mock.log" 2>"$RESULTS_DIR/mock.log.err" &
    MOCK_PID=$!
    wait_ready "$MOCK_PID" mock_upstream "$RESULTS_DIR/mock.log" "listening on" \
        "http://127.0.0.1:$MOCK_PORT/health"
}
for attempt in 1 2 3; do
    start_mock && break
    stop_process "$MOCK_PID" mock_upstream; MOCK_PID=
    [[ $attempt -lt 3 ]] || die "mock upstream did not start"
done

# --- keyrelay -----------------------------------------------------------------------------------
KEYS_FILE=$WORK_DIR/keys.txt
umask 077
printf '# fake keys for the benchmark\nsk-bench-fake-key-one-0000000000\nsk-bench-fake-key-two-0000000000\nsk-bench-fake-key-three-00000000\n' >"$KEYS_FILE"

start_keyrelay() {
    pick_port
    KR_PORT=$PICKED_PORT
    "$KEYRELAY_BIN" --headless --listen "127.0.0.1:$KR_PORT" --upstream "http://127.0.0.1:$MOCK_PORT" \
        --keys-file "$KEYS_FILE" --quiet >"$RESULTS_DIR/keyrelay.log" 2>"$RESULTS_DIR/keyrelay.log.err" &
    KR_PID=$!
    wait_ready "$KR_PID" keyrelay "$RESULTS_DIR/keyrelay.log" "listening on" \
        "http://127.0.0.1:$KR_PORT/_keyrelay/health"
}
for attempt in 1 2 3; do
    start_keyrelay && break
    stop_process "$KR_PID" keyrelay; KR_PID=
    [[ $attempt -lt 3 ]] || die "keyrelay did not start"
done

# Sanity check: one tagged request through KeyRelay must come back 200 with the mock's body, and the
# mock must have received it with a pool key and the system message moved (the reorder rule ran).
declare -a ROWS=() NOTES=()
check_body=$WORK_DIR/check.json
check_status=$(curl -s -o "$check_body" -w '%{http_code}' --max-time 5 -X POST \
    -H 'Content-Type: application/json' -H 'Authorization: Bearer client-key' -H 'X-Bench-Dump: 1' \
    --data '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"s"},{"role":"user","content":"1"},{"role":"user","content":"2"},{"role":"user","content":"3"},{"role":"user","content":"4"}]}' \
    "http://127.0.0.1:$KR_PORT/v1/chat/completions" || true)
if [[ $check_status != 200 ]] || ! grep -q '"usage"' "$check_body"; then
    echo "run.sh: sanity request through keyrelay returned HTTP $check_status:" >&2
    cat "$check_body" >&2 2>/dev/null || true
    echo >&2
    die "keyrelay does not forward correctly; not benchmarking"
fi
if [[ ! -s $DUMP_FILE ]]; then
    NOTES+=("sanity check: the mock recorded nothing (X-Bench-Dump header not forwarded?); reorder and key swap NOT verified")
else
    if grep -qi '^Authorization: Bearer sk-bench-fake-key-' "$DUMP_FILE" && ! grep -q 'client-key' "$DUMP_FILE"; then
        NOTES+=("sanity check: upstream saw a pool key, not the client's key")
    else
        NOTES+=("SANITY CHECK FAILED: upstream did not see a pool key in Authorization (see $DUMP_FILE)")
    fi
    if grep -qF '[{"role":"user","content":"1"},{"role":"system","content":"s"},{"role":"user","content":"2"}' "$DUMP_FILE"; then
        NOTES+=("sanity check: upstream saw the system message moved to index 1 (reorder rule ran)")
    else
        NOTES+=("SANITY CHECK FAILED: upstream body was not reordered as expected (see $DUMP_FILE)")
    fi
fi

# --- scenarios ----------------------------------------------------------------------------------
cpu_ticks() { # utime+stime of a pid, in clock ticks
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    stat=${stat##*) }
    # fields after "comm)": state is $1, utime is field 14 overall => 12th here, stime 13th
    # shellcheck disable=SC2086
    set -- $stat
    echo $(( ${12} + ${13} ))
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# run_wrk label port connections threads
run_wrk() {
    local label=$1 port=$2 conns=$3 threads=$4
    local out=$RESULTS_DIR/wrk-${label// /_}-c$conns.txt
    local kr_before=0 kr_after=0
    [[ $label == keyrelay ]] && kr_before=$(cpu_ticks "$KR_PID")
    echo "== $label, $conns connection(s), $threads thread(s), $DURATION" >&2
    # Halfway through a keyrelay run, sample its thread count and its connections to the mock.
    local sample=$WORK_DIR/sample-c$conns.txt sampler=
    if [[ $label == keyrelay ]]; then
        (
            sleep $((DURATION_S / 2 > 0 ? DURATION_S / 2 : 1))
            threads_now=$(awk '/^Threads:/ {print $2}' "/proc/$KR_PID/status" 2>/dev/null || echo '?')
            upstream_now='?'
            if command -v ss >/dev/null 2>&1; then
                upstream_now=$(ss -Htn state established "( dport = :$MOCK_PORT )" 2>/dev/null | wc -l)
            fi
            echo "$threads_now threads, $upstream_now connections to the mock" >"$sample"
        ) &
        sampler=$!
    fi
    local rc=0
    # In the background so that a signal to this script interrupts `wait` and the trap stops wrk.
    timeout --kill-after=5 $((DURATION_S + 30)) \
        wrk --latency -t"$threads" -c"$conns" -d"$DURATION" --timeout "$WRK_TIMEOUT" \
        -s "$SCRIPT_DIR/post_chat.lua" "http://127.0.0.1:$port/v1/chat/completions" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || rc=$?
    WRK_PID=
    [[ $label == keyrelay ]] && kr_after=$(cpu_ticks "$KR_PID")
    if [[ -n $sampler ]]; then wait "$sampler" || true; fi
    sed 's/^/    /' "$out" >&2
    if [[ $rc -ne 0 ]]; then
        NOTES+=("$label c=$conns: wrk exited with status $rc (see output above)")
    fi

    local rps p50 p99
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
    p50=$(awk '$1 == "50%" {print $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    ROWS+=("| $label | $conns | ${rps:-n/a} | ${p50:-n/a} | ${p99:-n/a} |")

    local result
    result=$(grep '^BENCH_RESULT' "$out" || true)
    if [[ -n $result ]]; then
        local connect rd wr status tmo
        connect=$(sed -n 's/.* connect=\([0-9]*\).*/\1/p' <<<"$result")
        rd=$(sed -n 's/.* read=\([0-9]*\).*/\1/p' <<<"$result")
        wr=$(sed -n 's/.* write=\([0-9]*\).*/\1/p' <<<"$result")
        status=$(sed -n 's/.* status=\([0-9]*\).*/\1/p' <<<"$result")
        tmo=$(sed -n 's/.* timeout=\([0-9]*\).*/\1/p' <<<"$result")
        if ((connect + rd + wr + status + tmo > 0)); then
            NOTES+=("$label c=$conns: ERRORS: socket connect=$connect read=$rd write=$wr timeout=$tmo; non-2xx/3xx responses=$status")
        fi
    else
        NOTES+=("$label c=$conns: no BENCH_RESULT line from wrk (run incomplete?)")
    fi
    if [[ $label == keyrelay ]]; then
        if ! kill -0 "$KR_PID" 2>/dev/null; then
            NOTES+=("$label c=$conns: KEYRELAY PROCESS DIED during this run")
        else
            local secs
            secs=$(awk -v t=$((kr_after - kr_before)) -v h="$CLK_TCK" -v d="$DURATION_S" \
                'BEGIN { printf "%.1f s CPU over %d s (%.0f%% of one core)", t / h, d, d ? 100 * t / h / d : 0 }')
            NOTES+=("$label c=$conns: keyrelay used $secs; mid-run: $(cat "$sample" 2>/dev/null || echo 'no sample')")
        fi
    fi
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
run_wrk direct "$MOCK_PORT" 1 1
run_wrk direct "$MOCK_PORT" 64 2
run_wrk keyrelay "$KR_PORT" 1 1
run_wrk keyrelay "$KR_PORT" 64 2
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

KR_HWM=n/a
KR_RSS=n/a
if kill -0 "$KR_PID" 2>/dev/null; then
    KR_HWM=$(awk '/^VmHWM:/ {print $2 " " $3}' "/proc/$KR_PID/status")
    KR_RSS=$(awk '/^VmRSS:/ {print $2 " " $3}' "/proc/$KR_PID/status")
    KR_HEALTH=$(curl -s --max-time 2 "http://127.0.0.1:$KR_PORT/_keyrelay/health" || true)
fi
stop_process "$KR_PID" keyrelay
KR_EXIT=$STOP_RC
KR_PID=

# --- report -------------------------------------------------------------------------------------
CPU_MODEL=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
KR_VERSION=$("$KEYRELAY_BIN" --headless --version 2>/dev/null | head -n1 || true)
WRK_VERSION=$(wrk -v 2>&1 | head -n1 || true)

echo
echo "## KeyRelay benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')"
echo
echo "wrk --latency, ${DURATION} per row, POST /v1/chat/completions (5 messages, reorder rule applies), mock upstream on 127.0.0.1"
echo
echo "| target | connections | requests/s | p50 | p99 |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "- keyrelay peak RSS (VmHWM): $KR_HWM (VmRSS at end: $KR_RSS)"
echo "- keyrelay exit status after SIGTERM: $KR_EXIT"
[[ -n ${KR_HEALTH:-} ]] && echo "- keyrelay health after the runs: $KR_HEALTH"
echo "- machine: nproc=$(nproc), CPU: ${CPU_MODEL:-unknown}, kernel $(uname -r)"
echo "- load average (1/5/15 min) before: $LOAD_BEFORE, after: $LOAD_AFTER"
echo "- keyrelay startup: $(head -n1 "$RESULTS_DIR/keyrelay.log")"
echo "- keyrelay: $KEYRELAY_BIN (${KR_VERSION:-version unknown}); $WRK_VERSION"
for note in "${NOTES[@]}"; do
    echo "- $note"
done
if [[ -s $RESULTS_DIR/keyrelay.log.err ]]; then
    echo
    echo "keyrelay stderr, distinct lines with counts ($(wc -l <"$RESULTS_DIR/keyrelay.log.err") lines in all):"
    echo '```'
    sort "$RESULTS_DIR/keyrelay.log.err" | uniq -c | sort -rn | head -n 20
    echo '```'
fi
[[ $RESULTS_DIR != "$WORK_DIR" ]] && echo && echo "Raw wrk output and logs: $RESULTS_DIR"
exit 0

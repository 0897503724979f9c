#!/usr/bin/env bash
# KeyRelay benchmark: the fast C mock upstream directly, nginx, the original Go proxy and KeyRelay,
# measured the same way in one run, printed as one Markdown table. See bench/README.md.
# Everything runs on 127.0.0.1 with free ephemeral ports; nothing is installed, nothing leaves the machine.
#
# Usage: bench/compare.sh [--smoke] [--build-dir DIR]
#   --smoke          every part with tiny durations and counts (CI; < 60 s); no timing assertions
#   --build-dir DIR  use DIR/app/keyrelay (built there if missing)
# Environment (defaults: full run / smoke):
#   DURATION=5 / 1            seconds of wrk per row
#   SSE_RUNS=50 / 3           sequential 50-chunk streams for the SSE time-to-first-byte row
#   STREAM_COUNTS="200 1000" / "10 50"   concurrent timed streams
#   STREAM_CHUNKS=50 / 10, STREAM_INTERVAL_MS=100 / 50   a timed stream (50 x 100 ms = 5 s)
#   HTTPS=1                   also KeyRelay through a local nginx, plain HTTP and HTTPS with HTTP/2
#                             (needs openssl, and root for a private mount namespace: see README)
#   KEYRELAY_BIN=path         the KeyRelay binary (default BUILD_DIR/app/keyrelay)
#   KEYRELAY_B_BIN=path       a second KeyRelay build, measured over the HTTPS upstream (column "B")
#   KEYRELAY_B_LABEL=text     its column title
#   WRK_TIMEOUT=2s            wrk's per-request timeout
#   RESULTS_DIR=path          keep raw outputs and logs there (default: temporary, deleted)
# Exit status: 0 when every part ran; 1 when something failed to start, answer or run (the table is
# still printed, with the failures listed under it).
set -uo pipefail
{ # the whole script is one compound command: bash parses it before running it, so editing this
  # file while a run is going on cannot change what that run does

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd)
SMOKE=${SMOKE:-0}
BUILD_DIR=${BUILD_DIR:-$REPO_DIR/build-bench}
while [[ $# -gt 0 ]]; do
    case $1 in
        --smoke) SMOKE=1 ;;
        --build-dir) BUILD_DIR=${2:?--build-dir needs a directory}; shift ;;
        --build-dir=*) BUILD_DIR=${1#*=} ;;
        -h | --help) sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "compare.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
if [[ $SMOKE == 1 ]]; then
    DURATION=${DURATION:-1} SSE_RUNS=${SSE_RUNS:-3} STREAM_COUNTS=${STREAM_COUNTS:-"10 50"}
    STREAM_CHUNKS=${STREAM_CHUNKS:-10} STREAM_INTERVAL_MS=${STREAM_INTERVAL_MS:-50}
else
    DURATION=${DURATION:-5} SSE_RUNS=${SSE_RUNS:-50} STREAM_COUNTS=${STREAM_COUNTS:-"200 1000"}
    STREAM_CHUNKS=${STREAM_CHUNKS:-50} STREAM_INTERVAL_MS=${STREAM_INTERVAL_MS:-100}
fi
HTTPS=${HTTPS:-1}
WRK_TIMEOUT=${WRK_TIMEOUT:-2s}
CONNS_LIST=(1 16 64)
READY_TIMEOUT_S=15
CC=${CC:-cc}
START_TS=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# Everything talks to 127.0.0.1: no proxy from the environment may get in the way (curl, Go, Qt).
unset http_proxy https_proxy all_proxy no_proxy HTTP_PROXY HTTPS_PROXY ALL_PROXY NO_PROXY

log() { echo "compare.sh: $*" >&2; }
die() { log "$*"; exit 1; }
FAILURES=()
fail() { FAILURES+=("$*"); log "FAILED: $*"; }

DURATION=${DURATION%s}
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 ]] || die "DURATION is whole seconds, e.g. 5 or 5s (got '$DURATION')"
for tool in wrk curl "$CC" go nginx; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian packages: wrk curl gcc golang-go nginx-light)"
done
if [[ $HTTPS == 1 ]]; then
    if ! command -v openssl >/dev/null 2>&1; then
        log "openssl not found: HTTPS columns skipped"; HTTPS=0
    elif ! unshare --mount -- true 2>/dev/null; then
        log "cannot make a private mount namespace (needs root): HTTPS columns skipped"; HTTPS=0
    elif [[ ! -d /etc/ssl/certs ]]; then
        log "no /etc/ssl/certs (package ca-certificates) to add the test CA to: HTTPS columns skipped"; HTTPS=0
    fi
fi

# Streams need descriptors: up to 2 per stream in each proxy, 1 per stream in the mock and the client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if (($(ulimit -n) < 4096)); then log "warning: only $(ulimit -n) file descriptors; large stream counts may fail"; fi

# --- keyrelay binary ----------------------------------------------------------------------------
if [[ -n ${KEYRELAY_BIN:-} ]]; then
    [[ -x $KEYRELAY_BIN ]] || die "KEYRELAY_BIN=$KEYRELAY_BIN is not an executable"
else
    KEYRELAY_BIN=$BUILD_DIR/app/keyrelay
    if [[ ! -x $KEYRELAY_BIN ]]; then
        log "building Release keyrelay into $BUILD_DIR ..."
        cmake -S "$REPO_DIR" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DKEYRELAY_BUILD_GUI=OFF \
            -DKEYRELAY_BUILD_TESTS=OFF >&2 && cmake --build "$BUILD_DIR" -j2 >&2 \
            || die "building keyrelay failed (see the compiler output above)"
    fi
fi
if [[ -n ${KEYRELAY_B_BIN:-} && ! -x $KEYRELAY_B_BIN ]]; then die "KEYRELAY_B_BIN=$KEYRELAY_B_BIN is not an executable"; fi

# --- temp dir, processes, cleanup ---------------------------------------------------------------
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/keyrelay-compare.XXXXXX")
chmod 755 "$WORK_DIR" # nginx workers may run as another user
if [[ -n ${RESULTS_DIR:-} ]]; then
    mkdir -p "$RESULTS_DIR" && RESULTS_DIR=$(cd "$RESULTS_DIR" && pwd)
else
    RESULTS_DIR=$WORK_DIR
fi
declare -A PID=()   # name -> pid of a process this script started
BG_PIDS=()          # wrk, samplers, clients

STOP_RC=
stop_pid() { # pid: SIGTERM, up to 5 s, then SIGKILL; STOP_RC is its exit status
    local pid=$1 i
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
    fi
    STOP_RC=0
    wait "$pid" 2>/dev/null || STOP_RC=$?
    return 0
}
bg_done() { # pid: forget a finished background helper
    local i
    for i in "${!BG_PIDS[@]}"; do [[ ${BG_PIDS[$i]} == "$1" ]] && unset "BG_PIDS[$i]"; done
}
# shellcheck disable=SC2317  # called through trap
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${BG_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PID[@]}"; do stop_pid "$p"; done
    if [[ $RESULTS_DIR == "$WORK_DIR" && $rc -ne 0 && $rc -ne 1 ]]; then
        log "interrupted; logs kept in $WORK_DIR"
    elif [[ $RESULTS_DIR == "$WORK_DIR" && ${#FAILURES[@]} -gt 0 ]]; then
        log "failures; logs kept in $WORK_DIR"
    else
        rm -rf "$WORK_DIR"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- ports --------------------------------------------------------------------------------------
port_in_use() { # a listener, or any socket bound to the port (e.g. the local end of a client connection)
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    command -v ss >/dev/null 2>&1 && [[ -n $(ss -Htan "( sport = :$1 )" 2>/dev/null) ]]
}
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

# wait_ready name url: poll (bounded) until url answers 200 and the process is alive
wait_ready() {
    local name=$1 url=$2 i
    for ((i = 0; i < READY_TIMEOUT_S * 10; i++)); do
        if ! kill -0 "${PID[$name]}" 2>/dev/null; then
            log "$name exited before it was ready; its output:"
            cat "$RESULTS_DIR/$name.log" "$RESULTS_DIR/$name.err" >&2 2>/dev/null
            return 1
        fi
        [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true) == 200 ]] && return 0
        sleep 0.1
    done
    log "$name not ready after ${READY_TIMEOUT_S}s; its output:"
    cat "$RESULTS_DIR/$name.log" "$RESULTS_DIR/$name.err" >&2 2>/dev/null
    return 1
}

# start name ready_url cmd...: start in the background, logs in RESULTS_DIR, wait until ready
start() {
    local name=$1 url=$2
    shift 2
    "$@" >"$RESULTS_DIR/$name.log" 2>"$RESULTS_DIR/$name.err" &
    PID[$name]=$!
    wait_ready "$name" "$url"
}
# start_retry name setup-function: the function picks its port(s) and sets START_URL and START_CMD;
# up to 3 attempts, because a port that looked free can be taken before the server binds it
START_URL=
START_CMD=()
start_retry() {
    local name=$1 setup=$2 attempt
    for attempt in 1 2 3; do
        "$setup" || return 1
        start "$name" "$START_URL" "${START_CMD[@]}" && return 0
        stop_pid "${PID[$name]}"
        unset "PID[$name]"
        ((attempt < 3)) && log "$name: retrying on another port"
    done
    return 1
}

# --- build the helpers --------------------------------------------------------------------------
log "building the mock, the stream client and the Go proxy ..."
"$CC" -std=c11 -O2 -Wall -Wextra -Werror -o "$WORK_DIR/mock_upstream" "$SCRIPT_DIR/mock_upstream.c" \
    || die "building mock_upstream failed"
"$CC" -std=c11 -O2 -Wall -Wextra -Werror -o "$WORK_DIR/sse_client" "$SCRIPT_DIR/sse_client.c" \
    || die "building sse_client failed"
(cd "$SCRIPT_DIR/goproxy" && GOCACHE=$WORK_DIR/gocache GOPATH=$WORK_DIR/gopath GOPROXY=off GOFLAGS="" \
    GOTOOLCHAIN=local go build -o "$WORK_DIR/goproxy" .) >&2 || die "building the Go proxy failed"
SSE_CLIENT=$WORK_DIR/sse_client

# --- start everything ---------------------------------------------------------------------------
DUMP_FILE=$RESULTS_DIR/upstream-dump.txt
: >"$DUMP_FILE"
setup_mock() {
    pick_port
    MOCK_PORT=$PICKED_PORT
    START_URL=http://127.0.0.1:$MOCK_PORT/health
    START_CMD=("$WORK_DIR/mock_upstream" "$MOCK_PORT" "$DUMP_FILE")
}
start_retry mock setup_mock || die "the mock upstream did not start"

# nginx_conf dir listen-lines...: a plain streaming reverse proxy to the mock
nginx_conf() {
    local dir=$1
    shift
    mkdir -p "$dir/tmp"
    chmod 777 "$dir/tmp"
    {
        echo "worker_processes auto;"
        echo "worker_rlimit_nofile 20000;"
        echo "pid $dir/nginx.pid;"
        echo "error_log $dir/error.log warn;"
        echo "events { worker_connections 10000; }"
        echo "http {"
        echo "  access_log off;"
        for t in client_body proxy fastcgi uwsgi scgi; do echo "  ${t}_temp_path $dir/tmp/$t;"; done
        echo "  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 128; }"
        echo "  server {"
        printf '    %s\n' "$@"
        echo "    location / {"
        echo "      proxy_pass http://mock;"
        echo "      proxy_http_version 1.1;"
        echo "      proxy_set_header Connection \"\";"
        echo "      proxy_buffering off;"
        # stream request bodies too: buffered, a body over 8 KiB goes through a temp file and is sent
        # to the upstream in a second write after the head, which Nagle + delayed ACK stall ~40 ms
        echo "      proxy_request_buffering off;"
        echo "    }"
        echo "  }"
        echo "}"
    } >"$dir/nginx.conf"
}
setup_nginx() {
    pick_port
    NGINX_PORT=$PICKED_PORT
    nginx_conf "$WORK_DIR/nginx" "listen 127.0.0.1:$NGINX_PORT;"
    START_URL=http://127.0.0.1:$NGINX_PORT/health
    START_CMD=(nginx -p "$WORK_DIR/nginx" -c "$WORK_DIR/nginx/nginx.conf" -e "$WORK_DIR/nginx/error.log" -g 'daemon off;')
}
start_retry nginx setup_nginx || die "nginx did not start"

setup_go() {
    pick_port
    GO_PORT=$PICKED_PORT
    START_URL=http://127.0.0.1:$GO_PORT/health
    START_CMD=("$WORK_DIR/goproxy" -listen "127.0.0.1:$GO_PORT" -target "http://127.0.0.1:$MOCK_PORT")
}
start_retry go setup_go || die "the Go proxy did not start"

declare -A PORT=()
KEYS_FILE=$WORK_DIR/keys.txt
(umask 077 && printf '# fake keys for the benchmark\nsk-bench-fake-key-one-0000000000\nsk-bench-fake-key-two-0000000000\nsk-bench-fake-key-three-00000000\n' >"$KEYS_FILE")

# start_keyrelay name upstream-url [binary] [trust]: trust=1 runs it in a private mount namespace
# where /etc/ssl/certs (its CA bundle) also holds the test CA: KeyRelay trusts only the system's CAs
KR_NAME="" KR_UPSTREAM="" KR_BIN="" KR_TRUST=""
setup_keyrelay() {
    pick_port
    PORT[$KR_NAME]=$PICKED_PORT
    START_URL=http://127.0.0.1:$PICKED_PORT/_keyrelay/health
    START_CMD=("$KR_BIN" --headless --quiet --listen "127.0.0.1:$PICKED_PORT" --upstream "$KR_UPSTREAM"
        --keys-file "$KEYS_FILE")
    if [[ $KR_TRUST == 1 ]]; then
        # shellcheck disable=SC2016  # $1 and $@ belong to the inner sh
        START_CMD=(unshare --mount -- sh -c 'mount --bind "$1" /etc/ssl/certs && shift && exec "$@"' sh
            "$WORK_DIR/tls/certs" "${START_CMD[@]}")
    fi
}
start_keyrelay() {
    KR_NAME=$1 KR_UPSTREAM=$2 KR_BIN=${3:-$KEYRELAY_BIN} KR_TRUST=${4:-0}
    start_retry "$KR_NAME" setup_keyrelay
}

PORT[direct]=$MOCK_PORT PORT[nginx]=$NGINX_PORT PORT[go]=$GO_PORT
declare -A TITLE=([direct]="direct (mock)" [nginx]="nginx" [go]="Go proxy" [keyrelay]="KeyRelay"
    [kr-nginx]="KeyRelay → nginx (http)" [kr-h2]="KeyRelay → nginx (https)")
TARGETS=(direct nginx go keyrelay)
start_keyrelay keyrelay "http://127.0.0.1:$MOCK_PORT" || die "keyrelay did not start"

if [[ $HTTPS == 1 ]]; then
    # A test CA and a server certificate for localhost/127.0.0.1, made now, valid 2 days.
    tls=$WORK_DIR/tls
    mkdir -p "$tls/certs"
    if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj "/CN=KeyRelay benchmark test CA" -keyout "$tls/ca.key" -out "$tls/ca.pem" \
            -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
            >"$tls/openssl.log" 2>&1 \
        && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=localhost" \
            -keyout "$tls/server.key" -out "$tls/server.csr" >>"$tls/openssl.log" 2>&1 \
        && printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' \
            >"$tls/ext.cnf" \
        && openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial \
            -days 2 -extfile "$tls/ext.cnf" -out "$tls/server.pem" >>"$tls/openssl.log" 2>&1; then
        # The system's trusted certificates plus the test CA, bound over /etc/ssl/certs for KeyRelay only.
        cp -a /etc/ssl/certs/. "$tls/certs/" 2>/dev/null
        cp "$tls/ca.pem" "$tls/certs/keyrelay-bench-ca.pem"
        # libcurl reads the bundle (KeyRelay does not use the hashed directory; Qt-era builds did)
        rm -f "$tls/certs/ca-certificates.crt"
        cat /etc/ssl/certs/ca-certificates.crt "$tls/ca.pem" >"$tls/certs/ca-certificates.crt"
        ln -sf keyrelay-bench-ca.pem "$tls/certs/$(openssl x509 -hash -noout -in "$tls/ca.pem").0"
        setup_nginx_tls() {
            pick_port
            TLS_PORT=$PICKED_PORT
            pick_port
            TLS_PLAIN_PORT=$PICKED_PORT
            nginx_conf "$WORK_DIR/nginx-tls" "listen 127.0.0.1:$TLS_PLAIN_PORT;" "listen 127.0.0.1:$TLS_PORT ssl http2;" \
                "ssl_certificate $tls/server.pem;" "ssl_certificate_key $tls/server.key;"
            START_URL=http://127.0.0.1:$TLS_PLAIN_PORT/health
            START_CMD=(nginx -p "$WORK_DIR/nginx-tls" -c "$WORK_DIR/nginx-tls/nginx.conf"
                -e "$WORK_DIR/nginx-tls/error.log" -g 'daemon off;')
        }
        if start_retry nginx-tls setup_nginx_tls \
            && [[ $(curl -s -o /dev/null -w '%{http_version} %{http_code}' --cacert "$tls/ca.pem" \
                "https://localhost:$TLS_PORT/health") == "2 200" ]]; then
            start_keyrelay kr-nginx "http://127.0.0.1:$TLS_PLAIN_PORT" && TARGETS+=(kr-nginx) \
                || fail "keyrelay with the nginx http upstream did not start"
            start_keyrelay kr-h2 "https://localhost:$TLS_PORT" "$KEYRELAY_BIN" 1 && TARGETS+=(kr-h2) \
                || fail "keyrelay with the nginx https upstream did not start"
            if [[ -n ${KEYRELAY_B_BIN:-} ]]; then
                TITLE[kr-b]=${KEYRELAY_B_LABEL:-"KeyRelay B → nginx (https)"}
                start_keyrelay kr-b "https://localhost:$TLS_PORT" "$KEYRELAY_B_BIN" 1 && TARGETS+=(kr-b) \
                    || fail "the second keyrelay (KEYRELAY_B_BIN) did not start"
            fi
        else
            fail "nginx with TLS and HTTP/2 did not start or did not answer over h2"
        fi
    else
        fail "making the test CA with openssl failed (see $tls/openssl.log)"
    fi
fi

# --- per-process accounting ---------------------------------------------------------------------
# pids of a target: its process, plus nginx's workers
target_proc() { # target -> name of the process that does the work measured in its column
    case $1 in direct) echo mock ;; *) echo "$1" ;; esac
}
pids_of() {
    local name pid
    name=$(target_proc "$1")
    pid=${PID[$name]:-}
    [[ -n $pid ]] || return 0
    echo "$pid"
    if [[ $name == nginx* ]]; then cat "/proc/$pid/task/$pid/children" 2>/dev/null; fi
}
cpu_ticks() { # target -> utime+stime summed over its processes, in clock ticks
    local total=0 pid stat
    for pid in $(pids_of "$1"); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        # shellcheck disable=SC2086
        set -- $stat
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
mem_kb() { # target field(VmRSS|VmHWM) -> kB summed over its processes
    local total=0 pid v
    for pid in $(pids_of "$1"); do
        v=$(awk -v f="$2:" '$1 == f {print $2}' "/proc/$pid/status" 2>/dev/null)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)
alive() { local p; for p in $(pids_of "$1"); do kill -0 "$p" 2>/dev/null || return 1; done; [[ -n $(pids_of "$1") ]]; }

declare -A R=() # "metric/target" -> value
ERRS() { R["errors/$1"]=$(( ${R["errors/$1"]:-0} + $2 )); }

# --- sanity checks ------------------------------------------------------------------------------
log "sanity checks ..."
NOTES=()
for t in "${TARGETS[@]}"; do
    body=$WORK_DIR/check-$t.json
    code=$(curl -s -o "$body" -w '%{http_code}' --max-time 5 -X POST -H 'Content-Type: application/json' \
        -H 'Authorization: Bearer client-key' -H "X-Bench-Dump: $t" \
        --data '{"model":"gpt-4o-mini","messages":[{"role":"system","content":"s"},{"role":"user","content":"1"},{"role":"user","content":"2"},{"role":"user","content":"3"},{"role":"user","content":"4"}]}' \
        "http://127.0.0.1:${PORT[$t]}/v1/chat/completions" || true)
    if [[ $code != 200 ]] || ! grep -q '"usage"' "$body"; then
        fail "$t: a chat request answered HTTP $code without the mock's body: $(head -c 300 "$body" 2>/dev/null)"
    fi
    out=$("$SSE_CLIENT" -p "${PORT[$t]}" -c 5 -t 10 2>&1)
    [[ $out == *"complete=1 "* ]] || fail "$t: a 5-chunk stream did not come through complete: $out"
done
# What the mock received from each KeyRelay column (the Go proxy does not forward X-Bench-Dump):
# a pool key instead of the client's, and the system message moved to index 1 by the reorder rule.
for t in "${TARGETS[@]}"; do
    [[ $t == keyrelay || $t == kr-* ]] || continue
    if awk -v tag="$t" 'BEGIN { RS = "POST /v1/chat/completions HTTP/1.1" }
            { low = tolower($0) } # header names arrive lower-case through HTTP/2
            index(low, "x-bench-dump: " tag "\r") && low ~ /\nauthorization: bearer sk-bench-fake-key-/ \
            && index($0, "[{\"role\":\"user\",\"content\":\"1\"},{\"role\":\"system\",\"content\":\"s\"},") { found = 1 }
            END { exit !found }' "$DUMP_FILE"; then
        NOTES+=("sanity ($t): the upstream saw a pool key, not the client's, and the system message moved to index 1")
    else
        fail "$t: the upstream did not see a pool key and the reordered body (see $DUMP_FILE)"
    fi
done

sleep 1
for t in "${TARGETS[@]}"; do R["rss_idle/$t"]=$(mem_kb "$t" VmRSS); done

# --- wrk rows -----------------------------------------------------------------------------------
# run_wrk target conns tag script: fills rps/p50/p99/cpu for tag, and the RSS under load for c=64
run_wrk() {
    local t=$1 c=$2 tag=$3 script=$4
    local out=$RESULTS_DIR/wrk-$tag-$t.txt threads=$(($2 > 1 ? 2 : 1))
    local before after sampler="" rc=0
    log "wrk $tag: ${TITLE[$t]}, $c connection(s), ${DURATION}s"
    before=$(cpu_ticks "$t")
    if [[ $tag == c64 ]]; then
        (sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"; mem_kb "$t" VmRSS >"$WORK_DIR/rss-load-$t") &
        sampler=$!
        BG_PIDS+=("$sampler")
    fi
    timeout --kill-after=5 $((DURATION + 30)) wrk --latency -t"$threads" -c"$c" -d"${DURATION}s" \
        --timeout "$WRK_TIMEOUT" -s "$script" "http://127.0.0.1:${PORT[$t]}/v1/chat/completions" >"$out" 2>&1 &
    local wrk_pid=$!
    BG_PIDS+=("$wrk_pid")
    wait "$wrk_pid" || rc=$?
    bg_done "$wrk_pid"
    after=$(cpu_ticks "$t")
    if [[ -n $sampler ]]; then
        wait "$sampler"
        bg_done "$sampler"
        R["rss_load/$t"]=$(cat "$WORK_DIR/rss-load-$t" 2>/dev/null)
    fi
    local res
    res=$(grep '^BENCH_RESULT' "$out")
    if [[ $rc -ne 0 || -z $res ]]; then
        fail "$t $tag: wrk exited with $rc and no result line (see $out)"
        return
    fi
    alive "$t" || fail "$t died during wrk $tag"
    local n p50 p99 e
    n=$(sed -n 's/.* requests=\([0-9]*\).*/\1/p' <<<"$res")
    p50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$res")
    p99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$res")
    e=$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "=");
            if (kv[1] ~ /^(connect|read|write|status|timeout)$/) s += kv[2] } } END { print s + 0 }' <<<"$res")
    R["rps_$tag/$t"]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$out")
    R["p50_$tag/$t"]=$p50
    R["p99_$tag/$t"]=$p99
    R["req_$tag/$t"]=$n
    ERRS "$t" "$e"
    ((e > 0)) && NOTES+=("$t $tag: $e wrk errors: $res")
    if ((n > 0)); then
        R["cpu_$tag/$t"]=$(awk -v d=$((after - before)) -v h="$CLK_TCK" -v n="$n" 'BEGIN { printf "%.0f", d / h * 1e6 / n }')
    fi
}

for c in "${CONNS_LIST[@]}"; do
    for t in "${TARGETS[@]}"; do run_wrk "$t" "$c" "c$c" "$SCRIPT_DIR/post_chat.lua"; done
done
for t in "${TARGETS[@]}"; do run_wrk "$t" 1 big "$SCRIPT_DIR/post_chat_large.lua"; done

# --- SSE: time to first byte and total time of a 50-chunk stream, sequential ------------------
for t in "${TARGETS[@]}"; do
    log "SSE: ${TITLE[$t]}, $SSE_RUNS x 50-chunk stream"
    out=$("$SSE_CLIENT" -p "${PORT[$t]}" -n 1 -r $((SSE_RUNS + 1)) -w 1 -c 50 -t 60 2>&1)
    echo "$out" >"$RESULTS_DIR/sse-$t.txt"
    if [[ $out != SSE_RESULT* ]]; then fail "$t: sse_client did not run: $out"; continue; fi
    R["ttfb/$t"]=$(sed -n 's/.* ttfb_p50_us=\([-0-9]*\).*/\1/p' <<<"$out")
    R["sse_total/$t"]=$(sed -n 's/.* total_p50_us=\([-0-9]*\).*/\1/p' <<<"$out")
    f=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$out")
    ERRS "$t" "${f:-0}"
done

# --- concurrent timed streams -------------------------------------------------------------------
STREAM_MS=$((STREAM_CHUNKS * STREAM_INTERVAL_MS))
MAX_N=0
for n in $STREAM_COUNTS; do ((n > MAX_N)) && MAX_N=$n; done
for t in "${TARGETS[@]}"; do
    log "streams: ${TITLE[$t]}, one stream of $STREAM_CHUNKS x $STREAM_INTERVAL_MS ms"
    out=$("$SSE_CLIENT" -p "${PORT[$t]}" -n 1 -c "$STREAM_CHUNKS" -i "$STREAM_INTERVAL_MS" -t $((STREAM_MS / 1000 + 30)) 2>&1)
    single=$(sed -n 's/.* total_p50_us=\([-0-9]*\).*/\1/p' <<<"$out")
    if [[ $out != SSE_RESULT* || -z $single || $single -lt 0 ]]; then
        fail "$t: a single timed stream did not complete: $out"
        continue
    fi
    R["single/$t"]=$single
    deadline_ms=$(( (single * 12 / 10 + 999) / 1000 ))
    for n in $STREAM_COUNTS; do
        log "streams: ${TITLE[$t]}, $n at once (in time: <= $deadline_ms ms)"
        before=$(cpu_ticks "$t")
        sampler=
        if ((n == MAX_N)); then
            (sleep "$(awk -v s="$single" 'BEGIN { print s / 2e6 }')"; mem_kb "$t" VmRSS >"$WORK_DIR/rss-streams-$t") &
            sampler=$!
            BG_PIDS+=("$sampler")
        fi
        out=$("$SSE_CLIENT" -p "${PORT[$t]}" -n "$n" -c "$STREAM_CHUNKS" -i "$STREAM_INTERVAL_MS" -d "$deadline_ms" \
            -t $((STREAM_MS * 3 / 1000 + 20)) 2>&1)
        after=$(cpu_ticks "$t")
        echo "$out" >"$RESULTS_DIR/streams-$n-$t.txt"
        if [[ -n $sampler ]]; then
            wait "$sampler"
            bg_done "$sampler"
            R["rss_streams/$t"]=$(cat "$WORK_DIR/rss-streams-$t" 2>/dev/null)
        fi
        if [[ $out != SSE_RESULT* ]]; then fail "$t: sse_client with $n streams did not run: $out"; continue; fi
        alive "$t" || fail "$t died during $n streams"
        R["in_time_$n/$t"]=$(sed -n 's/.* in_time=\([0-9]*\).*/\1/p' <<<"$out")
        R["complete_$n/$t"]=$(sed -n 's/.* complete=\([0-9]*\).*/\1/p' <<<"$out")
        R["slowest_$n/$t"]=$(sed -n 's/.* total_max_us=\([-0-9]*\).*/\1/p' <<<"$out")
        R["burst_ttfb_$n/$t"]=$(sed -n 's/.* ttfb_p50_us=\([-0-9]*\).*/\1/p' <<<"$out")
        R["cpu_chunk_$n/$t"]=$(awk -v d=$((after - before)) -v h="$CLK_TCK" -v n="$n" -v k="$STREAM_CHUNKS" \
            'BEGIN { printf "%.1f", d / h * 1e6 / (n * (k + 1)) }')
        f=$(sed -n 's/.* failed=\([0-9]*\).*/\1/p' <<<"$out")
        ERRS "$t" "${f:-0}"
        ((${f:-0} > 0)) && NOTES+=("$t, $n streams: $out")
    done
done

for t in "${TARGETS[@]}"; do R["hwm/$t"]=$(mem_kb "$t" VmHWM); done
for name in keyrelay kr-nginx kr-h2 kr-b; do
    [[ -n ${PID[$name]:-} ]] || continue
    alive "$name" || { fail "$name is not running at the end"; continue; }
    stop_pid "${PID[$name]}"
    unset "PID[$name]"
    [[ $STOP_RC == 0 ]] || fail "$name exited with status $STOP_RC after SIGTERM"
    if grep -qv -e 'signal 15, finishing requests' -e 'listening on' "$RESULTS_DIR/$name.err"; then
        NOTES+=("$name stderr: $(grep -v -e 'signal 15, finishing requests' -e 'listening on' "$RESULTS_DIR/$name.err" \
            | sed 's/^[0-9T:.-]* //' | sort | uniq -c | sort -rn | head -n 3 | tr -s ' ' | paste -sd ';' -)")
    fi
done

# --- report -------------------------------------------------------------------------------------
fmt_us() { # µs -> "850 µs" / "12.3 ms" / "5.02 s"
    awk -v v="$1" 'BEGIN { if (v == "" || v < 0) { print "n/a"; exit }
        if (v < 10000) printf "%d µs", v; else if (v < 1000000) printf "%.1f ms", v / 1000; else printf "%.2f s", v / 1e6 }'
}
fmt_mb() { awk -v v="$1" 'BEGIN { if (v == "") print "n/a"; else printf "%.0f", v / 1024 }'; }
ratio() { # a b -> "a/b" as 0.53x
    awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0 || a < 0 || b < 0) print ""; else printf "%.2fx", a / b }'
}
val() { echo "${R["$1/$2"]:-}"; }
row() { # label metric-function
    local label=$1 fn=$2 t
    local line="| $label |"
    for t in "${TARGETS[@]}"; do line+=" $($fn "$t") |"; done
    line+=" $($fn __ratio) |"
    echo "$line"
}
cell_rps() { [[ $1 == __ratio ]] && { ratio "$(val "rps_$TAG" keyrelay)" "$(val "rps_$TAG" go)"; return; }; v=$(val "rps_$TAG" "$1"); echo "${v:-n/a}"; }
cell_lat() {
    [[ $1 == __ratio ]] && { ratio "$(val "p50_$TAG" keyrelay)" "$(val "p50_$TAG" go)"; return; }
    echo "$(fmt_us "$(val "p50_$TAG" "$1")") / $(fmt_us "$(val "p99_$TAG" "$1")")"
}
cell_added() {
    [[ $1 == __ratio ]] && return
    local a b
    a=$(val "p50_$TAG" "$1") b=$(val "p50_$TAG" direct)
    [[ -n $a && -n $b ]] || { echo n/a; return; }
    [[ $1 == direct ]] && { echo "—"; return; }
    echo "+$(fmt_us $((a - b)))"
}
cell_cpu() {
    [[ $1 == __ratio ]] && { ratio "$(val "cpu_$TAG" keyrelay)" "$(val "cpu_$TAG" go)"; return; }
    v=$(val "cpu_$TAG" "$1"); [[ -n $v ]] && echo "$v µs" || echo n/a
}
cell_ttfb() { [[ $1 == __ratio ]] && { ratio "$(val ttfb keyrelay)" "$(val ttfb go)"; return; }; fmt_us "$(val ttfb "$1")"; }
cell_sse_total() { [[ $1 == __ratio ]] && { ratio "$(val sse_total keyrelay)" "$(val sse_total go)"; return; }; fmt_us "$(val sse_total "$1")"; }
cell_single() { [[ $1 == __ratio ]] && return; fmt_us "$(val single "$1")"; }
cell_streams() {
    [[ $1 == __ratio ]] && return
    local it c s
    it=$(val "in_time_$TAG" "$1") c=$(val "complete_$TAG" "$1") s=$(val "slowest_$TAG" "$1")
    [[ -n $it ]] || { echo n/a; return; }
    echo "$it ($c complete, slowest $(fmt_us "$s"))"
}
cell_burst_ttfb() { [[ $1 == __ratio ]] && return; fmt_us "$(val "burst_ttfb_$TAG" "$1")"; }
cell_cpu_chunk() { [[ $1 == __ratio ]] && return; v=$(val "cpu_chunk_$TAG" "$1"); [[ -n $v ]] && echo "$v µs" || echo n/a; }
cell_rss() {
    [[ $1 == __ratio ]] && return
    echo "$(fmt_mb "$(val rss_idle "$1")") / $(fmt_mb "$(val rss_load "$1")") / $(fmt_mb "$(val rss_streams "$1")") / $(fmt_mb "$(val hwm "$1")")"
}
cell_errors() { [[ $1 == __ratio ]] && return; v=$(val errors "$1"); echo "${v:-0}"; }

ELAPSED=$(($(date +%s) - START_TS))
echo
echo "## KeyRelay benchmark — $(date -u '+%Y-%m-%d %H:%M UTC')$([[ $SMOKE == 1 ]] && echo " (smoke mode: tiny durations, numbers are meaningless)")"
echo
echo "\`bench/compare.sh$([[ $SMOKE == 1 ]] && echo " --smoke")\`, ${DURATION} s per wrk row, $(nproc) CPUs, load average before the run $LOAD_BEFORE, ${ELAPSED} s in all"
echo
header="| |"; sep="|---|"
for t in "${TARGETS[@]}"; do header+=" ${TITLE[$t]} |"; sep+="---|"; done
echo "$header KeyRelay / Go |"
echo "$sep---|"
for c in "${CONNS_LIST[@]}"; do
    TAG=c$c
    row "requests/s, $c conn" cell_rps
    row "p50 / p99, $c conn" cell_lat
    row "added p50 vs direct, $c conn" cell_added
    row "CPU per request, $c conn" cell_cpu
done
TAG=big
row "requests/s, 1 conn, 20 KiB body" cell_rps
row "p50 / p99, 1 conn, 20 KiB body" cell_lat
row "SSE time to first byte, p50 of $SSE_RUNS" cell_ttfb
row "SSE 50-chunk stream total, p50 of $SSE_RUNS" cell_sse_total
row "one timed stream ($STREAM_CHUNKS × $STREAM_INTERVAL_MS ms)" cell_single
for n in $STREAM_COUNTS; do
    TAG=$n
    row "$n streams at once: in time (≤ 1.2× one)" cell_streams
    row "$n streams at once: time to first byte, p50" cell_burst_ttfb
    row "CPU per streamed chunk, $n streams" cell_cpu_chunk
done
row "RSS MB: idle / 64 conns / $MAX_N streams / peak" cell_rss
row "errors (wrk, incomplete streams)" cell_errors
echo
echo "- machine: $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), kernel $(uname -r), load after $(cut -d' ' -f1-3 /proc/loadavg)"
echo "- $("$KEYRELAY_BIN" --version 2>/dev/null | head -n1) ($KEYRELAY_BIN); $(nginx -v 2>&1); $(go version); $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2)"
[[ -n ${KEYRELAY_B_BIN:-} ]] && echo "- column B: $KEYRELAY_B_BIN"
for note in "${NOTES[@]}"; do echo "- $note"; done
if ((${#FAILURES[@]})); then
    echo
    echo "FAILED (${#FAILURES[@]}):"
    for f in "${FAILURES[@]}"; do echo "- $f"; done
    exit 1
fi
exit 0
}

#!/usr/bin/env bash
# CI: build the libFuzzer targets (clang, ASan + UBSan) in build-fuzz/ and run each for a bounded time.
# Fails on any crash, sanitizer report, timeout, out-of-memory or broken invariant; prints one summary line
# per target. The committed corpus (tests/fuzz/corpus/<target>) is copied, never modified.
#   FUZZ_SECONDS   seconds per target (default 30)
#   FUZZ_TARGETS   targets to run (default: request_parser message_rewriter upstream_path stream_usage
#                  secret_masking response_head)
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-30}"
targets=(${FUZZ_TARGETS:-request_parser message_rewriter upstream_path stream_usage secret_masking response_head})
build=build-fuzz

echo "=== libFuzzer targets (${seconds} s each) ==="
cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DKEYRELAY_FUZZ=ON -DKEYRELAY_BUILD_GUI=OFF -DKEYRELAY_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target "${targets[@]/#/fuzz_}"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/.ci/lsan.supp:print_suppressions=0"
export QT_LOGGING_RULES="keyrelay.*=false"

status=0
summaries=()
for target in "${targets[@]}"; do
    binary="$build/tests/fuzz/fuzz_$target"
    seeds="tests/fuzz/corpus/$target"
    work="$build/fuzz-work/$target"
    log="$build/fuzz-work/$target.log"
    rm -rf "$work" "$build/fuzz-work/$target-artifacts"
    mkdir -p "$work" "$build/fuzz-work/$target-artifacts"
    cp "$seeds"/* "$work"/
    dict=()
    [ -f "tests/fuzz/$target.dict" ] && dict=("-dict=tests/fuzz/$target.dict")

    set +e
    "$binary" "$work" "${dict[@]}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/fuzz-work/$target-artifacts/" >"$log" 2>&1
    rc=$?
    set -e

    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    artifacts=$(find "$build/fuzz-work/$target-artifacts" -type f | head -5)
    if [ "$rc" -ne 0 ] || [ -n "$artifacts" ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:' "$log"; then
        status=1
        echo "----- fuzz_$target FAILED (exit $rc); end of $log:"
        grep -vE '^#[0-9]+ ' "$log" | tail -60
        for a in $artifacts; do
            echo "reproducer: $a ($(stat -c %s "$a") bytes), hex: $(head -c 512 "$a" | od -An -v -tx1 | tr -d ' \n')"
        done
        echo "replay: $binary <reproducer>"
        summaries+=("fuzz_$target: FAILED (exit $rc) after ${execs:-?} execs; cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}; reproducer(s): ${artifacts:-none}")
    else
        summaries+=("fuzz_$target: OK ${execs:-?} execs in ${seconds} s (${rate:-?}/s); cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?} (from $(ls "$seeds" | wc -l) seeds)")
    fi
done

echo "=== fuzz summary ==="
printf '%s\n' "${summaries[@]}"
exit "$status"

#!/usr/bin/env bash
# Runs the fuzz targets of tests/fuzz, one after the other, each on one core.
#
#   tests/fuzz/run.sh [--time SECONDS | --runs N] [--no-asan] [TARGET...]
#
# --time: each target runs that many seconds (default 30); --runs: that many
# executions. No TARGET: all of them (`cargo fuzz list`). Each starts from its
# committed corpus (tests/fuzz/corpus/<target>, left unchanged; what the run finds
# goes to a scratch corpus that is removed). Prints per target: executions, exec/s,
# corpus size (seed + found, files and KiB), crashes. A crash, a leak, a timeout
# (10 s per input) or an out-of-memory (2 GiB) fails the script; its input is kept
# under tests/fuzz/artifacts/<target>/ (rerun it: the target's binary with the file
# as argument, or `cargo +nightly fuzz run --fuzz-dir tests/fuzz <target> <file>`).
# --no-asan: build without AddressSanitizer but with debug assertions and overflow
# checks (into tests/fuzz/target/no-asan), more executions a second; for the
# targets whose code is safe Rust, where ASan has nothing to find (not ffi_codec).
# Needs the nightly toolchain and cargo-fuzz (.ci/setup installs both).
set -euo pipefail
cd "$(dirname "$0")/../.."
FUZZ=tests/fuzz

limit=(-max_total_time=30)
what="30 s"
build=(-O)
tdir=
while [ $# -gt 0 ]; do
    case "$1" in
    --time) limit=(-max_total_time="$2"); what="$2 s"; shift 2 ;;
    --runs) limit=(-runs="$2"); what="$2 runs"; shift 2 ;;
    --no-asan) build=(-O -a -s none --target-dir "$FUZZ/target/no-asan"); tdir=$FUZZ/target/no-asan; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) break ;;
    esac
done

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir "$FUZZ")
fi
echo "fuzz: building the targets" >&2
cargo +nightly fuzz build "${build[@]}" --fuzz-dir "$FUZZ" >&2
bin="${tdir:-$FUZZ/target}/$(rustc +nightly -vV | sed -n 's/^host: //p')/release"

work=$(mktemp -d /tmp/micrun-fuzz.XXXXXX)
trap 'rm -rf "$work"' EXIT
# The targets' scratch files (some parsers read a path): on tmpfs when there is one,
# as rewriting a file on ext4 costs a disk write each time (20x slower).
shm=/dev/shm
[ -d "$shm" ] && [ -w "$shm" ] || shm=$work
export TMPDIR
TMPDIR=$(mktemp -d "$shm/micrun-fuzz-tmp.XXXXXX")
trap 'rm -rf "$work" "$TMPDIR"' EXIT

failed=()
printf '%-15s %12s %10s %8s %9s %8s  %s\n' target executions exec/s files KiB crashes time
for t in "${targets[@]}"; do
    [ -x "$bin/$t" ] || { echo "fuzz: no target $t (cargo +nightly fuzz list --fuzz-dir $FUZZ)" >&2; exit 2; }
    seeds="$FUZZ/corpus/$t"
    found="$work/corpus/$t"
    art="$FUZZ/artifacts/$t"
    mkdir -p "$seeds" "$found" "$art"
    log="$work/$t.log"
    start=$(date +%s)
    status=0
    "$bin/$t" "${limit[@]}" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$art/" "$found" "$seeds" >"$log" 2>&1 || status=$?
    secs=$(($(date +%s) - start))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    files=$(find "$seeds" "$found" -type f | wc -l)
    kib=$(du -sck "$seeds" "$found" | tail -n 1 | cut -f 1)
    crashes=0
    if [ "$status" -ne 0 ]; then
        crashes=1
        failed+=("$t")
    fi
    printf '%-15s %12s %10s %8s %9s %8s  %ss\n' "$t" "${execs:-?}" "${rate:-?}" "$files" "$kib" "$crashes" "$secs"
    if [ "$status" -ne 0 ]; then
        echo "fuzz: $t failed (exit $status); its input is in $art/:" >&2
        ls -t "$art" | head -n 3 | sed "s|^|  $art/|" >&2
        grep -m 1 -A 12 -E '^==[0-9]+==|panicked at|ERROR: libFuzzer' "$log" >&2 || tail -n 20 "$log" >&2
    fi
    rm -rf "$found" "${TMPDIR:?}"/*
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} target(s), $what each, no crash"

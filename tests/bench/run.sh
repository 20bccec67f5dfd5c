#!/usr/bin/env bash
# Builds and runs micrun-bench and cri-bench, the measurements behind
# docs/benchmarks.md.
#
#   tests/bench/run.sh [--write-docs] [--no-cri | --cri-only] [micrun-bench options]
#
# --write-docs  put the result blocks into docs/benchmarks.md, between
#               <!-- bench:begin --> and <!-- bench:end --> (micrun-bench) and
#               <!-- cri-bench:begin --> and <!-- cri-bench:end --> (cri-bench)
# --no-cri      only micrun-bench
# --cri-only    only cri-bench (pod start and pod memory through CRI), on the shim
#               and simulator an earlier run built in target/bench
# other options go to micrun-bench (--reps N, --containers 20,50, --flood-bytes N,
# --echo-count N, --settle-ms N, --no-runc-many; see `micrun-bench --help`);
# CRI_REPS=N sets cri-bench's repetitions (default 10).
#
# Installs nothing: it needs what .ci/setup installs (containerd, runc, gcc with
# libc6-dev for `gcc -static`, the x86_64-unknown-linux-musl Rust target) and root
# (it runs a private containerd in a temp dir; the system one is never touched).
# Build output goes to target/bench and target/bench-symbols.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

docs=()
args=()
micrun_bench=1
cri_bench=1
for a in "$@"; do
    case "$a" in
        --write-docs) docs=(--write-docs "$root/docs/benchmarks.md") ;;
        --no-cri) cri_bench=0 ;;
        --cri-only) micrun_bench=0 ;;
        -h | --help)
            sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *) args+=("$a") ;;
    esac
done

missing=()
for tool in cargo rustup containerd ctr runc gcc nm; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
    missing+=("rust target x86_64-unknown-linux-musl")
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: missing: ${missing[*]} (run .ci/setup)" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "run.sh: needs root (it starts a private containerd)" >&2
    exit 1
fi

cargo build --release --quiet -p micrun-tests --bin micrun-bench --bin cri-bench --target-dir target/bench
if [ "$micrun_bench" = 1 ]; then
    target/bench/release/micrun-bench --size-breakdown ${args[@]+"${args[@]}"} ${docs[@]+"${docs[@]}"}
fi
if [ "$cri_bench" = 1 ]; then
    # The binaries micrun-bench built and measured (the shipped musl build of the shim).
    shim=target/bench/x86_64-unknown-linux-musl/release/containerd-shim-mica-v2
    sim=target/bench/release/micrun-rtos-sim
    for f in "$shim" "$sim"; do
        if [ ! -x "$f" ]; then
            echo "run.sh: $f is missing: run tests/bench/run.sh without --cri-only once" >&2
            exit 1
        fi
    done
    cri_docs=()
    if [ ${#docs[@]} -gt 0 ]; then
        cri_docs=(--write-docs "$root/docs/benchmarks.md")
    fi
    target/bench/release/cri-bench --shim "$shim" --sim "$sim" --reps "${CRI_REPS:-10}" \
        ${cri_docs[@]+"${cri_docs[@]}"}
fi

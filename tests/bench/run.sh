#!/usr/bin/env bash
# Builds and runs micrun-bench, the measurements behind docs/benchmarks.md.
#
#   tests/bench/run.sh [--write-docs] [micrun-bench options]
#
# --write-docs  put the result block into docs/benchmarks.md, between
#               <!-- bench:begin --> and <!-- bench:end -->
# other options go to micrun-bench (--reps N, --containers 20,50, --flood-bytes N,
# --echo-count N, --settle-ms N, --no-runc-many; see `micrun-bench --help`).
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
for a in "$@"; do
    case "$a" in
        --write-docs) docs=(--write-docs "$root/docs/benchmarks.md") ;;
        -h | --help)
            sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
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

cargo build --release --quiet -p micrun-tests --bin micrun-bench --target-dir target/bench
exec target/bench/release/micrun-bench --size-breakdown ${args[@]+"${args[@]}"} ${docs[@]+"${docs[@]}"}

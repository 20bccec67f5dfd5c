#!/usr/bin/env bash
# Soak and load on a private containerd: lifecycle cycles on sim and qemu, then
# many sim containers started at once and removed; per phase the failures,
# containerd's fds, threads and RSS before and after, shim start failures and
# anything left. See docs/reliability.md (## Soak and load).
#
#   tests/soak/run.sh [--cycles-sim N] [--cycles-qemu N] [--parallel N] [--write-docs]
#
# Defaults: 1000 sim cycles, 100 qemu cycles, 100 at once.
# --write-docs  put the result table into docs/reliability.md, between
#               <!-- soak:begin --> and <!-- soak:end -->
# Exit status 1 if any phase had a failure or left something.
#
# Needs root (it starts a private containerd in a temp dir; the system one is
# never touched), containerd, runc, qemu-system-aarch64 and the
# aarch64-unknown-none Rust target (.ci/setup). Build output goes to target/soak.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"

args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --write-docs) args+=(--write-docs "$root/docs/reliability.md") ;;
        --cycles-sim | --cycles-qemu | --parallel)
            [ $# -ge 2 ] || { echo "run.sh: $1 takes a number" >&2; exit 2; }
            args+=("$1" "$2")
            shift
            ;;
        -h | --help)
            sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "run.sh: unknown option $1 (see --help)" >&2
            exit 2
            ;;
    esac
    shift
done

missing=()
for tool in cargo containerd ctr runc qemu-system-aarch64; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "run.sh: missing: ${missing[*]} (run .ci/setup)" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "run.sh: needs root (it starts a private containerd)" >&2
    exit 1
fi

cargo build --quiet -p micrun-tests --bin soak
exec target/debug/soak "${args[@]}"

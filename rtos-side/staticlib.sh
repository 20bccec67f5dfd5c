#!/usr/bin/env bash
# Builds the agent's C static library (features capi + panic-handler) for a
# bare-metal target and prints its path: target/<target>/capi/libmicrun_rtos.a
# (under $CARGO_TARGET_DIR when set).
#
# A Rust static library carries compiler_builtins, whose memcpy, memmove, memset,
# memcmp, bcmp, strlen and (on Arm) __aeabi_mem* are weak but still global: when
# the archive comes before the C library on the link line, the linker takes them
# from the archive and the firmware's own C code uses them instead of its C
# library's. This script makes them local to their objects (objcopy
# --localize-symbol), so every such call, the agent's included, goes to the C
# library, wherever the archive is on the link line. The C library must provide
# them (newlib and picolibc do, the __aeabi_* ones on Arm too).
#
# Usage: rtos-side/staticlib.sh <target> [more cargo args, e.g. --features ...]
#   OBJCOPY  the objcopy for the target (default: arm-none-eabi-objcopy for
#            thumb*/arm*, riscv64-unknown-elf-objcopy for riscv*)
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 <target> [cargo args...]" >&2
    exit 2
fi
target=$1
shift
root=$(cd "$(dirname "$0")/.." && pwd)
case "$target" in
thumb* | arm*) objcopy=${OBJCOPY:-arm-none-eabi-objcopy} ;;
riscv*) objcopy=${OBJCOPY:-riscv64-unknown-elf-objcopy} ;;
*) objcopy=${OBJCOPY:-} ;;
esac
if [ -z "$objcopy" ] || ! command -v "$objcopy" >/dev/null; then
    echo "staticlib.sh: no objcopy for $target (${objcopy:-none known}); set OBJCOPY" >&2
    exit 2
fi
cargo rustc -q --release --manifest-path "$root/Cargo.toml" -p micrun-rtos --target "$target" \
    --features capi,panic-handler --crate-type staticlib "$@" >&2
target_dir=${CARGO_TARGET_DIR:-$root/target}
out="$target_dir/$target/capi"
mkdir -p "$out"
syms=()
for s in memcpy memmove memset memcmp bcmp strlen \
    __aeabi_memcpy __aeabi_memcpy4 __aeabi_memcpy8 __aeabi_memmove __aeabi_memmove4 \
    __aeabi_memmove8 __aeabi_memset __aeabi_memset4 __aeabi_memset8 \
    __aeabi_memclr __aeabi_memclr4 __aeabi_memclr8; do
    syms+=("--localize-symbol=$s")
done
"$objcopy" "${syms[@]}" "$target_dir/$target/release/libmicrun_rtos.a" "$out/libmicrun_rtos.a"
echo "$out/libmicrun_rtos.a"

#!/usr/bin/env bash
# Builds the mps2-an386 (Cortex-M4) C application on the micrun agent's C ABI:
# the agent as a static library (rtos-side, features capi + panic-handler, for
# thumbv7em-none-eabihf), then Debian's arm-none-eabi-gcc with newlib.
#
# Usage: rtos-side/firmware/mps2-an386/build.sh OUT.elf
# Needs: cargo with the thumbv7em-none-eabihf target; gcc-arm-none-eabi and
# libnewlib-arm-none-eabi (Debian).
set -euo pipefail
out=${1:?usage: build.sh OUT.elf}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}

cargo rustc -q --release --manifest-path "$root/Cargo.toml" -p micrun-rtos \
    --target thumbv7em-none-eabihf --features capi,panic-handler --crate-type staticlib
lib="$target_dir/thumbv7em-none-eabihf/release/libmicrun_rtos.a"

# The C library comes after the agent, so newlib's memcpy/memset are the ones linked.
arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 \
    -Os -g -std=c11 -Wall -Wextra -Werror -ffunction-sections -fdata-sections \
    -I "$root/include" -nostartfiles --specs=nano.specs -T "$here/mps2.ld" \
    -Wl,--gc-sections -Wl,-z,noexecstack -o "$out" \
    "$here/startup.c" "$here/main.c" "$lib" -lc -lnosys

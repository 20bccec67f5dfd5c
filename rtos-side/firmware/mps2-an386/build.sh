#!/usr/bin/env bash
# Builds the mps2-an386 (Cortex-M4) C application on the micrun agent's C ABI:
# the agent as a static library (rtos-side/staticlib.sh: features capi +
# panic-handler, plus exec: the application has commands; for
# thumbv7em-none-eabihf), then Debian's arm-none-eabi-gcc with
# newlib.
#
# Usage: rtos-side/firmware/mps2-an386/build.sh OUT.elf
# Needs: cargo with the thumbv7em-none-eabihf target; gcc-arm-none-eabi and
# libnewlib-arm-none-eabi (Debian).
set -euo pipefail
out=${1:?usage: build.sh OUT.elf}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)

# The agent's static library, its memory routines made local (staticlib.sh says
# why): newlib's memcpy/memset are the ones linked.
lib=$(bash "$root/rtos-side/staticlib.sh" thumbv7em-none-eabihf --features exec)

arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 \
    -Os -g -std=c11 -Wall -Wextra -Werror -ffunction-sections -fdata-sections \
    -I "$root/include" -nostartfiles --specs=nano.specs -T "$here/mps2.ld" \
    -Wl,--gc-sections -Wl,-z,noexecstack -o "$out" \
    "$here/startup.c" "$here/main.c" "$lib" -lc -lnosys

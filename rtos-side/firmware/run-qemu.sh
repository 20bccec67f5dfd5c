#!/bin/sh
# Boots a micrun firmware ELF on QEMU's aarch64 `virt` board with its UART on a
# unix socket, which is the micrun link (agent frames, or raw console bytes).
#
#   run-qemu.sh FW.elf SOCKET [extra qemu args...]
#
# QEMU listens on SOCKET and does not start the guest until a client connects
# (server=on,wait=on), so no boot output is lost. Nothing goes to stdio: no
# default devices, no display, no monitor; the UART is only on the socket.
# PSCI SYSTEM_OFF from the guest (exit, panic) ends QEMU with status 0;
# -no-reboot makes a guest reset end it too.
# Environment: QEMU (default qemu-system-aarch64), MEM (MiB, default 64), SMP (1).
set -eu

if [ $# -lt 2 ]; then
    echo "usage: $0 FW.elf SOCKET [extra qemu args...]" >&2
    exit 2
fi
fw=$1
sock=$2
shift 2
if [ ! -r "$fw" ]; then
    echo "$0: cannot read firmware '$fw'" >&2
    exit 2
fi

exec "${QEMU:-qemu-system-aarch64}" \
    -M virt -cpu cortex-a53 -smp "${SMP:-1}" -m "${MEM:-64}" \
    -nodefaults -display none -monitor none -no-reboot \
    -kernel "$fw" \
    -chardev "socket,id=link,path=$sock,server=on,wait=on" \
    -serial chardev:link \
    "$@"

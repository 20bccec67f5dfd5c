#!/usr/bin/env python3
"""Smoke test and boot-time measurement of a raw-mode firmware image on QEMU.

    check-raw.py FW.elf [RUNS]

Boots FW.elf with run-qemu.sh (next to this script) RUNS times (default 20) and
reports the time from the client's connect (QEMU starts the guest then) to the
first UART byte, and from spawning QEMU to that byte. Then runs one session:
the banner, `echo hi` -> `hi`, `flood 30000`, `stats`; measures QEMU's host CPU
use while the guest idles, the stack high-water mark (QEMU monitor `pmemsave` of
the ELF's `.stack` section, which starts zeroed) and the host CPU use after
`hang`; checks that `exit 3` prints `exit 3` and ends QEMU with status 0.
Exits non-zero on any failure. Needs only python3 and qemu-system-aarch64.
"""
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

RUN_QEMU = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run-qemu.sh")
STARTED = []  # QEMU processes, killed on the way out if still running


def elf_section(path, name):
    """(address, size) of section `name` in a little-endian ELF64 file."""
    with open(path, "rb") as f:
        elf = f.read()
    if elf[:6] != b"\x7fELF\x02\x01":
        sys.exit(f"{path}: not a little-endian ELF64 file")
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3a)

    def header(i):
        # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
        return struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize)

    strtab_off = header(shstrndx)[4]
    for i in range(shnum):
        sh_name, _, _, addr, _, size = header(i)
        end = elf.index(b"\0", strtab_off + sh_name)
        if elf[strtab_off + sh_name:end] == name:
            return addr, size
    sys.exit(f"{path}: no {name!r} section")


def host_cpu_percent(pid, seconds):
    def cpu_s():
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    c0, t0 = cpu_s(), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_s() - c0) / (time.monotonic() - t0)


def monitor(path, command):
    m = socket.socket(socket.AF_UNIX)
    m.connect(path)
    m.settimeout(5)
    buf = b""
    while b"(qemu)" not in buf:
        buf += m.recv(4096)
    m.sendall(command.encode() + b"\n")
    # The monitor redraws its prompt per echoed character; wait for the next line.
    buf = b""
    while b"\r\n(qemu)" not in buf:
        buf += m.recv(4096)
    m.close()


def boot(fw, sock, extra=()):
    t0 = time.monotonic()
    qemu = subprocess.Popen([RUN_QEMU, fw, sock, *extra], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    STARTED.append(qemu)
    s = socket.socket(socket.AF_UNIX)
    deadline = t0 + 10
    while True:
        try:
            s.connect(sock)
            break
        except OSError:
            if time.monotonic() > deadline or qemu.poll() is not None:
                sys.exit(f"QEMU did not open {sock}")
            time.sleep(0.0005)
    t1 = time.monotonic()
    s.settimeout(5)
    try:
        first = s.recv(1)
    except socket.timeout:
        first = b""
    t2 = time.monotonic()
    if not first:
        sys.exit("no UART output within 5 s (is this a raw-mode image? an agent-mode "
                 "image stays silent until a host sends Hello)")
    return qemu, s, first, (t2 - t1) * 1000, (t2 - t0) * 1000


def read_until(s, buf, needle, timeout=5):
    end = time.monotonic() + timeout
    while needle not in buf:
        s.settimeout(max(0.01, end - time.monotonic()))
        try:
            d = s.recv(4096)
        except socket.timeout:
            d = None
        if not d:
            sys.exit(f"expected {needle!r}, got {bytes(buf)!r}")
        buf.extend(d)
    return buf


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    fw, runs = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20
    tmp = tempfile.mkdtemp(prefix="micrun-fw-")
    try:
        run(fw, runs, tmp)
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


def run(fw, runs, tmp):
    connect_ms, spawn_ms = [], []
    for i in range(runs):
        qemu, s, _, c, p = boot(fw, os.path.join(tmp, f"b{i}.sock"))
        connect_ms.append(c)
        spawn_ms.append(p)
        s.sendall(b"exit 0\r")
        qemu.wait(timeout=10)
    print(f"boot, {runs} runs: connect->first UART byte median "
          f"{statistics.median(connect_ms):.1f} ms (min {min(connect_ms):.1f}, "
          f"max {max(connect_ms):.1f}); QEMU spawn->first byte median "
          f"{statistics.median(spawn_ms):.1f} ms (min {min(spawn_ms):.1f}, "
          f"max {max(spawn_ms):.1f})")

    mon = os.path.join(tmp, "monitor.sock")
    qemu, s, first, _, _ = boot(fw, os.path.join(tmp, "session.sock"),
                                ("-monitor", f"unix:{mon},server=on,wait=off"))
    buf = read_until(s, bytearray(first), b"> ")
    if not buf.startswith(b"micrun demo shell on qemu-virt"):
        sys.exit(f"bad banner {bytes(buf)!r}")
    s.sendall(b"echo hi\r")
    read_until(s, buf, b"hi\r\n> ")
    s.sendall(b"flood 30000\r")
    read_until(s, buf, b"flood done 30000\r\n> ")
    s.sendall(b"stats\r")
    read_until(s, buf, b"mem_total_kib=")
    read_until(s, buf, b"\r\n> ")
    stats = bytes(buf).rsplit(b"uptime_ms=", 1)[1].split(b"\r\n")[0]
    idle = host_cpu_percent(qemu.pid, 3)

    addr, size = elf_section(fw, b".stack")
    dump = os.path.join(tmp, "stack.bin")
    monitor(mon, f'pmemsave {addr:#x} {size} "{dump}"')
    with open(dump, "rb") as f:
        stack = f.read()
    low = next((i for i in range(0, len(stack), 8) if any(stack[i:i + 8])), len(stack))

    s.sendall(b"hang\r")
    time.sleep(0.2)
    hung = host_cpu_percent(qemu.pid, 3)
    qemu.kill()
    qemu.wait()

    qemu, s, first, _, _ = boot(fw, os.path.join(tmp, "exit.sock"))
    buf = read_until(s, bytearray(first), b"> ")
    s.sendall(b"exit 3\r")
    read_until(s, buf, b"exit 3\r\n")
    rc = qemu.wait(timeout=10)
    out = qemu.stdout.read()
    if rc != 0 or out:
        sys.exit(f"QEMU ended with {rc}, stdout {out!r}")
    print("session ok: banner, echo, flood 30000, stats, hang; `exit 3` printed "
          "`exit 3` and QEMU exited with status 0")
    print(f"stats: uptime_ms={stats.decode()}")
    print(f"QEMU host CPU: idle guest {idle:.1f} % of one core, hung guest {hung:.1f} %")
    print(f"stack high-water: {len(stack) - low} of {size} bytes")


def stop_all():
    for q in STARTED:
        if q.poll() is None:
            q.kill()
            q.wait()


if __name__ == "__main__":
    main()

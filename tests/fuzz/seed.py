#!/usr/bin/env python3
"""Writes the seed inputs of the fuzz targets into OUT/<target>/ from real inputs:
the protocol's golden vectors (tests/vectors/messages.txt), the docs' examples, an
OCI spec from `runc spec`, replies and listings as micad and xl print them, and the
headers of the ELF firmware Debian ships (u-boot-qemu, opensbi). The committed
corpora (tests/fuzz/corpus) are these seeds plus what fuzzing found, minimised with
`cargo fuzz cmin` (see docs/reliability.md).

    python3 tests/fuzz/seed.py OUT
"""
import hashlib
import json
import os
import pathlib
import re
import struct
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
out = pathlib.Path(sys.argv[1])


def put(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = out / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


# The golden vectors: name dir flags seq ack payload frame wire.
vectors = [l.split() for l in open(ROOT / "tests/vectors/messages.txt")
           if l.strip() and not l.startswith("#")]
for v in vectors:
    payload = b"" if v[5] == "-" else bytes.fromhex(v[5])
    frame, wire = bytes.fromhex(v[6]), bytes.fromhex(v[7])
    body = frame[:-2]
    put("msg", payload)
    put("frame", bytes([255]) + wire)
    put("frame", bytes([7]) + frame)
    # decode: split step mode; sealed records (len body) or the wire as is.
    if len(body) < 256:
        put("decode", bytes([128, 1, 1, len(body)]) + body)
    put("decode", bytes([128, 1, 0]) + wire)
    # ffi_codec: storage chunk cap[2] flags seq ack data.
    put("ffi_codec", bytes([128, 255, 0, 2]) + frame[:3] + wire)
    put("ffi_codec", bytes([128, 16, 0, 2]) + frame[:3] + payload)
for d in ("h2r", "r2h"):
    sel = [v for v in vectors if v[1] == d]
    put("decode", bytes([128, 1, 1]) + b"".join(
        bytes([len(bytes.fromhex(v[6])[:-2])]) + bytes.fromhex(v[6])[:-2]
        for v in sel if len(v[6]) // 2 - 2 < 256))
    put("frame", bytes([31]) + b"".join(bytes.fromhex(v[7]) for v in sel))

# Annotations: key=value lines, as the docs' pod and the shim's keys take them.
P = "org.openeuler.micrun."
put("annotations", f"{P}ped.pedestal=qemu\n{P}container.agent=auto\n{P}container.min_memory_mb=64")
put("annotations", f"{P}container.firmware_path=/firmware.elf\n{P}container.firmware_hash="
    + "ab" * 32 + f"\n{P}container.firmware_kind=raw\n{P}container.firmware_load_address=0x40200000\n"
    f"{P}container.firmware_arch=aarch64")
put("annotations", f"{P}container.auto_close=true\n{P}container.auto_close_timeout=30s\n"
    f"{P}container.max_vcpu_num=2\n{P}runtime.static_resource=false\n{P}runtime.pipe_size=65536\n"
    f"{P}ped.remoteproc=remoteproc0\n{P}ped.conf=/etc/mica/x.conf\n{P}container.os=zephyr\n"
    f"{P}container.board=qemu-virt")
put("annotations", "io.kubernetes.cri.container-type=sandbox\nio.kubernetes.cri.sandbox-id=abc\n"
    f"{P}runtime.debug=1\n{P}container.agent=off\n{P}unknown.key=x")

# Config: the TOML examples of docs/shim.md.
for block in re.findall(r"```toml\n(.*?)```", (ROOT / "docs/shim.md").read_text(), re.S):
    put("config", block)
put("config", "")

# OCI: runc's default spec, and with annotations.
with tempfile.TemporaryDirectory() as d:
    try:
        subprocess.run(["runc", "spec", "--rootless"], cwd=d, check=True)
        spec = json.loads(pathlib.Path(d, "config.json").read_text())
        put("oci", json.dumps(spec))
        spec["annotations"] = {f"{P}ped.pedestal": "sim", f"{P}container.agent": "on"}
        spec["process"]["terminal"] = True
        put("oci", json.dumps(spec, indent=1))
    except (OSError, subprocess.CalledProcessError) as e:
        print(f"seed: no runc spec ({e}); oci gets the minimal spec only", file=sys.stderr)
put("oci", '{"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"args": ["/fw"], "cwd": "/"}}')

# Image index: the docs' example and a two-firmware index.
entry = {"board": "qemu-virt", "os": "zephyr", "arch": "aarch64", "pedestal": "qemu",
         "path": "micrun/qemu/qemu-virt/zephyr-aarch64/virt.elf", "sha256": "ab" * 32,
         "size": 123456, "annotations": {f"{P}container.agent": "on"}}
put("image_index", json.dumps({"schemaVersion": 1, "firmware": [entry]}))
put("image_index", json.dumps({"schemaVersion": 1, "firmware": [
    entry, dict(entry, arch="x86_64", pedestal="sim", board="host", path="micrun/sim/app")]}))

# micad: chunk n id[n] reply; replies and `status` lines as micad prints them.
for reply in [b"MICA-SUCCESS", b"MICA-FAILED", b"Start failed: no such file\nMICA-FAILED",
              b"%-30s%-20s%-20srpmsg-tty(/dev/ttyRPMSG0) MICA-SUCCESS"
              % (b"qemu-virt", b"1,2", b"Running"),
              b"%-30s%-20s%-20s\nMICA-SUCCESS\n\x00" % (b"a-very-long-container-name-xyz", b"3", b"Offline"),
              b"line\r\nother\r\r\nend\r"]:
    put("micad", bytes([16, 9]) + b"qemu-virt" + reply)
put("micad", bytes([255, 4]) + b"demo" + b"demo\x00".ljust(1772, b"\x00"))

# xl list: flags output [\0 name].
hdr = "Name                                        ID   Mem VCPUs\tState\tTime(s)\n"
dom0 = f"{'Domain-0':<40} {0:>5} {2048:>5} {2:>5}     r-----  {123.4:>8.1f}\n"
dom = f"{'micrun-abc':<40} {7:>5} {64:>5} {1:>5}     -b----  {0.5:>8.1f}\n"
put("xl_list", "\x00" + hdr + dom0 + dom + "\x00micrun-abc")
put("xl_list", "\x01" + hdr + dom + dom0)
put("xl_list", "\x00" + hdr + f"{'my dom':<40} {3:>5} {64:>5} {1:>5}     --p---  {1.0:>8.1f}\n\x00my dom")

# remoteproc: n name[n] state.
for state in ["offline\n", "running\n", "crashed\n", "attached\n", "suspended", "booting\n"]:
    put("rproc_sysfs", bytes([8]) + b"m4_0-rp\n" + state.encode())

# firmware: flags kind arch archs load[8] file: the ELF headers Debian ships.
for elf in ["/usr/lib/u-boot/qemu_arm64/uboot.elf", "/usr/lib/u-boot/qemu_arm/uboot.elf",
            "/usr/lib/u-boot/qemu-riscv64/uboot.elf", "/usr/lib/u-boot/qemu-x86_64/uboot.elf",
            "/usr/lib/u-boot/qemu-x86/uboot.elf",
            "/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.elf"]:
    if os.path.exists(elf):
        head = open(elf, "rb").read(128)
        put("firmware", bytes([0, 0, 0, 0x1f]) + bytes(8) + head)
        put("firmware", bytes([1, 0, 0, 0x01]) + bytes(8) + head)
put("firmware", bytes([0x1d, 1, 0, 0x1f]) + struct.pack("<Q", 0x40200000) + b"\x00" * 64)
put("firmware", bytes([0x07, 2, 0, 0x1f]) + bytes(8) + b"_FVH" * 16)

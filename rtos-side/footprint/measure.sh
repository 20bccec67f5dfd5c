#!/usr/bin/env bash
# Measures the RTOS-side footprint of micrun (agent + protocol) on thumbv7em on two
# paths and checks the budget on both:
#   - the Rust probe: a Rust firmware driving micrun_rtos::Agent (src/agent.rs)
#     against the same runtime without it (src/baseline.rs), built by cargo;
#   - the C path: a C firmware (c/fw.c) on the agent's C ABI, linked with the
#     `capi` static library (rtos-side/staticlib.sh) by arm-none-eabi-gcc with
#     newlib, against the same C firmware without the agent.
# For the default configuration Agent<_, 128, 1024, 512>, each path's agent share
# (agent firmware minus its baseline) must be within its BUDGETS entry: flash
# (vector table + .text + .rodata + .ARM.exidx + .data initialisers) and
# static RAM (.data + .bss) once the console rings (2 x OUT + IN: the stdout and
# stderr output rings and the stdin ring; with exec 3 x OUT + IN) are taken off.
# The default configuration has no exec (micrun-rtos's `exec` feature); the same
# probes with it are measured too and the feature's cost reported on its own line.
# The C link must take memcpy/memmove/memset from the C library, with the archive
# before it and after it on the link line.
#
# Usage (from anywhere): rtos-side/footprint/measure.sh [--write-docs] [--attribute]
#   --write-docs  regenerate the generated parts of docs/footprint.md
#   --attribute   also build a diagnostic image with inlining disabled and sum the
#                 code by crate/module (sizes there are larger than in the real
#                 image; use them as proportions only)
#
# Needs cargo (with the thumbv7em-none-eabihf target), python3, and Debian's
# gcc-arm-none-eabi + libnewlib-arm-none-eabi (arm-none-eabi-gcc, -objcopy).
# Exit status: 0 within budget, 1 over budget, 2 usage or build error.
set -euo pipefail

write_docs=0
attribute=0
for arg in "$@"; do
    case "$arg" in
    --write-docs) write_docs=1 ;;
    --attribute) attribute=1 ;;
    -h | --help)
        sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "measure.sh: unknown argument: $arg" >&2
        exit 2
        ;;
    esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
manifest=rtos-side/footprint/Cargo.toml
target=thumbv7em-none-eabihf

target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$manifest" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
out="$target_dir/footprint"
mkdir -p "$out"

build() { # build <extra cargo args...>
    echo "+ cargo build --release --manifest-path $manifest --target $target $*" >&2
    cargo build --quiet --release --manifest-path "$manifest" --target "$target" "$@" || exit 2
}

build
cp "$target_dir/$target/release/baseline" "$out/baseline.elf"
cp "$target_dir/$target/release/agent" "$out/agent-default.elf"
build --features small
cp "$target_dir/$target/release/agent" "$out/agent-small.elf"
build --features exec
cp "$target_dir/$target/release/agent" "$out/agent-exec.elf"
# The same probe for RISC-V, reported beside (no budget of its own).
rv=riscv32imac-unknown-none-elf
echo "+ cargo build --release --manifest-path $manifest --target $rv" >&2
cargo build --quiet --release --manifest-path "$manifest" --target "$rv" || exit 2
cp "$target_dir/$rv/release/baseline" "$out/rv-baseline.elf"
cp "$target_dir/$rv/release/agent" "$out/rv-agent-default.elf"

if [ "$attribute" = 1 ]; then
    # A separate target directory, so the real images are never built with these flags.
    echo "+ RUSTFLAGS='-C llvm-args=-inline-threshold=-100000' cargo build --release" \
        "--manifest-path $manifest --target $target --bin agent --target-dir $out/noinline" >&2
    RUSTFLAGS="-C llvm-args=-inline-threshold=-100000" \
        cargo build --quiet --release --manifest-path "$manifest" --target "$target" \
        --bin agent --target-dir "$out/noinline" || exit 2
    cp "$out/noinline/$target/release/agent" "$out/agent-default-noinline.elf"
fi

# The C path: the static library, and the C firmware with and without it.
cc=arm-none-eabi-gcc
if ! command -v "$cc" >/dev/null; then
    echo "measure.sh: $cc not found; install Debian's gcc-arm-none-eabi and libnewlib-arm-none-eabi (.ci/setup)" >&2
    exit 2
fi
echo "+ rtos-side/staticlib.sh $target --features exec" >&2
lib=$(rtos-side/staticlib.sh "$target" --features exec) || exit 2
cp "$lib" "$out/libmicrun_rtos-exec.a"
echo "+ rtos-side/staticlib.sh $target" >&2
lib=$(rtos-side/staticlib.sh "$target") || exit 2
cflags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os -flto
    -ffunction-sections -fdata-sections -std=c11 -Wall -Wextra -Werror -Iinclude
    -nostartfiles -Lrtos-side/footprint -Trtos-side/footprint/link.x -Wl,--gc-sections)
trace=()
for s in memcpy memmove memset; do trace+=("-Wl,--trace-symbol=$s"); done
ccbuild() { # ccbuild <log> <args...>
    local log=$1
    shift
    echo "+ $cc ${cflags[*]} $*" >&2
    "$cc" "${cflags[@]}" "$@" >"$log" 2>&1 || { cat "$log" >&2; exit 2; }
}
fw=rtos-side/footprint/c/fw.c
ccbuild "$out/c-baseline.log" "$fw" -o "$out/c-baseline.elf"
# The archive before the C library (gcc adds -lc at the end) and after it.
ccbuild "$out/c-agent.log" -DMICRUN_FP_AGENT "$fw" "$lib" "${trace[@]}" -o "$out/c-agent.elf"
ccbuild "$out/c-agent-last.log" -DMICRUN_FP_AGENT "$fw" -lc "$lib" "${trace[@]}" -o "$out/c-agent-last.elf"
ccbuild "$out/c-agent-exec.log" -DMICRUN_FP_AGENT -DMICRUN_FP_EXEC "$fw" "$out/libmicrun_rtos-exec.a" \
    -o "$out/c-agent-exec.elf"

exec python3 - "$out" "$write_docs" "$attribute" "$root/docs/footprint.md" <<'PY'
import re
import struct
import sys

out, write_docs, attribute, docs_path = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4]

# Agent share, default configuration: flash (everything in flash) and static RAM
# excluding the console rings: the target of issue 11 on both paths. The C path's
# flash moves in 64 B steps (newlib's strlen after the agent's code is 64-byte
# aligned); docs/footprint.md ("What is left") says how much code fits below the next.
BUDGETS = {"Rust probe": (6144, 512), "C path": (6144, 512)}
AGENT_SYMBOL = "MICRUN_AGENT"
C_AGENT_SYMBOL = "micrun_rtos::capi::SLOT"

# (label, file, (FRAME, OUT, IN, output rings) or None for the baseline)
CONFIGS = [
    ("baseline (no agent)", "baseline.elf", None),
    ("default `Agent<Uart, 128, 1024, 512>`", "agent-default.elf", (128, 1024, 512, 2)),
    ("small `Agent<Uart, 128, 256, 128>`", "agent-small.elf", (128, 256, 128, 2)),
    ("default + `exec` feature", "agent-exec.elf", (128, 1024, 512, 3)),
]


# ---- ELF32 little-endian reader ------------------------------------------------

class Elf:
    def __init__(self, path):
        self.data = data = open(path, "rb").read()
        if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
            sys.exit(f"{path}: not a 32-bit little-endian ELF")
        self.machine, = struct.unpack_from("<H", data, 0x12)  # 40: Arm, 243: RISC-V
        shoff, = struct.unpack_from("<I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
        raw = []
        for i in range(shnum):
            (name, typ, flags, addr, offset, size, link, info, align,
             entsize) = struct.unpack_from("<10I", data, shoff + i * shentsize)
            raw.append(dict(name_off=name, type=typ, flags=flags, addr=addr,
                            offset=offset, size=size, link=link, entsize=entsize))
        strtab = raw[shstrndx]
        for s in raw:
            s["name"] = self._cstr(strtab["offset"] + s["name_off"])
        self.sections = raw
        self.by_name = {s["name"]: s for s in raw}
        self.symbols = []
        for s in raw:
            if s["type"] != 2:  # SHT_SYMTAB
                continue
            names = raw[s["link"]]
            for off in range(s["offset"], s["offset"] + s["size"], 16):
                name, value, size, info, other, shndx = struct.unpack_from("<IIIBBH", data, off)
                if size == 0 or shndx == 0 or shndx >= len(raw):
                    continue
                self.symbols.append(dict(
                    raw=self._cstr(names["offset"] + name), value=value, size=size,
                    type=info & 0xF, section=raw[shndx]["name"]))

    def _cstr(self, off):
        end = self.data.index(b"\0", off)
        return self.data[off:end].decode("utf-8", "replace")

    def size(self, name):
        s = self.by_name.get(name)
        return s["size"] if s else 0

    def read(self, addr, n):
        for s in self.sections:
            if s["type"] == 1 and s["addr"] <= addr < s["addr"] + s["size"]:
                off = s["offset"] + addr - s["addr"]
                return self.data[off:off + n]
        return b""


# ---- Rust symbol demangling (legacy, and the simple paths of v0) ---------------

LEGACY_ESCAPES = {"SP": "@", "BP": "*", "RF": "&", "LT": "<", "GT": ">", "LP": "(",
                  "RP": ")", "C": ","}


def demangle_legacy(sym):
    s, parts, i = sym[3:], [], 0
    while i < len(s) and s[i] != "E":
        m = re.match(r"\d+", s[i:])
        if not m:
            return sym
        n = int(m.group())
        i += len(m.group())
        parts.append(s[i:i + n])
        i += n
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()

    def unescape(p):
        if p.startswith("_$"):
            p = p[1:]
        p = p.replace("..", "::")

        def esc(m):
            code = m.group(1)
            if code in LEGACY_ESCAPES:
                return LEGACY_ESCAPES[code]
            if code.startswith("u"):
                return chr(int(code[1:], 16))
            return m.group(0)
        return re.sub(r"\$([A-Za-z0-9]+)\$", esc, p)
    return "::".join(unescape(p) for p in parts)


def demangle_v0(sym):
    s, pos = sym[2:], [0]

    def ident():
        if s[pos[0]] == "s":  # disambiguator
            pos[0] = s.index("_", pos[0]) + 1
        if s[pos[0]] == "u":
            raise ValueError("punycode")
        m = re.match(r"\d+", s[pos[0]:])
        n = int(m.group())
        pos[0] += len(m.group())
        if s[pos[0]] == "_":
            pos[0] += 1
        r = s[pos[0]:pos[0] + n]
        pos[0] += n
        return r

    def path():
        c = s[pos[0]]
        pos[0] += 1
        if c == "C":
            return ident()
        if c == "N":
            pos[0] += 1  # namespace tag
            p = path()
            name = ident()
            return f"{p}::{name}" if name else p
        raise ValueError("unsupported")
    try:
        return path()
    except (ValueError, IndexError, AttributeError):
        return sym


def demangle(sym):
    if sym.startswith("_ZN"):
        return demangle_legacy(sym)
    if sym.startswith("_R"):
        return demangle_v0(sym)
    return sym


# ---- Stack frame of a function, from its Thumb-2 prologue ----------------------

def thumb_expand_imm(imm12):
    if imm12 >> 10 == 0:
        b = imm12 & 0xFF
        return [b, (b << 16) | b, (b << 24) | (b << 8), b * 0x01010101][(imm12 >> 8) & 3]
    v, rot = 0x80 | (imm12 & 0x7F), imm12 >> 7
    return ((v >> rot) | (v << (32 - rot))) & 0xFFFFFFFF


def prologue_frame(elf, sym):
    """Bytes a function's prologue takes off SP (push + sub sp), or None."""
    code = elf.read(sym["value"] & ~1, min(sym["size"], 48))
    total, i, seen = 0, 0, False
    while i + 2 <= len(code):
        hw, = struct.unpack_from("<H", code, i)
        hw2 = struct.unpack_from("<H", code, i + 2)[0] if i + 4 <= len(code) else 0
        if hw & 0xFE00 == 0xB400:  # PUSH {r0-r7[, lr]}
            total += 4 * (bin(hw & 0xFF).count("1") + ((hw >> 8) & 1))
        elif hw == 0xE92D:  # PUSH.W
            total += 4 * bin(hw2 & 0x5FFF).count("1")
        elif hw & 0xFF80 == 0xB080:  # SUB SP, SP, #imm7*4
            total += (hw & 0x7F) * 4
            seen = True
        elif hw & 0xFBEF == 0xF1AD and hw2 & 0x8F00 == 0x0D00:  # SUB.W SP, SP, #const
            imm12 = ((hw >> 10) & 1) << 11 | ((hw2 >> 12) & 7) << 8 | (hw2 & 0xFF)
            total += thumb_expand_imm(imm12)
            seen = True
        elif hw & 0xFBFF == 0xF2AD and hw2 & 0x8F00 == 0x0D00:  # SUBW SP, SP, #imm12
            total += ((hw >> 10) & 1) << 11 | ((hw2 >> 12) & 7) << 8 | (hw2 & 0xFF)
            seen = True
        i += 4 if (hw >> 11) in (0x1D, 0x1E, 0x1F) else 2
    return total if seen or total else None


# ---- Measurements ----------------------------------------------------------------

def measure(label, fname, cfg, agent_symbol=AGENT_SYMBOL):
    elf = Elf(f"{out}/{fname}")
    text, rodata = elf.size(".text"), elf.size(".rodata")
    data, bss = elf.size(".data"), elf.size(".bss")
    vectors, exidx = elf.size(".vector_table"), elf.size(".ARM.exidx")
    rings = cfg[3] * cfg[1] + cfg[2] if cfg else 0
    ram = data + bss
    m = dict(label=label, elf=elf, cfg=cfg, text=text, rodata=rodata, data=data, bss=bss,
             vectors=vectors, exidx=exidx, text_rodata=text + rodata,
             flash=vectors + text + rodata + exidx + data, ram=ram, rings=rings,
             ram_ex=ram - rings)
    main = next((s for s in elf.symbols if s["raw"] == "fw_main"), None)
    m["main_frame"] = prologue_frame(elf, main) if main and elf.machine == 40 else None
    init = next((s for s in elf.symbols if s["raw"] == "micrun_agent_init"), None)
    m["init_frame"] = prologue_frame(elf, init) if init and elf.machine == 40 else None
    if cfg:
        agent = [s for s in elf.symbols if demangle(s["raw"]) == agent_symbol]
        if len(agent) != 1:
            sys.exit(f"{fname}: symbol {agent_symbol} not found in the symbol table")
        agent = agent[0]
        others = [s for s in elf.symbols
                  if s["section"] in (".data", ".bss") and s is not agent and s["type"] == 1]
        m["agent_sym"] = agent
        m["agent_name"] = agent_symbol
        m["other_static"] = sum(s["size"] for s in others)
    return m


results = [measure(*c) for c in CONFIGS]
base = results[0]
c_base = measure("C baseline (no agent)", "c-baseline.elf", None)
c_agent = measure("C firmware + `capi` static library (default)", "c-agent.elf", (128, 1024, 512, 2),
                  C_AGENT_SYMBOL)
c_last = measure("same, archive after -lc", "c-agent-last.elf", (128, 1024, 512, 2), C_AGENT_SYMBOL)
c_exec = measure("C firmware + `capi` static library with `exec`", "c-agent-exec.elf",
                 (128, 1024, 512, 3), C_AGENT_SYMBOL)
rv_base = measure("riscv32imac baseline (no agent)", "rv-baseline.elf", None)
rv_agent = measure("riscv32imac default `Agent<Uart, 128, 1024, 512>`", "rv-agent-default.elf",
                   (128, 1024, 512, 2))


def share(m, b):
    return m["flash"] - b["flash"], m["ram_ex"] - b["ram_ex"]

rows = [
    "| configuration | .text | .rodata | .data | flash total¹ | static RAM (.data+.bss) | console rings (2 or 3×OUT+IN) | RAM excl. rings | agent share: flash / RAM excl. rings² |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]


def row(m, b):
    sh = "—" if m is b else "{} / {}".format(*share(m, b))
    return (f"| {m['label']} | {m['text']} | {m['rodata']} | {m['data']} | **{m['flash']}** "
            f"| {m['ram']} | {m['rings']} | **{m['ram_ex']}** | {sh} |")


rows += [row(m, base) for m in results] + [row(m, rv_base) for m in (rv_base, rv_agent)]
table = "\n".join(rows)
c_rows = rows[:2] + [row(m, c_base) for m in (c_base, c_agent, c_last, c_exec)]
c_table = "\n".join(c_rows)
notes = (
    "¹ vector table + .text + .rodata + .ARM.exidx + .data initializers: everything in flash.  \n"
    "² the agent firmware minus its baseline firmware (same runtime, UART and clock code, and the C memory routines: "
    "`memcpy`/`__aeabi_memcpy4`/`8`/`__aeabi_memclr*`/`memset` through `hw::memory_routines` in both Rust images, "
    "newlib's `memcpy`/`memmove`/`memset`/`strlen`/`__aeabi_memclr`/`__aeabi_memset` in the C one).")

d = results[1]
rust_flash, rust_ram = share(d, base)
c_flash, c_ram = share(c_agent, c_base)
# The exec feature's cost: the probe with exec minus the default probe.
exec_line = "\n".join(
    f"- {path}: +{ef - df} B of flash, +{er - dr} B of RAM excluding rings, "
    f"+{m['rings'] - dm['rings']} B for the exec output ring"
    for path, m, dm, (ef, er), (df, dr) in (
        ("Rust probe", results[3], d, share(results[3], base), (rust_flash, rust_ram)),
        ("C path", c_exec, c_agent, share(c_exec, c_base), (c_flash, c_ram))))
anchors = "\n".join([
    "| implementation | flash | RAM |",
    "|---|---:|---:|",
    f"| **micrun agent + protocol, C path, default config** (agent share) | {c_flash} B "
    f"| {c_ram} B + {c_agent['rings']} B console rings |",
    f"| **micrun agent + protocol, Rust probe, default config** (agent share) | {rust_flash} B "
    f"| {rust_ram} B + {d['rings']} B console rings |",
    "| **micrun agent + protocol, Rust probe, small config** (agent share) | {} B | {} B + {} B console rings |".format(
        *share(results[2], base), results[2]["rings"]),
    "| micrun agent + protocol, Rust probe, riscv32imac, default config (agent share) | {} B | {} B + {} B console rings |".format(
        *share(rv_agent, rv_base), rv_agent["rings"]),
    "| micrun budget (agent share, default config), Rust probe / C path | ≤ {} / {} B | ≤ {} / {} B excl. rings |".format(
        BUDGETS["Rust probe"][0], BUDGETS["C path"][0], BUDGETS["Rust probe"][1], BUDGETS["C path"][1]),
    "| target (issue 11), both paths | ≤ 6144 B | ≤ 512 B excl. rings |",
    "| OpenAMP RPMsg | 5547 B | 456 B + dynamic |",
    "| RPMsg-Lite (dynamic API) | 3462 B | 56 B + dynamic |",
    "| RPMsg-Lite (static API) | 2926 B | 352 B |",
    "| eRPC | < 5 kB | |",
])

print()
print("Rust probe:")
print()
print(table)
print()
print("C path:")
print()
print(c_table)
print()
print(notes)
print()
print("exec feature (default + exec minus default):")
print(exec_line)
print()
print(anchors)
print()

# The C link takes the memory routines from the C library, archive first or last.
libc_ok = True
for log in ("c-agent.log", "c-agent-last.log"):
    text = open(f"{out}/{log}").read()
    for sym in ("memcpy", "memmove", "memset"):
        defs = [line for line in text.splitlines() if line.endswith(f": definition of {sym}")]
        ok = len(defs) == 1 and re.search(r"/libc(_nano)?\.a\(", defs[0]) is not None
        libc_ok &= ok
        where = re.sub(r"^.*/", "", defs[0].split(": definition")[0]) if defs else "nowhere"
        print(f"C link ({log[:-4]}): {sym} from {where} -> {'C library' if ok else 'NOT the C library'}")
print()

# Cross-check of the RAM figure against the agent's own symbol.
checks_ok = True
for m in results[1:] + [rv_agent, c_agent, c_exec]:
    a = m["agent_sym"]
    padding = m["ram"] - a["size"] - m["other_static"]
    ok = a["section"] == ".bss" and a["size"] >= m["rings"] and 0 <= padding < 8
    checks_ok &= ok
    print(f"cross-check {m['label']}: {m['agent_name']} = {a['size']} B in {a['section']} "
          f"= rings {m['rings']} + {a['size'] - m['rings']} B; other statics "
          f"{m['other_static']} B; section padding {padding} B -> "
          f"{'consistent' if ok else 'INCONSISTENT'}")
for m in results:
    if m["main_frame"] is not None:
        print(f"stack frame of fw_main, {m['label']}: {m['main_frame']} B (stack, not static RAM)")
for m in (c_agent, c_exec):
    if m["init_frame"] is not None:
        print(f"stack frame of micrun_agent_init, {m['label']}: {m['init_frame']} B (stack, not static RAM)")
print()


def top_symbols(elf, n):
    syms = [s for s in elf.symbols if s["section"] in (".text", ".rodata", ".vector_table")]
    seen, uniq = set(), []
    for s in sorted(syms, key=lambda s: (-s["size"], s["raw"])):
        key = (s["value"] & ~1, s["size"])
        if key not in seen:
            seen.add(key)
            uniq.append(s)
    return uniq[:n]


def symbol_table(m, n, total, what):
    """The n largest symbols of measurement m as a Markdown table, printed too."""
    rows = [f"| # | symbol | section | bytes | share of {what} |", "|---:|---|---|---:|---:|"]
    for i, s in enumerate(top_symbols(m["elf"], n), 1):
        name = demangle(s["raw"]).replace("|", "\\|")
        rows.append(f"| {i} | `{name}` | {s['section']} | {s['size']} "
                    f"| {100 * s['size'] / total:.1f} % |")
    table = "\n".join(rows)
    print(f"Largest symbols, {m['label']}:")
    print()
    print(table)
    print()
    return table


default = results[1]
top_table = symbol_table(default, 10, default["text_rodata"], ".text+.rodata")
c_top_table = symbol_table(c_agent, 12, c_agent["flash"], "flash")

fmt = [demangle(s["raw"]) for s in default["elf"].symbols
       if re.search(r"core::fmt|\bfmt\b|Formatter|pad_integral", demangle(s["raw"]))]
if fmt:
    print("WARNING: core::fmt machinery is linked:", ", ".join(sorted(set(fmt))[:10]))
else:
    print("core::fmt: no formatting machinery linked (no core::fmt / Formatter symbols).")
print()

if attribute:
    elf = Elf(f"{out}/agent-default-noinline.elf")

    def group(name):
        if name in ("Reset", "DefaultHandler", "__vector_table", "fw_main") or \
                name.startswith(("agent::", "<agent::")):
            return "probe firmware (runtime, main loop, Link, App)"
        if name.startswith(".L"):
            return "string constants"
        if name.startswith(("compiler_builtins", "__aeabi")):
            return "compiler_builtins (memcpy/memset)"
        if re.search(r"serde|postcard|Serialize|Deserialize|Visitor", name):
            return "serde + postcard (message encode/decode)"
        if name.startswith("micrun_proto::frame"):
            return "micrun_proto::frame (CRC-16, COBS, deframer)"
        if name.startswith("micrun_proto::msg"):
            return "micrun_proto::msg (encode/decode wrappers)"
        if name.startswith(("micrun_proto::endpoint::session", "micrun_proto::ring")):
            return "micrun_proto session + rings (sequencing, credits, retransmit)"
        if name.startswith("micrun_proto::endpoint"):
            return "micrun_proto RTOS endpoint (handshake, dispatch)"
        if name.startswith("micrun_rtos"):
            return "micrun_rtos::Agent"
        if name.startswith(("heapless", "<heapless")):
            return "heapless (Deque, String)"
        if name.startswith(("core::", "<core::", "<I as core::")):
            return "core (panic stubs, iterators)"
        return "other"
    sums = {}
    for s in elf.symbols:
        if s["section"] in (".text", ".rodata"):
            g = group(demangle(s["raw"]))
            sums[g] = sums.get(g, 0) + s["size"]
    total = sum(sums.values())
    print(f"Attribution (inlining disabled; {total} B of symbols, "
          f"vs {default['text_rodata']} B in the real image):")
    print()
    print("| part | bytes | share |")
    print("|---|---:|---:|")
    for g, n in sorted(sums.items(), key=lambda kv: -kv[1]):
        print(f"| {g} | {n} | {100 * n / total:.0f} % |")
    print()

if write_docs:
    try:
        doc = open(docs_path).read()
    except FileNotFoundError:
        sys.exit(f"{docs_path}: not found")
    verdict = []
    for what, val, lim in (("Rust probe, flash", rust_flash, BUDGETS["Rust probe"][0]),
                           ("Rust probe, static RAM excluding rings", rust_ram, BUDGETS["Rust probe"][1]),
                           ("C path, flash", c_flash, BUDGETS["C path"][0]),
                           ("C path, static RAM excluding rings", c_ram, BUDGETS["C path"][1])):
        verdict.append(f"- {what}: {val} B of {lim} B — "
                       + ("**within budget**" if val <= lim else f"**over by {val - lim} B**"))
    body = ("Rust probe:\n\n" + table + "\n\nC path (`c/fw.c`, arm-none-eabi-gcc, newlib):\n\n"
            + c_table + "\n\n" + notes
            + "\n\nThe `exec` feature's cost (the probe with exec minus the default probe):\n\n"
            + exec_line
            + "\n\nBudget (default configuration, agent share, both paths):\n\n"
            + "\n".join(verdict) + "\n\nBeside the published anchors (reference/mica.md):\n\n"
            + anchors)
    frame = ", ".join(f"{m['label'].split(' ')[0]} {m['main_frame']} B"
                      for m in results if m["main_frame"] is not None)
    body += f"\n\nStack frame of `fw_main` (from its prologue; stack, not static RAM): {frame}."
    for name, body in (("footprint", body), ("footprint-symbols", top_table),
                       ("footprint-c-symbols", c_top_table)):
        begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
        if begin not in doc or end not in doc:
            if name == "footprint":
                sys.exit(f"{docs_path}: markers {begin} / {end} not found")
            continue
        head, rest = doc.split(begin, 1)
        _, tail = rest.split(end, 1)
        doc = f"{head}{begin}\n{body}\n{end}{tail}"
    open(docs_path, "w").write(doc)
    print(f"updated {docs_path}")

status = 0
if not checks_ok:
    print("FAIL: the RAM cross-check against the agent symbol does not add up")
    status = 1
if not libc_ok:
    print("FAIL: the C link does not take memcpy/memmove/memset from the C library")
    status = 1
for path, fl, ram in (("Rust probe", rust_flash, rust_ram), ("C path", c_flash, c_ram)):
    FLASH_BUDGET, RAM_BUDGET = BUDGETS[path]
    if fl > FLASH_BUDGET:
        print(f"OVER BUDGET: {path}: agent flash {fl} B > {FLASH_BUDGET} B by {fl - FLASH_BUDGET} B")
        status = 1
    if ram > RAM_BUDGET:
        print(f"OVER BUDGET: {path}: agent static RAM excluding rings {ram} B > {RAM_BUDGET} B "
              f"by {ram - RAM_BUDGET} B")
        status = 1
    if fl <= FLASH_BUDGET and ram <= RAM_BUDGET:
        print(f"budget OK: {path}: agent flash {fl} <= {FLASH_BUDGET} B, "
              f"RAM excluding rings {ram} <= {RAM_BUDGET} B")
sys.exit(status)
PY

#!/usr/bin/env bash
# Measures the RTOS-side footprint of micrun (agent + protocol) on thumbv7em and
# checks the budget: for the default configuration Agent<Uart, 256, 1024, 512>,
# the agent's share (agent firmware minus the baseline firmware, which has the same
# runtime, UART, clock and C memory routines) must be at most 8192 bytes of
# .text+.rodata and at most 1024 bytes of static RAM once the console rings
# (3 x OUT + IN: the stdout, stderr and exec output rings and the stdin ring) are
# taken off.
#
# Usage (from anywhere): rtos-side/footprint/measure.sh [--write-docs] [--attribute]
#   --write-docs  regenerate the generated parts of docs/footprint.md
#   --attribute   also build a diagnostic image with inlining disabled and sum the
#                 code by crate/module (sizes there are larger than in the real
#                 image; use them as proportions only)
#
# Needs only cargo (with the thumbv7em-none-eabihf target) and python3.
# Exit status: 0 within budget, 1 over budget, 2 usage or build error.
set -euo pipefail

write_docs=0
attribute=0
for arg in "$@"; do
    case "$arg" in
    --write-docs) write_docs=1 ;;
    --attribute) attribute=1 ;;
    -h | --help)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
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

if [ "$attribute" = 1 ]; then
    # A separate target directory, so the real images are never built with these flags.
    echo "+ RUSTFLAGS='-C llvm-args=-inline-threshold=-100000' cargo build --release" \
        "--manifest-path $manifest --target $target --bin agent --target-dir $out/noinline" >&2
    RUSTFLAGS="-C llvm-args=-inline-threshold=-100000" \
        cargo build --quiet --release --manifest-path "$manifest" --target "$target" \
        --bin agent --target-dir "$out/noinline" || exit 2
    cp "$out/noinline/$target/release/agent" "$out/agent-default-noinline.elf"
fi

exec python3 - "$out" "$write_docs" "$attribute" "$root/docs/footprint.md" <<'PY'
import re
import struct
import sys

out, write_docs, attribute, docs_path = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4]

TEXT_RODATA_BUDGET = 8192
RAM_BUDGET = 1024
AGENT_SYMBOL = "MICRUN_AGENT"

# (label, file, (FRAME, OUT, IN) or None for the baseline)
CONFIGS = [
    ("baseline (no agent)", "baseline.elf", None),
    ("default `Agent<Uart, 256, 1024, 512>`", "agent-default.elf", (256, 1024, 512)),
    ("small `Agent<Uart, 128, 256, 128>`", "agent-small.elf", (128, 256, 128)),
]


# ---- ELF32 little-endian reader ------------------------------------------------

class Elf:
    def __init__(self, path):
        self.data = data = open(path, "rb").read()
        if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
            sys.exit(f"{path}: not a 32-bit little-endian ELF")
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

def measure(label, fname, cfg):
    elf = Elf(f"{out}/{fname}")
    text, rodata = elf.size(".text"), elf.size(".rodata")
    data, bss = elf.size(".data"), elf.size(".bss")
    vectors, exidx = elf.size(".vector_table"), elf.size(".ARM.exidx")
    rings = 3 * cfg[1] + cfg[2] if cfg else 0
    ram = data + bss
    m = dict(label=label, elf=elf, cfg=cfg, text=text, rodata=rodata, data=data, bss=bss,
             vectors=vectors, exidx=exidx, text_rodata=text + rodata,
             flash=vectors + text + rodata + exidx + data, ram=ram, rings=rings,
             ram_ex=ram - rings)
    main = next((s for s in elf.symbols if s["raw"] == "fw_main"), None)
    m["main_frame"] = prologue_frame(elf, main) if main else None
    if cfg:
        agent = [s for s in elf.symbols if s["raw"] == AGENT_SYMBOL]
        if len(agent) != 1:
            sys.exit(f"{fname}: symbol {AGENT_SYMBOL} not found in the symbol table")
        agent = agent[0]
        others = [s for s in elf.symbols
                  if s["section"] in (".data", ".bss") and s is not agent and s["type"] == 1]
        m["agent_sym"] = agent
        m["other_static"] = sum(s["size"] for s in others)
    return m


results = [measure(*c) for c in CONFIGS]
base = results[0]

rows = [
    "| configuration | .text | .rodata | .text+.rodata | flash total¹ | static RAM (.data+.bss) | console rings (3×OUT+IN) | RAM excl. rings | agent share: .text+.rodata / RAM excl. rings² |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
]
for m in results:
    share = "—" if m is base else (
        f"{m['text_rodata'] - base['text_rodata']} / {m['ram_ex'] - base['ram_ex']}")
    rows.append(
        f"| {m['label']} | {m['text']} | {m['rodata']} | **{m['text_rodata']}** | {m['flash']} "
        f"| {m['ram']} | {m['rings']} | **{m['ram_ex']}** | {share} |")
table = "\n".join(rows)
notes = (
    "¹ vector table + .text + .rodata + .ARM.exidx + .data initializers: everything in flash.  \n"
    "² the agent firmware minus the baseline firmware (same runtime, UART and clock code, and the C memory routines `memcpy`/`memset`/`__aeabi_memclr*` that every RTOS image has from its libc).")

d = results[1]
anchors = "\n".join([
    "| implementation | flash | RAM |",
    "|---|---:|---:|",
    f"| **micrun agent + protocol, default config** (agent share) | {d['text_rodata'] - base['text_rodata']} B .text+.rodata "
    f"| {d['ram_ex'] - base['ram_ex']} B + {d['rings']} B console rings |",
    f"| **micrun agent + protocol, small config** (agent share) | {results[2]['text_rodata'] - base['text_rodata']} B .text+.rodata "
    f"| {results[2]['ram_ex'] - base['ram_ex']} B + {results[2]['rings']} B console rings |",
    "| micrun budget (agent share, default config) | ≤ 8192 B .text+.rodata | ≤ 1024 B excl. rings |",
    "| OpenAMP RPMsg | 5547 B | 456 B + dynamic |",
    "| RPMsg-Lite (dynamic API) | 3462 B | 56 B + dynamic |",
    "| RPMsg-Lite (static API) | 2926 B | 352 B |",
    "| eRPC | < 5 kB | |",
])

print()
print(table)
print()
print(notes)
print()
print(anchors)
print()

# Cross-check of the RAM figure against the agent's own symbol.
checks_ok = True
for m in results[1:]:
    a = m["agent_sym"]
    padding = m["ram"] - a["size"] - m["other_static"]
    ok = a["section"] == ".bss" and a["size"] >= m["rings"] and 0 <= padding < 8
    checks_ok &= ok
    print(f"cross-check {m['label']}: {AGENT_SYMBOL} = {a['size']} B in {a['section']} "
          f"= rings {m['rings']} + {a['size'] - m['rings']} B; other statics "
          f"{m['other_static']} B; section padding {padding} B -> "
          f"{'consistent' if ok else 'INCONSISTENT'}")
for m in results:
    if m["main_frame"] is not None:
        print(f"stack frame of fw_main, {m['label']}: {m['main_frame']} B (stack, not static RAM)")
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


default = results[1]
top = top_symbols(default["elf"], 10)
top_rows = ["| # | symbol | section | bytes | share of .text+.rodata |", "|---:|---|---|---:|---:|"]
for i, s in enumerate(top, 1):
    name = demangle(s["raw"]).replace("|", "\\|")
    top_rows.append(f"| {i} | `{name}` | {s['section']} | {s['size']} "
                    f"| {100 * s['size'] / default['text_rodata']:.1f} % |")
top_table = "\n".join(top_rows)
print(f"Largest symbols, {default['label']}:")
print()
print(top_table)
print()

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
    for what, val, lim in ((".text+.rodata", d["text_rodata"] - base["text_rodata"], TEXT_RODATA_BUDGET),
                           ("static RAM excluding rings", d["ram_ex"] - base["ram_ex"], RAM_BUDGET)):
        verdict.append(f"- {what}: {val} B of {lim} B — "
                       + ("**within budget**" if val <= lim else f"**over by {val - lim} B**"))
    body = (table + "\n\n" + notes + "\n\nBudget (default configuration, agent share):\n\n"
            + "\n".join(verdict) + "\n\nBeside the published anchors (reference/mica.md):\n\n"
            + anchors)
    frame = ", ".join(f"{m['label'].split(' ')[0]} {m['main_frame']} B"
                      for m in results if m["main_frame"] is not None)
    body += f"\n\nStack frame of `fw_main` (from its prologue; stack, not static RAM): {frame}."
    for name, body in (("footprint", body), ("footprint-symbols", top_table)):
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
share_text = default["text_rodata"] - base["text_rodata"]
share_ram = default["ram_ex"] - base["ram_ex"]
over_text = share_text - TEXT_RODATA_BUDGET
over_ram = share_ram - RAM_BUDGET
if over_text > 0:
    print(f"OVER BUDGET: agent .text+.rodata {share_text} B > {TEXT_RODATA_BUDGET} B "
          f"by {over_text} B")
    status = 1
if over_ram > 0:
    print(f"OVER BUDGET: agent static RAM excluding rings {share_ram} B > {RAM_BUDGET} B "
          f"by {over_ram} B")
    status = 1
if status == 0:
    print(f"budget OK: agent .text+.rodata {share_text} <= {TEXT_RODATA_BUDGET} B, "
          f"RAM excluding rings {share_ram} <= {RAM_BUDGET} B "
          f"(whole probe firmware: {default['text_rodata']} B .text+.rodata)")
sys.exit(status)
PY

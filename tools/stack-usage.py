#!/usr/bin/env python3
"""Worst-case stack of a crate's entry points on Cortex-M targets: one tool for every crate
that measures its stack (the harness crates under crates/*/tools/stack-usage).

Builds the harness with `-Z emit-stack-sizes` (nightly), takes every function's frame
(llvm-readobj --stack-sizes) and the direct call graph (bl/b.w relocations in
llvm-objdump -dr), and prints the deepest path from each entry point, with each signature
algorithm alone (an image is checked with one), against the harness's limit if it has one.

The figure is an upper bound only when the report says no reachable function makes an
indirect call, none recurses and none has an unknown frame; otherwise it is a lower bound.

Usage: python3 tools/stack-usage.py HARNESS [target ...]
       HARNESS: boot (the update engine's two sides) or image (the verifier)
       default targets: thumbv7em-none-eabihf thumbv6m-none-eabi; each needs
       `rustup target add <target> --toolchain nightly`
"""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (name, the other algorithm's verify function, pruned to get this one's path)
ALGORITHMS = [("ed25519", "verify_ecdsa_p256"), ("P-256", "verify_ed25519")]
HARNESSES = {
    "boot": {
        "dir": "crates/boot/tools/stack-usage",
        "lib": "libbrickless_boot_stack_usage.a",
        "entries": ["brickless_stack_boot", "brickless_stack_request_upgrade",
                    "brickless_stack_confirm"],
        # An array sized like the bootloader side, read with llvm-nm -S.
        "size_symbol": "BRICKLESS_ENGINE_SIZE",
        "note": "copy buffer 2048 B (static, COPY_BUF_LEN in src/lib.rs)",
        "limit": None,
    },
    "image": {
        "dir": "crates/image/tools/stack-usage",
        "lib": "libbrickless_image_stack_usage.a",
        "entries": ["stack_verify_ed25519", "stack_verify_p256"],
        "size_symbol": None,
        "note": None,
        # MCUboot's own budget: CONFIG_MAIN_STACK_SIZE=10240 in its Zephyr prj.conf.
        "limit": (10240, "MCUboot's Zephyr main stack"),
    },
}


def run(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check).stdout


def build(harness, target):
    here = os.path.join(ROOT, harness["dir"])
    env = dict(os.environ, RUSTFLAGS="-Z emit-stack-sizes")
    subprocess.run(["cargo", "+nightly", "build", "--release", "--target", target],
                   cwd=here, env=env, check=True)
    return os.path.join(here, "target", target, "release", harness["lib"])


def frames(lib):
    sizes = {}
    out = run("llvm-readobj", "--stack-sizes", lib)
    for m in re.finditer(r"Functions: \[(.*?)\]\s*\n\s*Size: (0x[0-9a-fA-F]+|\d+)", out):
        for name in m.group(1).split(", "):
            name = name.strip()
            sizes[name] = max(sizes.get(name, 0), int(m.group(2), 0))
    return sizes


def call_graph(lib):
    calls, indirect, cur = {}, set(), None
    for line in run("llvm-objdump", "-dr", "--no-show-raw-insn", lib).splitlines():
        m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        # `$t`/`$d` are ARM mapping symbols (code/data resume inside the same function),
        # not function starts: taking them as functions would lose the calls after them.
        if m and not m.group(1).startswith("$"):
            cur = m.group(1)
            calls.setdefault(cur, set())
        elif cur is not None:
            m = re.search(r"R_ARM_THM_(?:CALL|JUMP24|JUMP19)\s+(\S+)", line)
            if m:
                calls[cur].add(m.group(1))
            elif re.search(r"\b(?:blx|bx)\s+r(?:[0-9]|1[0-2])\b", line):
                indirect.add(cur)  # bx lr is a return, not a call
    return calls, indirect


def deepest(entry, sizes, calls, skip=None):
    """(bytes, path, reached, cycles) of the deepest direct-call chain, not entering
    functions whose name holds `skip`; cycles are cut and reported."""
    memo, on_path, cycles = {}, set(), set()

    def go(fn):
        if fn in memo:
            return memo[fn]
        if skip and skip in fn:
            return 0, []
        if fn in on_path:
            cycles.add(fn)
            return 0, []
        on_path.add(fn)
        best = (0, [])
        for callee in calls.get(fn, ()):
            best = max(best, go(callee), key=lambda r: r[0])
        on_path.discard(fn)
        memo[fn] = (sizes.get(fn, 0) + best[0], [fn] + best[1])
        return memo[fn]

    total, path = go(entry)
    return total, path, set(memo) | cycles, cycles


def demangle(names):
    try:
        out = run("llvm-cxxfilt", *names).splitlines()
        return [re.sub(r"::h[0-9a-f]{16}$|\[[0-9a-f]+\]", "", n) for n in out]
    except (OSError, subprocess.CalledProcessError):
        return names


def symbol_size(lib, symbol):
    # Some archive members (the rlib metadata) are not objects: llvm-nm fails on them.
    for line in run("llvm-nm", "-S", lib, check=False).splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == symbol:
            return int(parts[1], 16)
    return None


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in HARNESSES:
        sys.exit(f"usage: {sys.argv[0]} {{{','.join(HARNESSES)}}} [target ...]")
    harness = HARNESSES[sys.argv[1]]
    sys.setrecursionlimit(20000)
    targets = sys.argv[2:] or ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"]
    for target in targets:
        lib = build(harness, target)
        sizes, (calls, indirect) = frames(lib), call_graph(lib)
        head = [f"== {sys.argv[1]} on {target}"]
        if harness["size_symbol"]:
            head.append(f"size_of = {symbol_size(lib, harness['size_symbol'])} B")
        if harness["note"]:
            head.append(harness["note"])
        print(", ".join(head))
        for entry in harness["entries"]:
            total, path, reached, cycles = deepest(entry, sizes, calls)
            per_alg = ", ".join(
                f"{alg} only {deepest(entry, sizes, calls, skip=other)[0]} B"
                for alg, other in ALGORITHMS)
            limit = ""
            if harness["limit"]:
                lim, what = harness["limit"]
                limit = f" = {total / lim:.2f}x the {lim} B limit ({what})"
            print(f"{entry}: {total} B worst-case stack{limit} ({per_alg})")
            for size, name in zip((sizes.get(f, 0) for f in path), demangle(path)):
                print(f"    {size:6d}  {name[:120]}")
            ind = sorted(f for f in reached if f in indirect)
            unknown = sorted(f for f in reached if f not in sizes)
            print("    indirect calls:", ", ".join(demangle(ind)) if ind else "none")
            print("    recursion:", ", ".join(demangle(sorted(cycles))) if cycles else "none")
            print("    no frame size (0 counted):",
                  ", ".join(demangle(unknown)) if unknown else "none")
            bound = "upper bound" if not (ind or cycles or unknown) else "LOWER bound"
            print(f"    => {bound}")


if __name__ == "__main__":
    main()

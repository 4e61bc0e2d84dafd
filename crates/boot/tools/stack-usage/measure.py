#!/usr/bin/env python3
"""Worst-case stack and RAM of the update engine's entry points on Cortex-M targets.

Builds this crate with `-Z emit-stack-sizes` (nightly), takes every function's frame
(llvm-readobj --stack-sizes) and the direct call graph (bl/b.w relocations in
llvm-objdump -dr), and prints the deepest path from each entry point, plus the engine's
size (`BRICKLESS_ENGINE_SIZE` is an array sized like it, read with llvm-nm -S).

The figure is an upper bound only when the report says no reachable function makes an
indirect call, none recurses and none has an unknown frame; otherwise it is a lower bound.
(Same method as crates/image/tools/stack-usage/measure.py, which runs its analysis at
import time and so cannot be reused from here.)

Usage: python3 measure.py [target ...]
       (default: thumbv7em-none-eabihf thumbv6m-none-eabi; each needs
        `rustup target add <target> --toolchain nightly`)
"""
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = "libbrickless_boot_stack_usage.a"
ENTRIES = ["brickless_stack_boot", "brickless_stack_request_upgrade", "brickless_stack_confirm"]
# (name, the other algorithm's verify function, pruned to get this one's path)
ALGORITHMS = [("ed25519", "verify_ecdsa_p256"), ("P-256", "verify_ed25519")]
COPY_BUF = 2048  # COPY_BUF_LEN in src/lib.rs


def run(*cmd, check=True):
    return subprocess.run(cmd, capture_output=True, text=True, check=check).stdout


def build(target):
    env = dict(os.environ, RUSTFLAGS="-Z emit-stack-sizes")
    subprocess.run(["cargo", "+nightly", "build", "--release", "--target", target],
                   cwd=HERE, env=env, check=True)
    return os.path.join(HERE, "target", target, "release", LIB)


def frames(lib):
    sizes = {}
    out = run("llvm-readobj", "--stack-sizes", lib)
    for m in re.finditer(r"Functions: \[(.*?)\]\s*\n\s*Size: (0x[0-9a-fA-F]+|\d+)", out):
        for name in m.group(1).split(", "):
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
    """(bytes, path) of the deepest direct-call chain, not entering functions whose name
    holds `skip`; cycles are cut and reported."""
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


def engine_size(lib):
    # Some archive members (the rlib metadata) are not objects: llvm-nm fails on them.
    for line in run("llvm-nm", "-S", lib, check=False).splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == "BRICKLESS_ENGINE_SIZE":
            return int(parts[1], 16)
    return None


def main():
    sys.setrecursionlimit(20000)
    targets = sys.argv[1:] or ["thumbv7em-none-eabihf", "thumbv6m-none-eabi"]
    for target in targets:
        lib = build(target)
        sizes, (calls, indirect) = frames(lib), call_graph(lib)
        print(f"== {target}: size_of::<BootLoader>() = {engine_size(lib)} B, "
              f"copy buffer {COPY_BUF} B (static)")
        for entry in ENTRIES:
            total, path, reached, cycles = deepest(entry, sizes, calls)
            # A check runs one algorithm per image: the figure with each one alone.
            per_alg = ", ".join(
                f"{alg} only {deepest(entry, sizes, calls, skip=other)[0]} B"
                for alg, other in ALGORITHMS)
            print(f"{entry}: {total} B worst-case stack ({per_alg})")
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

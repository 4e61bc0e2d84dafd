#!/usr/bin/env python3
"""Worst-case stack of the verifier entry points on a Cortex-M target.

Builds this crate with `-Z emit-stack-sizes` (nightly), reads every function's frame
size (llvm-readobj --stack-sizes) and the direct call graph (relocations of bl/b.w in
llvm-objdump -dr), and prints the deepest path from each entry point. Indirect calls
and recursion are reported: the figure is an upper bound only if there are none.

Usage: python3 measure.py [target]   (default thumbv7em-none-eabihf)
"""
import os
import re
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
target = sys.argv[1] if len(sys.argv) > 1 else "thumbv7em-none-eabihf"
env = dict(os.environ, RUSTFLAGS="-Z emit-stack-sizes")
subprocess.run(["cargo", "+nightly", "build", "--release", "--target", target],
               cwd=here, env=env, check=True)
lib = os.path.join(here, "target", target, "release", "libbrickless_image_stack_usage.a")

sizes = {}
out = subprocess.run(["llvm-readobj", "--stack-sizes", lib], capture_output=True,
                     text=True, check=True).stdout
for m in re.finditer(r"Functions: \[(.*?)\]\s*\n\s*Size: (0x[0-9a-fA-F]+|\d+)", out):
    for name in m.group(1).split(", "):
        sizes[name.strip()] = max(sizes.get(name.strip(), 0), int(m.group(2), 0))

calls, indirect = {}, set()
cur = None
dis = subprocess.run(["llvm-objdump", "-dr", "--no-show-raw-insn", lib],
                     capture_output=True, text=True, check=True).stdout
for line in dis.splitlines():
    m = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
    if m:
        cur = m.group(1)
        calls.setdefault(cur, set())
        continue
    if cur is None:
        continue
    m = re.search(r"R_ARM_THM_(?:CALL|JUMP24|JUMP19)\s+(\S+)", line)
    if m:
        calls[cur].add(m.group(1))
    elif re.search(r"\bblx\s+r\d+", line):
        indirect.add(cur)

recursion = set()
# Each entry only ever runs one signature algorithm: prune the other from its graph.
ENTRIES = {
    "stack_verify_ed25519": "verify_ecdsa_p256",
    "stack_verify_p256": "verify_ed25519",
}
# MCUboot's own budget: CONFIG_MAIN_STACK_SIZE=10240 in boot/zephyr/prj.conf.
LIMIT = 10240


def worst(fn, excluded, depth=0, memo=None):
    memo = {} if memo is None else memo
    if fn in memo:
        return memo[fn]
    if depth > 300:
        recursion.add(fn)
        return 0, [fn]
    best, path = 0, []
    for c in calls.get(fn, ()):
        if c == fn:
            recursion.add(fn)
            continue
        if excluded in c:
            continue
        s, p = worst(c, excluded, depth + 1, memo)
        if s > best:
            best, path = s, p
    memo[fn] = (sizes.get(fn, 0) + best, [fn] + path)
    return memo[fn]


sys.setrecursionlimit(10000)
for entry, excluded in ENTRIES.items():
    total, path = worst(entry, excluded)
    print(f"{entry}: {total} bytes worst-case stack on {target} "
          f"= {total / LIMIT:.2f}x the {LIMIT} B limit (MCUboot's Zephyr main stack)")
    for f in path:
        print(f"    {sizes.get(f, 0):6d}  {f[:110]}")
reached = set()
def walk(f):
    if f in reached:
        return
    reached.add(f)
    for c in calls.get(f, ()):
        walk(c)
for e in ENTRIES:
    walk(e)
ind = sorted(f for f in indirect if f in reached)
print("indirect calls in reachable functions:", ind if ind else "none")
print("recursion:", sorted(recursion) if recursion else "none")

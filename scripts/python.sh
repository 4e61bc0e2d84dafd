#!/usr/bin/env bash
# Builds the Python package (one abi3 wheel, crates/python) and runs its tests against the
# wheel as installed: a fresh virtual environment gets the wheel and pytest, and pytest runs
# from outside the source tree, so the installed copy is what is tested. The tests drive
# virtual devices (`brickless sim`), so the `brickless` binary is built too.
#
# Environment: CARGO_TARGET_DIR (default: target/), PYTHON (default: python3),
# BRICKLESS_WHEEL_PROFILE (default: release, which builds in about half the time of dev on
# two cores: dev compiles the dependencies at opt-level 2 with line tables, release without),
# BRICKLESS_BIN (a `brickless` binary to use instead of building one).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
log() { printf '[python] %s\n' "$*"; }

PYTHON=${PYTHON:-python3}
target_dir=${CARGO_TARGET_DIR:-$root/target}
mkdir -p "$target_dir"
target_dir=$(cd "$target_dir" && pwd)
profile=${BRICKLESS_WHEEL_PROFILE:-release}

# The build tools, when missing (scripts/install-deps.sh installs them too).
missing=""
command -v maturin >/dev/null 2>&1 || "$PYTHON" -m maturin --version >/dev/null 2>&1 ||
  missing="$missing maturin"
"$PYTHON" -c 'import pytest' 2>/dev/null || missing="$missing pytest"
if [ -n "$missing" ]; then
  log "pip install$missing"
  "$PYTHON" -m pip install -q --disable-pip-version-check $missing
fi
if command -v maturin >/dev/null 2>&1; then maturin=(maturin); else maturin=("$PYTHON" -m maturin); fi

t0=$(date +%s)
if [ -n "${BRICKLESS_BIN:-}" ]; then
  # scripts/test.sh passes the binary `cargo test --workspace` has just built.
  bin=$(cd "$(dirname "$BRICKLESS_BIN")" && pwd)/$(basename "$BRICKLESS_BIN")
  [ -x "$bin" ] || { log "BRICKLESS_BIN=$BRICKLESS_BIN is not an executable"; exit 1; }
  log "virtual devices: $bin"
else
  log "cargo build -p brickless (the virtual devices)"
  cargo build --locked -q -p brickless
  bin="$target_dir/debug/brickless"
fi
t1=$(date +%s)

log "maturin build ($profile profile)"
wheels="$target_dir/python/wheels"
rm -rf "$wheels"
flags=(--locked --profile "$profile" --interpreter "$PYTHON" -o "$wheels")
(cd crates/python && "${maturin[@]}" build "${flags[@]}" 2>&1 | grep -v '^ *Compiling ' >&2)
wheel=$(ls "$wheels"/brickless-*.whl)
log "built $(basename "$wheel") ($(du -k "$wheel" | cut -f1) KiB)"
t2=$(date +%s)

venv="$target_dir/python/venv"
rm -rf "$venv"
"$PYTHON" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "$wheel" pytest
t3=$(date +%s)

# Run from the target dir: neither crates/python/python nor the repository root is on
# sys.path, so `import brickless` finds the wheel's copy (a test checks that too).
log "pytest (from the installed wheel)"
(cd "$target_dir/python" &&
  BRICKLESS_BIN="$bin" "$venv/bin/python" -m pytest -p no:cacheprovider -q \
    --durations=5 "$root/crates/python/tests")
t4=$(date +%s)
log "took $((t4 - t0)) s: binary $((t1 - t0)) s, wheel $((t2 - t1)) s, venv $((t3 - t2)) s, tests $((t4 - t3)) s"

#!/usr/bin/env bash
# brickless's main job with no board: `brickless demo` signs three versions of an
# application and updates a virtual STM32H753 over a modelled 115200-baud serial line with
# our SMP client, cutting power mid-upload and mid-swap; the device never bricks.
# Installs what it needs (scripts/install-deps.sh), builds the CLI, then runs the demo.
# Arguments go to `brickless demo` (e.g. --dir DIR, --fast; see `brickless demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

bold="" plain=""
if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; fi
say() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
# Print each command before running it, so you can copy it.
run() { printf '$ %s\n' "$*"; "$@"; }

say "Installing tools (skipped when already there)"
bash scripts/install-deps.sh

say "Building brickless"
run cargo build --locked -q -p brickless
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/brickless"

say "Running the demo on a virtual STM32 (about 25 s: the serial line runs at 115200 baud)"
printf '$ brickless demo %s\n' "$*"
"$bin" demo "$@"
